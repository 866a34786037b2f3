"""The N calibration: the Shower Flow's number of points -> the number the point model draws.

Fitted by ``caloclouds calibrate`` (:func:`caloclouds.generation.calibrate.fit_point_count_calibration`).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["PointCountCalibration", "COUNT_TABLE_MAX"]

COUNT_TABLE_MAX = 1 << 16  # PointCountCalibration's lookup table covers N below this at most


@dataclass(frozen=True)
class PointCountCalibration:
    """Maps the flow's number of points N to the number of points to generate.

    The clustered Geant4 points and the model's points do not merge into cells in the same way, so
    the same N gives a different number of cells. Two cubic fits (as in CaloClouds II, Sec. 3.3)
    describe the number of cells above threshold as a function of the number of points:

    * ``g4_cells_from_points``: N_cells = P_g4(N), fitted on Geant4;
    * ``model_cells_from_points``: N_cells = P_model(N), fitted on the uncalibrated model;

    and the model generates N' = P_model^-1(P_g4(N)) points, so that it makes as many cells as
    Geant4. Both fits regress cells on points; inverting P_model numerically (rather than fitting
    points on cells) avoids the regression-dilution bias of an inverse fit. The ratio N'/N is
    evaluated with N clipped to ``points_range`` (the range the fits saw), so a cubic is never
    extrapolated. No fits means the identity. Coefficients are in numpy ``polyfit`` order.
    """

    g4_cells_from_points: tuple[float, ...] | None = None
    model_cells_from_points: tuple[float, ...] | None = None
    points_range: tuple[float, float] = (1.0, 1e9)
    min_points: int = 1

    @property
    def is_identity(self) -> bool:
        return self.g4_cells_from_points is None or self.model_cells_from_points is None

    def scale(self, n_points: np.ndarray) -> np.ndarray:
        """k(N) = N'/N, the factor applied to N."""
        n = np.asarray(n_points, dtype=np.float64)
        if self.is_identity:
            return np.ones_like(n)
        lo, hi = self.points_range
        n = np.clip(n, lo, hi)
        grid, cells = self._inverse_grid
        wanted = np.polyval(self.g4_cells_from_points, n)
        return np.interp(wanted, cells, grid) / n

    @functools.cached_property
    def _inverse_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """The model's cubic, made monotone, on a grid wide enough for any correction up to a factor 4
        (built once: at batch 1 it was a third of a millisecond per shower)."""
        lo, hi = self.points_range
        grid = np.linspace(lo / 4, hi * 4, 8192)
        return grid, np.maximum.accumulate(np.polyval(self.model_cells_from_points, grid))

    def calibrated(self, n_points: np.ndarray) -> np.ndarray:
        """N' = rint(N k(N)), at least ``min_points``, as float64."""
        n = np.asarray(n_points, dtype=np.float64)
        return np.rint(np.clip(n * self.scale(n), self.min_points, None))

    @functools.cached_property
    def _table(self) -> Tensor:
        """(T,) int64 N' of every N = 0 .. T-1, to the end of ``points_range`` (at most
        ``COUNT_TABLE_MAX`` entries): a lookup instead of a round trip through numpy at every call."""
        size = min(int(self.points_range[1]) + 2, COUNT_TABLE_MAX)
        return torch.as_tensor(self.calibrated(np.arange(size)), dtype=torch.long)

    def __call__(self, n_points: Tensor) -> Tensor:
        if self.is_identity:
            return n_points.long()
        n = n_points.long()
        table = self._table
        if n.numel() and 0 <= int(n.min()) and int(n.max()) < table.shape[0]:
            return table.to(n.device).index_select(0, n.reshape(-1)).reshape(n.shape)
        out = self.calibrated(n_points.double().cpu().numpy())
        return torch.as_tensor(out, dtype=torch.long, device=n_points.device)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> PointCountCalibration:
        def tup(v: object) -> tuple[float, ...] | None:
            return None if v is None else tuple(float(c) for c in v)  # type: ignore[union-attr]

        return cls(
            tup(data.get("g4_cells_from_points")),
            tup(data.get("model_cells_from_points")),
            tup(data.get("points_range")) or (1.0, 1e9),  # type: ignore[arg-type]
            int(data.get("min_points", 1)),
        )
