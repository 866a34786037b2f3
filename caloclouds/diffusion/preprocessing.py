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
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor

from caloclouds.errors import ConfigError

__all__ = ["PointNormaliser", "MIN_ENERGY_MEV", "DEPTH_EPS"]

MIN_ENERGY_MEV = 1e-12   # Floor for ln(e): energies below this (never seen in Geant4 data) are clamped.
DEPTH_EPS = 1e-4         # Generated depth is clamped to [0, n_layers - DEPTH_EPS] layer units.


@dataclass(frozen=True)
class PointNormaliser:
    """Fitted constants of the point and condition transforms (all plain floats, see module doc)."""

    n_layers: int                 # Depth range is [0, n_layers) in layer units.
    subcell_pitch_mm: float       # Width of the x, y jitter during training (0 = no jitter).
    sigma_data: float             # Target spread of every feature.
    xy_scale_mm: float            # asinh scale of x and y in mm.
    xy_std: float                 # Spread of asinh(x / xy_scale_mm) over the training points.
    depth_mean: float             # Mean continuous depth (layer units).
    depth_std: float
    log_e_mean: float             # Mean of ln(e / MeV).
    log_e_std: float
    energy_mean_gev: float        # Incident energy standardisation.
    energy_std_gev: float
    n_points_mean: float          # Number-of-points standardisation.
    n_points_std: float

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
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for checkpoints."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PointNormaliser:
        names = {f.name for f in fields(cls)}
        missing = sorted(names - set(data))
        if missing:
            raise ConfigError(f"normaliser is missing key(s) {missing}")
        return cls(**{k: data[k] for k in names})

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
        if jitter:
            u = torch.rand(p.shape[0], 3, generator=generator, device=p.device, dtype=p.dtype)
            x = x + (u[:, 0] - 0.5) * self.subcell_pitch_mm
            y = y + (u[:, 1] - 0.5) * self.subcell_pitch_mm
            depth = depth + u[:, 2]
        s = self.sigma_data
        out = torch.stack(
            [
                torch.asinh(x / self.xy_scale_mm) * (s / self.xy_std),
                torch.asinh(y / self.xy_scale_mm) * (s / self.xy_std),
                (depth - self.depth_mean) * (s / self.depth_std),
                (torch.log(e.clamp_min(MIN_ENERGY_MEV)) - self.log_e_mean) * (s / self.log_e_std),
            ],
            dim=-1,
        )
        return out

    def inverse(self, features: Tensor) -> Tensor:
        """Diffusion space to physical ``(P, 4)`` points ``x_mm, y_mm, depth, e_MeV``.

        Depth is continuous in layer units, clamped to ``[0, n_layers - DEPTH_EPS]``.
        """
        f = features.to(torch.float32)
        a, b, d, le = f.unbind(-1)
        s = self.sigma_data
        x = torch.sinh(a * (self.xy_std / s)) * self.xy_scale_mm
        y = torch.sinh(b * (self.xy_std / s)) * self.xy_scale_mm
        depth = (d * (self.depth_std / s) + self.depth_mean).clamp(0.0, self.n_layers - DEPTH_EPS)
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
