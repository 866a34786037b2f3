"""Quality check of a Shower Flow against a reference file: standardised Wasserstein-1 distances.

The flow is sampled at the reference's incident energies (``samples_per_shower`` times each) and
compared with the reference for N, E_vis/E_inc, the energy of every layer and the CoG in x and y.
Each W1 is divided by the reference's standard deviation of that quantity
(:func:`caloclouds.showers.standardised_w1`, the helper the evaluation uses too). The same distance
between two random halves of the reference is the statistical floor: a flow cannot be told apart
from Geant4 with this many showers when its W1 is near the floor.

W1 of a marginal over all energies can hide a flow that is too narrow at any one energy (the spread
of the energy trend dominates it), which a classifier sees at once. So the check also compares the
spread at fixed energy: the standard deviation of the residuals after a cubic fit in E_inc, of N,
E_vis/E_inc and the depth (energy-weighted mean layer), flow over reference.

The check passes when the W1 of N and of E_vis/E_inc are within ``floor_factor`` times the
floor, the spreads at fixed energy are within ``spread_tolerance`` of the reference's, and the
per-layer mean energy is within ``profile_tolerance`` of the reference in the layers
``0 .. profile_layers-1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from caloclouds.showers import standardised_w1
from flows.features import ShowerFeatures, file_features
from flows.preprocessing import MEV_PER_GEV
from flows.sampling import ShowerFlow

__all__ = ["FlowCheck", "check_shower_flow", "flow_sample_features", "spread_at_fixed_energy"]

_SAMPLE_BATCH = 4096  # showers per flow call


@dataclass
class FlowCheck:
    """Result of :func:`check_shower_flow` (all plain floats and lists, JSON-ready)."""

    names: list[str]
    w1_flow: list[float]  # standardised W1(flow, reference)
    w1_floor: list[float]  # standardised W1(reference half A, half B)
    profile_g4_mev: list[float]  # mean energy per layer, reference
    profile_flow_mev: list[float]  # mean energy per layer, flow
    n_reference: int
    samples_per_shower: int
    floor_factor: float
    profile_tolerance: float
    profile_layers: int
    spread_names: list[str] = field(default_factory=list)
    spread_ratio: list[float] = field(default_factory=list)  # flow / reference, spread at fixed energy
    spread_tolerance: float = 0.2
    passed: dict[str, bool] = field(default_factory=dict)

    def ratio(self, name: str) -> float:
        i = self.names.index(name)
        return self.w1_flow[i] / self.w1_floor[i] if self.w1_floor[i] > 0 else float("inf")

    def profile_deviation(self) -> np.ndarray:
        g4, fl = np.asarray(self.profile_g4_mev), np.asarray(self.profile_flow_mev)
        return np.where(g4 > 0, fl / np.where(g4 > 0, g4, 1.0) - 1.0, 0.0)

    def format(self) -> str:
        """Human-readable tables (W1 and profile) with the pass/fail summary."""
        lines = [
            f"reference: {self.n_reference} showers; flow: {self.samples_per_shower} samples per reference energy",
            "",
            f"{'quantity':<16}{'W1 flow-G4':>12}{'W1 floor':>12}{'ratio':>8}",
        ]
        for name, a, b in zip(self.names, self.w1_flow, self.w1_floor):
            lines.append(f"{name:<16}{a:>12.4f}{b:>12.4f}{(a / b if b > 0 else float('inf')):>8.2f}")
        lines += ["", f"{'spread at fixed E_inc':<22}{'flow / G4':>10}"]
        lines += [f"{name:<22}{r:>10.3f}" for name, r in zip(self.spread_names, self.spread_ratio)]
        lines += ["", f"{'layer':<6}{'G4 mean MeV':>13}{'flow mean MeV':>15}{'deviation':>11}"]
        for i, (g, f, d) in enumerate(zip(self.profile_g4_mev, self.profile_flow_mev, self.profile_deviation())):
            mark = "" if i >= self.profile_layers or abs(d) <= self.profile_tolerance else "  <-- outside tolerance"
            lines.append(f"{i:<6}{g:>13.3f}{f:>15.3f}{100 * d:>10.2f}%{mark}")
        lines.append("")
        for key, ok in self.passed.items():
            lines.append(f"{'PASS' if ok else 'FAIL'}  {key}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["ratio"] = {n: self.ratio(n) for n in self.names}
        return out


def spread_at_fixed_energy(values: np.ndarray, incident_energy_gev: np.ndarray, degree: int = 3) -> float:
    """Standard deviation of ``values`` about a polynomial fit in the incident energy.

    The degree is lowered to the number of distinct energies minus one (a file at fixed energies).
    """
    energy = np.asarray(incident_energy_gev, dtype=np.float64)
    degree = min(degree, len(np.unique(energy)) - 1)
    if degree < 1:
        return float(np.std(values))
    fit = np.polynomial.Polynomial.fit(energy, values, degree)  # fits on a scaled domain: well conditioned
    return float(np.std(values - fit(energy)))


def _spread_quantities(f: ShowerFeatures) -> tuple[list[str], list[np.ndarray]]:
    e_l = f.energy_per_layer_mev
    depth = (e_l * np.arange(f.n_layers)).sum(axis=1) / np.maximum(e_l.sum(axis=1), 1e-12)
    ratio = f.visible_energy_mev / (f.incident_energy_gev * MEV_PER_GEV)
    return ["N", "E_vis/E_inc", "depth (mean layer)"], [f.n_points.astype(np.float64), ratio, depth]


def _quantities(f: ShowerFeatures) -> tuple[list[str], np.ndarray]:
    names = ["N", "E_vis/E_inc"] + [f"E_layer_{i}" for i in range(f.n_layers)] + ["cog_x", "cog_y"]
    cols = [f.n_points, f.visible_energy_mev / (f.incident_energy_gev * MEV_PER_GEV)]
    cols += list(f.energy_per_layer_mev.T) + [f.cog_mm[:, 0], f.cog_mm[:, 1]]
    return names, np.stack([np.asarray(c, np.float64) for c in cols], axis=1)


def flow_sample_features(
    flow: ShowerFlow, incident_energy_gev: np.ndarray, *, extra_conditions: np.ndarray | None = None, seed: int = 0
) -> ShowerFeatures:
    """Flow samples at the given energies as :class:`ShowerFeatures` (numpy, float64)."""
    gen = torch.Generator(device=flow.device).manual_seed(seed)
    parts = []
    for start in range(0, len(incident_energy_gev), _SAMPLE_BATCH):
        energy = torch.as_tensor(incident_energy_gev[start : start + _SAMPLE_BATCH], dtype=torch.float32)
        extra = None if extra_conditions is None else torch.as_tensor(extra_conditions[start : start + _SAMPLE_BATCH])
        s = flow.sample(energy, extra_conditions=extra, generator=gen)
        parts.append(
            ShowerFeatures(
                energy.double().numpy(),
                s.points_per_layer.cpu().numpy(),
                s.energy_per_layer_mev.double().cpu().numpy(),
                s.cog_mm.double().cpu().numpy(),
                np.zeros((len(energy), 0)) if extra is None else extra.double().cpu().numpy(),
            )
        )
    return ShowerFeatures.concatenate(parts)


def check_shower_flow(
    flow: ShowerFlow,
    reference: str | Path | ShowerFeatures,
    *,
    samples_per_shower: int = 10,
    seed: int = 0,
    floor_factor: float = 3.0,
    profile_tolerance: float = 0.05,
    profile_layers: int = 26,
    spread_tolerance: float = 0.2,
) -> FlowCheck:
    """Compare a flow with reference showers (see the module docstring).

    Args:
        flow: the Shower Flow.
        reference: a shower file or its features.
        samples_per_shower: flow samples drawn at each reference energy.
        seed: seed of the flow samples and of the half-vs-half split.
        floor_factor: N and E_vis/E_inc pass when W1 <= floor_factor * floor.
        profile_tolerance: relative tolerance of the mean energy per layer.
        profile_layers: the profile is checked in layers ``0 .. profile_layers-1``.
        spread_tolerance: relative tolerance of the spreads at fixed energy.

    Returns:
        A :class:`FlowCheck`.
    """
    if not isinstance(reference, ShowerFeatures):
        names = flow.config.condition_names
        reference = file_features(reference, n_layers=flow.n_layers, condition_names=names)
    ref = reference
    energies = np.repeat(ref.incident_energy_gev, samples_per_shower)
    extra = np.repeat(ref.conditions, samples_per_shower, axis=0) if ref.conditions.shape[1] else None
    sampled = flow_sample_features(flow, energies, extra_conditions=extra, seed=seed)
    names, q_ref = _quantities(ref)
    _, q_flow = _quantities(sampled)
    halves = np.random.default_rng(seed).permutation(len(ref))
    a, b = halves[: len(ref) // 2], halves[len(ref) // 2 :]
    scale = q_ref.std(axis=0)
    w1_flow = [standardised_w1(q_flow[:, i], q_ref[:, i], scale=scale[i]) for i in range(len(names))]
    w1_floor = [standardised_w1(q_ref[a, i], q_ref[b, i], scale=scale[i]) for i in range(len(names))]
    check = FlowCheck(
        names=names,
        w1_flow=w1_flow,
        w1_floor=w1_floor,
        profile_g4_mev=ref.energy_per_layer_mev.mean(axis=0).tolist(),
        profile_flow_mev=sampled.energy_per_layer_mev.mean(axis=0).tolist(),
        n_reference=len(ref),
        samples_per_shower=samples_per_shower,
        floor_factor=floor_factor,
        profile_tolerance=profile_tolerance,
        profile_layers=profile_layers,
        spread_tolerance=spread_tolerance,
    )
    spread_names, spread_ref = _spread_quantities(ref)
    _, spread_flow = _spread_quantities(sampled)
    for name, r, f in zip(spread_names, spread_ref, spread_flow):
        s_ref = spread_at_fixed_energy(r, ref.incident_energy_gev)
        s_flow = spread_at_fixed_energy(f, sampled.incident_energy_gev)
        check.spread_names.append(name)
        check.spread_ratio.append(s_flow / s_ref if s_ref > 0 else float("inf"))
    for name in ("N", "E_vis/E_inc"):
        check.passed[f"W1({name}) <= {floor_factor:g} x floor"] = check.ratio(name) <= floor_factor
    within = [abs(r - 1.0) <= spread_tolerance for r in check.spread_ratio]
    check.passed[f"spread at fixed energy of {', '.join(check.spread_names)} within {100 * spread_tolerance:g}%"] = all(
        within
    )
    dev = np.abs(check.profile_deviation()[:profile_layers])
    check.passed[f"mean layer energy within {100 * profile_tolerance:g}% in layers 0-{profile_layers - 1}"] = bool(
        np.all(dev <= profile_tolerance)
    )
    return check
