"""The radial calibration: each point moved along its direction from the shower axis so that the
energy-weighted radial profile of every layer is Geant4's, as a function of the incident energy.

Fitted by ``caloclouds calibrate``; applied by :func:`map_radii` (TorchScript-compatible, a lookup in
the table of :func:`radial_grid`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from caloclouds.generation.calibration.tensors import compiled, per_point

__all__ = ["RadialCalibration", "map_radii", "radial_grid", "radial_node_weights"]

RADIAL_GRID_POINTS = 1024  # radii of the lookup table of the radial map, uniform in ln(1 + r / r0) ...
RADIAL_GRID_R0_MM = 0.1  # ... with this r0
RADIAL_GRID_END_MM = 2000.0  # ... up to this radius (beyond: the last ratio)


def radial_grid(
    model_r: Tensor, g4_r: Tensor, *, r0_mm: float = RADIAL_GRID_R0_MM, r_end_mm: float = RADIAL_GRID_END_MM
) -> Tensor:
    """The radial map of every table row on a fixed grid of radii, for :func:`map_radii`.

    Row b maps the model's quantile radii ``model_r[b]`` onto Geant4's ``g4_r[b]``, linearly in
    between; below the first and beyond the last quantile the radius is scaled by the ratio there
    (a knot at (0, 0) and one far out on the line through the last pair). The map is sampled at
    ``RADIAL_GRID_POINTS`` radii uniform in ln(1 + r / r0_mm), so that applying it is a lookup
    instead of a search (at 10 mm the grid step is 0.1 mm).

    Returns:
        (R, G) float32: the mapped radius (mm) of grid radius g in row b.
    """
    step = math.log1p(r_end_mm / r0_mm) / (RADIAL_GRID_POINTS - 1)
    grid = r0_mm * np.expm1(np.arange(RADIAL_GRID_POINTS) * step)
    model, g4 = model_r.double().cpu().numpy(), g4_r.double().cpu().numpy()
    far = 1.0e6
    table = np.empty((len(model), RADIAL_GRID_POINTS))
    for b in range(len(model)):  # once per table row (150 of them), when the bundle is loaded
        last = g4[b, -1] / max(model[b, -1], 1e-9)
        knots_model = np.concatenate([[0.0], model[b], [far]])
        table[b] = np.interp(grid, knots_model, np.concatenate([[0.0], g4[b], [far * last]]))
    return torch.as_tensor(table, dtype=torch.float32)


def _grid_lookup(
    table: Tensor, row: Tensor, cell: Tensor, t: Tensor, one_minus_t: Tensor, r: Tensor, beyond: Tensor, r_end_mm: float
) -> Tensor:
    """Mapped radius of each point in its table row: linear between grid radii, the last ratio beyond
    (``beyond``: r > r_end_mm)."""
    n_grid = table.shape[1]
    flat = table.reshape(-1)
    at = row * n_grid + cell
    inside = flat.index_select(0, at) * one_minus_t + flat.index_select(0, at + 1) * t
    return torch.where(beyond, r * table[:, n_grid - 1].index_select(0, row) / r_end_mm, inside)


def radial_node_weights(incident_energy_gev: Tensor, nodes_gev: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """For :func:`map_radii`: the energy node below each energy and the weight of the one above (``dtype``)."""
    n_nodes = nodes_gev.shape[0]
    if n_nodes == 1:
        lower = torch.zeros(incident_energy_gev.shape, dtype=torch.long, device=incident_energy_gev.device)
        return lower, torch.zeros(incident_energy_gev.shape, dtype=dtype, device=incident_energy_gev.device)
    energy = incident_energy_gev.to(nodes_gev.dtype)
    lower = (torch.searchsorted(nodes_gev, energy) - 1).clamp(0, n_nodes - 2)
    weight = ((energy - nodes_gev[lower]) / (nodes_gev[lower + 1] - nodes_gev[lower])).clamp(0.0, 1.0).to(dtype)
    return lower, weight


def map_radii(
    x_mm: Tensor,
    y_mm: Tensor,
    layer: Tensor,
    incident_energy_gev: Tensor,
    nodes_gev: Tensor,
    table: Tensor,
    r0_mm: float = RADIAL_GRID_R0_MM,
    r_end_mm: float = RADIAL_GRID_END_MM,
    shower: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Move each point along its direction from the axis by the radial calibration.

    Args:
        x_mm, y_mm: (P,) positions about the shower axis.
        layer: (P,) int64 layer of each point.
        incident_energy_gev: (P,) the incident energy of each point's shower, or with ``shower``
            (P,) the shower of each point, (B,) the incident energy of each shower.
        nodes_gev: (K,) increasing energies at which the maps are given.
        table: :func:`radial_grid` of the (K * L) rows, row ``k * L + layer``. Between two nodes
            the mapped radii are interpolated linearly; beyond ``r_end_mm`` the last ratio is kept.
        r0_mm, r_end_mm: the grid of ``table`` (as in :func:`radial_grid`).

    Returns:
        The new ``(x_mm, y_mm)``. TorchScript-compatible.
    """
    n_nodes = nodes_gev.shape[0]
    n_rows, n_grid = table.shape
    n_layers = n_rows // n_nodes
    lower, weight = radial_node_weights(incident_energy_gev, nodes_gev, x_mm.dtype)
    lower_row, upper_row = lower * n_layers, (lower + 1).clamp_max(n_nodes - 1) * n_layers
    weight_lower = torch.rsub(weight, 1.0)
    if shower is not None:  # once per shower, then per point: the same values
        lower_row, upper_row = per_point(lower_row, shower), per_point(upper_row, shower)
        weight, weight_lower = per_point(weight, shower), per_point(weight_lower, shower)
    table = table.to(x_mm.dtype)
    r = torch.hypot(x_mm, y_mm)
    u = torch.log1p(r / r0_mm) * ((n_grid - 1) / math.log1p(r_end_mm / r0_mm))
    cell = u.floor().clamp(0, n_grid - 2)
    t = (u - cell).clamp(0.0, 1.0)
    one_minus_t = torch.rsub(t, 1.0)
    cell = cell.long()
    beyond = r > r_end_mm
    mapped = (
        _grid_lookup(table, lower_row + layer, cell, t, one_minus_t, r, beyond, r_end_mm) * weight_lower
        + _grid_lookup(table, upper_row + layer, cell, t, one_minus_t, r, beyond, r_end_mm) * weight
    )
    scale = torch.where(r > 0, mapped / r.clamp_min(1e-12), 1.0)
    return x_mm * scale, y_mm * scale


