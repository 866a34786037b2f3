"""The point-energy calibration: a monotone map of each point's energy, so that the cell-energy
spectrum is Geant4's (issue 24's near-threshold cells).

The network's points are independent, where Geant4's cluster (several in one cell). To light the
right number of cells the N calibration draws fewer points than Geant4 has (about 65 %), each
heavier, and the cells near the threshold come out wrong: 0.76 x Geant4's cells at 0.8-1.2 MIP and
1.29 x at 2.5-4 MIP on the ILD grid at random impact positions. A map of the point energies, one
curve in ln(e), fixes the spectrum: most cells away from the core hold one point, so their energy is
the point's. After the map every (shower, layer) is scaled back to the flow's layer energy
(:func:`~caloclouds.generation.calibration.points.rescale_layer_energies`), so energies per layer,
the number of points and every position are unchanged.

Fitted by ``caloclouds calibrate`` (:func:`caloclouds.generation.calibrate_energy.fit_energy_calibration`);
applied by :func:`map_point_energies` (TorchScript- and ONNX-compatible: a lookup on a uniform grid
in ln(e), no search), which also scales each layer back to its energy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["PointEnergyCalibration", "map_point_energies"]


def map_point_energies(e_mev: Tensor, row: Tensor, n_rows: int, table: Tensor) -> Tensor:
    """Map each point's energy by the curve ``table``, then scale the points of every row (a shower's
    layer) back to the row's energy before the map.

    Args:
        e_mev: (P,) float32 point energies (>= 0).
        row: (P,) int64 row of each point, in [0, n_rows).
        table: (3, G) float32 :meth:`PointEnergyCalibration.table`: a uniform grid of ln(e / MeV), the
            mapped ln(e / MeV) at each, and the step of the mapped value to the next. Between grid
            values the map is linear in ln(e); beyond the ends it keeps the end's ratio.

    Returns:
        (P,) float32 energies in MeV; a point without energy keeps none (ln 0 = -inf maps to -inf).
        TorchScript- and ONNX-compatible, and no search: a lookup on the uniform grid.
    """
    grid, mapped, slope = table[0], table[1], table[2]
    n_grid = grid.shape[0]
    log_e = torch.log(e_mev)
    inside = torch.clamp(log_e, grid[0], grid[n_grid - 1])
    u = (inside - grid[0]) * (1.0 / (grid[1] - grid[0]))
    cell = u.long().clamp_max(n_grid - 2)  # u >= 0: truncation is the floor
    # the mapped value in the grid, plus the shift beyond its ends (log_e - inside is 0 inside)
    new_log_e = torch.addcmul(mapped.index_select(0, cell), slope.index_select(0, cell), u - cell) + (log_e - inside)
    new_e = torch.exp(new_log_e)
    before = torch.zeros(n_rows, dtype=e_mev.dtype, device=e_mev.device).index_add_(0, row, e_mev)
    after = torch.zeros_like(before).index_add_(0, row, new_e)
    return new_e * (before / after.clamp_min(1e-30)).index_select(0, row)


@dataclass(frozen=True)
class PointEnergyCalibration:
    """ln(e / MeV) of a point before (a uniform grid) and after the map; empty: the identity."""

    log_e_mev: tuple[float, ...] = ()
    mapped_log_e_mev: tuple[float, ...] = ()

    @property
    def is_identity(self) -> bool:
        return not self.log_e_mev

    def check(self) -> None:
        """Raise ValueError unless the map is a valid one (the bundle loader reports it with the file)."""
        grid, mapped = np.asarray(self.log_e_mev, float), np.asarray(self.mapped_log_e_mev, float)
        if self.is_identity:
            if len(mapped):
                raise ValueError("mapped_log_e_mev is given without log_e_mev")
            return
        if len(grid) < 2 or grid.shape != mapped.shape:
            raise ValueError(f"need two lists of equal length >= 2, got {len(grid)} and {len(mapped)}")
        if not (np.isfinite(grid).all() and np.isfinite(mapped).all()):
            raise ValueError("the energy map holds values that are not finite")
        step = np.diff(grid)
        if not (step > 0).all() or not np.allclose(step, step[0], rtol=1e-6, atol=1e-9):
            raise ValueError("log_e_mev must be a uniform, increasing grid")
        if (np.diff(mapped) < 0).any():
            raise ValueError("the energy map must not decrease")

    def table(self, device: torch.device | str = "cpu") -> Tensor:
        """(3, G) float32 for :func:`map_point_energies`: grid, mapped values, steps to the next value."""
        mapped = np.asarray(self.mapped_log_e_mev, dtype=np.float64)
        slope = np.append(np.diff(mapped), 0.0)
        rows = np.stack([np.asarray(self.log_e_mev, dtype=np.float64), mapped, slope])
        return torch.tensor(rows, dtype=torch.float32, device=device)

    def apply(self, e_mev: np.ndarray) -> np.ndarray:
        """The map alone (no layer rescaling), numpy in and out: for reports and plots."""
        e = np.asarray(e_mev, dtype=np.float64)
        if self.is_identity:
            return e.copy()
        grid, mapped = np.asarray(self.log_e_mev), np.asarray(self.mapped_log_e_mev)
        log_e = np.log(np.maximum(e, 1e-30))
        inside = np.interp(log_e, grid, mapped)
        out = np.where(log_e < grid[0], log_e + mapped[0] - grid[0], inside)
        out = np.where(log_e > grid[-1], log_e + mapped[-1] - grid[-1], out)
        return np.where(e > 0, np.exp(out), 0.0)

    def to_dict(self) -> dict:
        return {"log_e_mev": list(self.log_e_mev), "mapped_log_e_mev": list(self.mapped_log_e_mev)}

    @classmethod
    def from_dict(cls, data: dict | None) -> PointEnergyCalibration:
        if not data:
            return cls()
        made = cls(
            tuple(float(v) for v in data.get("log_e_mev", ())),
            tuple(float(v) for v in data.get("mapped_log_e_mev", ())),
        )
        made.check()
        return made
