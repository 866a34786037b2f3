"""Point-level checks of a PointWise Net against Geant4, and CPU timing.

The point-level distributions are the radial distance from the shower axis, the depth and the log
energy of every point. Generated points are first put where the detector would see them: x, y are
snapped to the centre of their clustering sub-cell and the depth to its layer (``floor``), as in
the Geant4 data. Each distribution's 1-D Wasserstein distance is divided by the Geant4 standard
deviation of that feature. The floor is the same score between two halves of the Geant4 showers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from caloclouds.diffusion.model import PointModel
from caloclouds.showers import Showers, standardised_w1

__all__ = ["POINT_FEATURES", "point_features", "standardised_w1", "PointW1", "evaluate_points", "time_sampling"]

POINT_FEATURES = ("radius_mm", "depth_layer", "log_e_mev")


def point_features(points: np.ndarray, *, subcell_pitch_mm: float | None = None) -> dict[str, np.ndarray]:
    """Radial distance, integer depth (layer) and ln(e / MeV) of (P, 4) points.

    Args:
        points: ``x_mm, y_mm, depth, e_MeV``.
        subcell_pitch_mm: when given, x and y are snapped to the sub-cell centres first.
    """
    p = np.asarray(points, dtype=np.float64)
    x, y = p[:, 0], p[:, 1]
    if subcell_pitch_mm:
        x = (np.floor(x / subcell_pitch_mm) + 0.5) * subcell_pitch_mm
        y = (np.floor(y / subcell_pitch_mm) + 0.5) * subcell_pitch_mm
    return {
        "radius_mm": np.hypot(x, y),
        "depth_layer": np.floor(p[:, 2]),
        "log_e_mev": np.log(np.maximum(p[:, 3], 1e-12)),
    }


@dataclass(frozen=True)
class PointW1:
    """Standardised W1 per feature for the model and the Geant4 half-vs-half floor."""

    model: dict[str, float]
    floor: dict[str, float]
    n_generated: int
    n_reference: int
    seconds: float

    def table(self, name: str = "model") -> str:
        """A markdown table of the scores."""
        rows = [f"| feature | {name} W1/std | G4 half-vs-half |", "|---|---|---|"]
        rows += [f"| {k} | {self.model[k]:.4f} | {self.floor[k]:.4f} |" for k in POINT_FEATURES]
        return "\n".join(rows)


def evaluate_points(
    model: PointModel,
    reference: Showers,
    *,
    n_showers: int = 1000,
    steps: int | None = None,
    solver: str | None = None,
    energy_gev: float | None = None,
    batch_showers: int | None = None,
    seed: int = 0,
) -> PointW1:
    """Generate ``n_showers`` showers with the reference's point counts (cycled) and score them.

    Args:
        model: the PointWise Net.
        reference: Geant4 showers (e.g. the 200 showers at 50 GeV of g4_photons_val_fixed.h5).
        n_showers: showers to generate.
        steps, solver: passed to :meth:`PointModel.sample` (default: the model's own solver).
        energy_gev: incident energy of the generated showers (default: the reference energies, cycled).
        batch_showers: showers per sampling call; default 1 on the CPU (a single shower folds the
            context gates into the weights, which is fastest there) and 100 on a GPU.
        seed: random seed.
    """
    if len(reference) < 2:
        raise ValueError(f"reference needs at least 2 showers, got {len(reference)}")
    pick = np.arange(n_showers) % len(reference)
    n_points = torch.from_numpy(reference.n_points[pick].astype(np.int64))
    energy = (
        np.full(n_showers, energy_gev, np.float32) if energy_gev is not None else reference.incident_energy_gev[pick]
    )
    energy_t = torch.from_numpy(np.asarray(energy, np.float32))
    if batch_showers is None:
        batch_showers = 1 if model.device.type == "cpu" else 100
    if model.per_layer:  # conditioned on Geant4's own layer counts and energies (what the flow would draw)
        n_layers = model.normaliser.n_layers
        layer_counts = torch.from_numpy(reference.layer_counts(n_layers)[pick].astype(np.int64))
        layer_mev = reference.layer_sums(n_layers)[pick].astype(np.float32)
    gen = torch.Generator().manual_seed(seed)
    parts = []
    t0 = time.perf_counter()
    for lo in range(0, n_showers, batch_showers):
        hi = min(lo + batch_showers, n_showers)
        kw = dict(solver=solver, steps=steps, generator=gen)
        if model.per_layer:
            pts, _ = model.sample_layers(layer_counts[lo:hi], torch.from_numpy(layer_mev[lo:hi]), energy_t[lo:hi], **kw)
            pts = _rescale_layers(pts.cpu().numpy(), layer_counts[lo:hi].numpy(), layer_mev[lo:hi])
        else:
            pts = model.sample(n_points[lo:hi], energy_t[lo:hi], **kw)[0].cpu().numpy()
        parts.append(pts)
    seconds = time.perf_counter() - t0
    generated = np.concatenate(parts) if parts else np.zeros((0, 4), np.float32)
    pitch = model.config.detector.subcell_pitch_mm
    gen_f = point_features(generated, subcell_pitch_mm=pitch)
    ref_f = point_features(reference.points)
    half = len(reference) // 2
    a = point_features(reference[:half].points)
    b = point_features(reference[half:].points)
    return PointW1(
        model={k: standardised_w1(gen_f[k], ref_f[k]) for k in POINT_FEATURES},
        floor={k: standardised_w1(a[k], b[k]) for k in POINT_FEATURES},
        n_generated=n_showers,
        n_reference=len(reference),
        seconds=seconds,
    )


def _rescale_layers(points: np.ndarray, counts: np.ndarray, layer_mev: np.ndarray) -> np.ndarray:
    """Scale each (shower, layer)'s point energies to sum to ``layer_mev`` (as the generator does):
    the per-layer network draws them around E_l / n_l. Points are grouped by shower, then layer."""
    rows = np.flatnonzero(counts.reshape(-1))
    row_of_point = np.repeat(np.arange(len(rows)), counts.reshape(-1)[rows])
    drawn = np.bincount(row_of_point, weights=points[:, 3], minlength=len(rows))
    scale = layer_mev.reshape(-1)[rows] / np.maximum(drawn, 1e-12)
    out = points.copy()
    out[:, 3] = points[:, 3] * scale[row_of_point]
    return out


TYPICAL_SAMPLING_FRACTION = 0.028  # E_vis / E_inc of the ILD-like Si-W ECAL (2.7-3.0 % over 10-90 GeV)


def time_sampling(
    model: PointModel,
    *,
    n_points: int = 3000,
    energy_gev: float = 50.0,
    steps: int | None = None,
    solver: str | None = None,
    repeats: int = 50,
    warmup: int = 5,
) -> dict[str, float]:
    """Median and quartiles (ms) of one sampling call for one shower of ``n_points`` points.

    Also times the bare network evaluation ``denoiser(x, sigma_max)`` (``network_*`` keys).
    """
    n = torch.tensor([n_points])
    e = torch.tensor([energy_gev])
    gen = torch.Generator().manual_seed(0)

    def timed(fn: object) -> np.ndarray:
        out = []
        for i in range(warmup + repeats):
            t0 = time.perf_counter()
            fn()
            if i >= warmup:
                out.append((time.perf_counter() - t0) * 1e3)
        return np.array(out)

    if model.per_layer:  # the points spread evenly over the layers, at a typical mean point energy
        layers = model.normaliser.n_layers
        counts = torch.full((1, layers), n_points // layers, dtype=torch.int64)
        counts[0, : n_points - int(counts.sum())] += 1
        energy_l = counts * (TYPICAL_SAMPLING_FRACTION * energy_gev * 1000.0 / n_points)
        full = timed(lambda: model.sample_layers(counts, energy_l, e, solver=solver, steps=steps, generator=gen))
        cond = model.layer_rows(counts, energy_l, e)[0]
    else:
        full = timed(lambda: model.sample(n, e, solver=solver, steps=steps, generator=gen))
        cond, _ = model.conditioning(n, e)
    x = torch.randn(n_points, model.normaliser.n_features, generator=gen) * model.config.diffusion.sigma_max
    sigma = torch.tensor(model.config.diffusion.sigma_max)

    def net() -> None:
        with torch.inference_mode():
            model.denoiser(x, sigma, cond=cond)

    bare = timed(net)
    return {
        "sample_median_ms": float(np.median(full)),
        "sample_q25_ms": float(np.percentile(full, 25)),
        "sample_q75_ms": float(np.percentile(full, 75)),
        "network_median_ms": float(np.median(bare)),
        "network_q25_ms": float(np.percentile(bare, 25)),
        "network_q75_ms": float(np.percentile(bare, 75)),
    }