@dataclass(frozen=True)
class RadialCalibration:
    """Energy-weighted radial quantiles per (energy node, layer) of the model and of Geant4.

    ``caloclouds calibrate`` fits them on the training showers and on the model at the same
    energies (before the N calibration and the core sharing; the radial profile of a layer does not
    depend on how many points are drawn). Empty tables mean the identity.
    """

    nodes_gev: tuple[float, ...] = ()
    levels: tuple[float, ...] = ()
    model_r_mm: tuple[tuple[float, ...], ...] = ()  # (K * L) rows of Q quantiles, row k * L + layer
    g4_r_mm: tuple[tuple[float, ...], ...] = ()

    @property
    def is_identity(self) -> bool:
        return len(self.nodes_gev) == 0

    @functools.cached_property
    def _cpu_tensors(self) -> tuple[Tensor, Tensor]:
        table = radial_grid(
            torch.tensor(self.model_r_mm, dtype=torch.float64), torch.tensor(self.g4_r_mm, dtype=torch.float64)
        )
        return torch.tensor(self.nodes_gev, dtype=torch.float64), table

    def tensors(self, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """``(nodes_gev, table)`` for :func:`map_radii` (built once)."""
        return tuple(t.to(device) for t in self._cpu_tensors)  # type: ignore[return-value]

    def apply(self, x_mm: Tensor, y_mm: Tensor, layer: Tensor, incident_energy_gev: Tensor) -> tuple[Tensor, Tensor]:
        """:func:`map_radii` with these tables (the identity when empty)."""
        if self.is_identity or len(x_mm) == 0:
            return x_mm, y_mm
        return compiled(map_radii)(x_mm, y_mm, layer, incident_energy_gev, *self.tensors(x_mm.device))

    def to_dict(self) -> dict:
        def rows(t: tuple) -> list:
            return [[round(v, 4) for v in row] for row in t]

        return {
            "nodes_gev": list(self.nodes_gev),
            "levels": list(self.levels),
            "model_r_mm": rows(self.model_r_mm),
            "g4_r_mm": rows(self.g4_r_mm),
        }

    @classmethod
    def from_dict(cls, data: dict | None) -> RadialCalibration:
        data = data or {}

        def rows(v: object) -> tuple[tuple[float, ...], ...]:
            return tuple(tuple(float(x) for x in row) for row in (v or ()))  # type: ignore[union-attr]

        cal = cls(
            tuple(float(v) for v in data.get("nodes_gev", ())),
            tuple(float(v) for v in data.get("levels", ())),
            rows(data.get("model_r_mm")),
            rows(data.get("g4_r_mm")),
        )
        cal.check()
        return cal

    def check(self) -> None:
        """Raise ValueError, saying what is wrong, unless the tables have the shapes :func:`map_radii` needs."""
        if self.is_identity:
            return
        n_nodes, n_levels = len(self.nodes_gev), len(self.levels)
        nodes = np.asarray(self.nodes_gev)
        if not (np.all(np.isfinite(nodes)) and np.all(np.diff(nodes) > 0)):
            raise ValueError(f"nodes_gev must be finite and increasing, got {list(self.nodes_gev)}")
        for name, table in (("model_r_mm", self.model_r_mm), ("g4_r_mm", self.g4_r_mm)):
            if not table or len(table) % n_nodes:
                raise ValueError(f"{name} has {len(table)} rows, not a multiple of the {n_nodes} energy nodes")
            for i, row in enumerate(table):
                if len(row) != n_levels:
                    raise ValueError(f"{name} row {i} has {len(row)} quantiles, the levels {n_levels}")
                radii = np.asarray(row)
                if not (np.all(np.isfinite(radii)) and np.all(np.diff(radii) >= 0) and radii[0] >= 0):
                    raise ValueError(f"{name} row {i} is not a finite, non-decreasing list of radii >= 0")
        if len(self.model_r_mm) != len(self.g4_r_mm):
            raise ValueError(f"model_r_mm has {len(self.model_r_mm)} rows, g4_r_mm {len(self.g4_r_mm)}")
