"""Invertible per-feature transform between physical points and the diffusion space.

Physical points are ``x_mm, y_mm, layer, e_MeV`` (local frame, shower axis +z). The network works
on four features of spread ~``sigma_data``:

* ``x, y``: ``asinh(x / xy_scale_mm)``, divided by its spread. The asinh keeps the narrow core
  (a few mm) resolved while the halo (up to 200 mm) stays within a few units. x and y share one
  scale, so a rotation about the shower axis is a symmetry of the transform's input.
* ``depth``: the integer layer plus a uniform jitter in [0, 1) (training only), i.e. a continuous
  depth in layer units in [0, n_layers), standardised. ``floor(depth)`` gives the layer back.
* ``e``: ``ln(e_MeV)``, standardised.

Training may also jitter x and y uniformly inside the 0.848 mm clustering sub-cell (the data sit
on the sub-cell centres); generated x, y are then continuous. Everything is fitted once on the
training set and stored in every checkpoint (:meth:`PointNormaliser.to_dict`). The inverse is the
exact inverse of the forward map (no mirror-image de-normalisation), except that depth is clamped
to [0, n_layers) and energy to at least ``MIN_ENERGY_MEV``.

The shower conditions (incident energy and number of points) are standardised here too.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor

from caloclouds.errors import ConfigError
from caloclouds.showers import shower_index

__all__ = ["PointNormaliser", "layer_totals", "MIN_ENERGY_MEV", "DEPTH_EPS"]

MIN_ENERGY_MEV = 1e-12  # Floor for ln(e): energies below this (never seen in Geant4 data) are clamped.
DEPTH_EPS = 1e-4  # Generated depth is clamped to [0, n_layers - DEPTH_EPS] layer units.


def layer_totals(points: np.ndarray, offsets: np.ndarray, n_layers: int) -> tuple[np.ndarray, np.ndarray]:
    """Points and energy (MeV) per (shower, layer): two ``(N, n_layers)`` arrays."""
    offsets = np.asarray(offsets, dtype=np.int64)
    n = len(offsets) - 1
    shower = shower_index(offsets)
    key = shower * n_layers + np.asarray(points[:, 2]).astype(np.int64)
    counts = np.bincount(key, minlength=n * n_layers).reshape(n, n_layers).astype(np.float64)
    energy = np.bincount(key, weights=points[:, 3], minlength=n * n_layers).reshape(n, n_layers)
    return counts, energy


@dataclass(frozen=True)
class PointNormaliser:
    """Fitted constants of the point and condition transforms (all plain floats, see module doc)."""

    n_layers: int  # Depth range is [0, n_layers) in layer units.
    subcell_pitch_mm: float  # Width of the x, y jitter during training (0 = no jitter).
    sigma_data: float  # Target spread of every feature.
    xy_scale_mm: float  # asinh scale of x and y in mm.
    xy_std: float  # Spread of asinh(x / xy_scale_mm) over the training points.
    depth_mean: float  # Mean continuous depth (layer units).
    depth_std: float
    log_e_mean: float  # Mean of ln(e / MeV).
    log_e_std: float
    energy_mean_gev: float  # Incident energy standardisation.
    energy_std_gev: float
    n_points_mean: float  # Number-of-points standardisation.
    n_points_std: float
    # Per-layer models (``per_layer``): points are (x, y, e) given their layer; each (shower, layer)
    # row is conditioned on ln(n_l) and ln(E_l / n_l), standardised with these constants.
    per_layer: bool = False
    log_n_layer_mean: float = 0.0
    log_n_layer_std: float = 1.0
    log_e_point_mean: float = 0.0  # ln of the mean point energy of a layer (MeV)
    log_e_point_std: float = 1.0
    # Direction-aware per-layer models (``diffusion.direction``): each row is also conditioned on
    # tan θ of its shower, whose points are in the frame of the inclined axis (caloclouds.direction).
    direction: bool = False

    # -- fitting and storage -------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        points: np.ndarray,
        offsets: np.ndarray,
        incident_energy_gev: np.ndarray,
        *,
        n_layers: int,
        subcell_pitch_mm: float,
        sigma_data: float,
        per_layer: bool = False,
        direction: bool = False,
    ) -> PointNormaliser:
        """Fit the constants on training points ``(P, 4)`` with integer ``layer`` column."""
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 4 or len(points) < 2:
            raise ValueError(f"points must be (P>=2, 4), got shape {points.shape}")
        r = np.hypot(points[:, 0], points[:, 1])
        xy_scale = float(max(np.median(r), 1e-3))
        a = np.arcsinh(np.concatenate([points[:, 0], points[:, 1]]) / xy_scale)
        depth = points[:, 2] + 0.5  # mean of the jittered depth; spread of U(0,1) added below
        log_e = np.log(np.maximum(points[:, 3], MIN_ENERGY_MEV))
        n_points = np.diff(np.asarray(offsets)).astype(np.float64)
        energy = np.asarray(incident_energy_gev, dtype=np.float64)
        layer_stats = {}
        if per_layer:
            n_l, e_l = layer_totals(points, offsets, n_layers)
            hit = n_l > 0
            log_n = np.log(n_l[hit])
            log_e_layer = np.log(np.maximum(e_l[hit] / n_l[hit], MIN_ENERGY_MEV))  # not log_e: that is per point
            layer_stats = dict(
                per_layer=True,
                log_n_layer_mean=float(log_n.mean()),
                log_n_layer_std=float(max(log_n.std(), 1e-3)),
                log_e_point_mean=float(log_e_layer.mean()),
                log_e_point_std=float(max(log_e_layer.std(), 1e-3)),
                direction=bool(direction),
            )
        elif direction:
            raise ValueError("direction conditioning needs a per-layer model (diffusion.per_layer)")
        return cls(
            n_layers=int(n_layers),
            subcell_pitch_mm=float(subcell_pitch_mm),
            sigma_data=float(sigma_data),
            xy_scale_mm=xy_scale,
            xy_std=float(np.sqrt(np.mean(a**2))),
            depth_mean=float(depth.mean()),
            depth_std=float(np.sqrt(depth.var() + 1.0 / 12.0)),
            log_e_mean=float(log_e.mean()),
            log_e_std=float(log_e.std()),
            energy_mean_gev=float(energy.mean()),
            energy_std_gev=float(max(energy.std(), 1e-6)),
            n_points_mean=float(n_points.mean()),
            n_points_std=float(max(n_points.std(), 1.0)),
            **layer_stats,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for checkpoints."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PointNormaliser:
        names = {f.name for f in fields(cls)}
        optional = {f.name for f in fields(cls) if f.default is not MISSING}  # added after version 1
        missing = sorted(names - set(data) - optional)
        if missing:
            raise ConfigError(f"normaliser is missing key(s) {missing}")
        return cls(**{k: data[k] for k in names if k in data})

    # -- points ----------------------------------------------------------------------------------

    def forward(
        self,
        points: Tensor,
        *,
        jitter: bool = False,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Physical ``(P, 4)`` points to the diffusion space.

        Args:
            points: ``x_mm, y_mm, depth, e_MeV``; depth is the integer layer when ``jitter`` is
                True, or a continuous depth in layer units when False.
            jitter: add U[0,1) to the layer and U(-p/2, p/2) to x, y (p the sub-cell pitch).
            generator: random source of the jitter.

        Returns:
            ``(P, 4)`` float32 features of spread ~``sigma_data``.
        """
        p = points.to(torch.float32)
        x, y, depth, e = p.unbind(-1)
        if jitter:  # per-layer models keep the integer layer: no depth jitter
            u = torch.rand(p.shape[0], 2 if self.per_layer else 3, generator=generator, device=p.device, dtype=p.dtype)
            x = x + (u[:, 0] - 0.5) * self.subcell_pitch_mm
            y = y + (u[:, 1] - 0.5) * self.subcell_pitch_mm
            if not self.per_layer:
                depth = depth + u[:, 2]
        s = self.sigma_data
        columns = [
            torch.asinh(x / self.xy_scale_mm) * (s / self.xy_std),
            torch.asinh(y / self.xy_scale_mm) * (s / self.xy_std),
            (depth - self.depth_mean) * (s / self.depth_std),
            (torch.log(e.clamp_min(MIN_ENERGY_MEV)) - self.log_e_mean) * (s / self.log_e_std),
        ]
        if self.per_layer:  # the layer is a condition, not a feature
            del columns[2]
        return torch.stack(columns, dim=-1)

    @property
    def n_features(self) -> int:
        """Features per point in the diffusion space: 3 (x, y, e) per layer, else 4."""
        return 3 if self.per_layer else 4

    def inverse(self, features: Tensor, layer: Tensor | None = None) -> Tensor:
        """Diffusion space to physical ``(P, 4)`` points ``x_mm, y_mm, depth, e_MeV``.

        Depth is continuous in layer units, clamped to ``[0, n_layers - DEPTH_EPS]``; per-layer
        models take the integer ``layer`` (P,) of each point and return it as the depth column.
        """
        f = features.to(torch.float32)
        s = self.sigma_data
        if self.per_layer:
            if layer is None:
                raise ValueError("a per-layer normaliser needs the layer of each point")
            a, b, le = f.unbind(-1)
            depth = layer.to(f)
        else:
            a, b, d, le = f.unbind(-1)
            depth = (d * (self.depth_std / s) + self.depth_mean).clamp(0.0, self.n_layers - DEPTH_EPS)
        x = torch.sinh(a * (self.xy_std / s)) * self.xy_scale_mm
        y = torch.sinh(b * (self.xy_std / s)) * self.xy_scale_mm
        # ln(e) is clamped to what float32 exp can return without overflow.
        log_e = (le * (self.log_e_std / s) + self.log_e_mean).clamp(max=math.log(3e38))
        e = torch.exp(log_e).clamp_min(MIN_ENERGY_MEV)
        return torch.stack([x, y, depth, e], dim=-1)

    # -- shower conditions -----------------------------------------------------------------------

    def conditions(self, incident_energy_gev: Tensor, n_points: Tensor) -> Tensor:
        """Standardised ``(B, 2)`` condition features: incident energy and number of points."""
        e = (incident_energy_gev.to(torch.float32) - self.energy_mean_gev) / self.energy_std_gev
        n = (n_points.to(torch.float32) - self.n_points_mean) / self.n_points_std
        return torch.stack([e, n], dim=-1)

    def layer_conditions(
        self,
        incident_energy_gev: Tensor,
        n_points: Tensor,
        layer: Tensor,
        n_layer: Tensor,
        e_layer_mev: Tensor,
        tan_theta: Tensor | None = None,
    ) -> Tensor:
        """Standardised ``(R, 4 + n_layers [+ 1])`` features of R (shower, layer) rows.

        Columns: incident energy, total points of the shower, ln(n_l), ln(E_l / n_l), one-hot layer,
        and for direction-aware models tan θ (0 when ``tan_theta`` is None: normal incidence).
        All arguments are (R,); ``n_layer`` must be >= 1.
        """
        shower = self.conditions(incident_energy_gev, n_points)
        n_l = n_layer.to(torch.float32)
        log_n = (n_l.log() - self.log_n_layer_mean) / self.log_n_layer_std
        mean_e = (e_layer_mev.to(torch.float32) / n_l).clamp_min(MIN_ENERGY_MEV)
        log_e = (mean_e.log() - self.log_e_point_mean) / self.log_e_point_std
        one_hot = torch.nn.functional.one_hot(layer.long(), self.n_layers).to(torch.float32)
        columns = [shower, log_n[:, None], log_e[:, None], one_hot]
        if self.direction:
            tan = torch.zeros_like(log_n) if tan_theta is None else tan_theta.to(torch.float32).reshape(-1)
            columns.append(tan[:, None])
        return torch.cat(columns, dim=-1)
