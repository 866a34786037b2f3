"""Fit the N-points calibration of a bundle on Geant4 (``caloclouds calibrate``).

The number of cells above threshold is what a physicist sees; the number of points is what the
models produce. On Geant4 and on the uncalibrated model we fit N_cells(N_points), both cubic
(CaloClouds II, Sec. 3.3), and store the pair in the bundle (see PointCountCalibration).
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

import warnings

import numpy as np
import torch

from caloclouds.errors import CaloCloudsError
from caloclouds.generation.bundle import ModelBundle
from caloclouds.generation.calibration import PointCountCalibration, share_core_energy
from caloclouds.generation.generator import ShowerGenerator
from caloclouds.generation.pipeline import cell_projector
from caloclouds.showers import Showers

__all__ = ["CalibrationReport", "fit_point_count_calibration", "count_cells"]

POLY_DEGREE = 3  # cubic, as in CaloClouds II


def count_cells(showers: Showers, project: Callable[[Showers], Any]) -> np.ndarray:
    """(N,) number of cells above threshold of each shower (``project``: :func:`cell_projector`)."""
    hits = project(showers)
    return np.diff(hits.offsets)


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[tuple[float, ...], float]:
    """Cubic least-squares fit (lower degree if the data cannot support a cubic), with its R^2."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    for degree in range(min(POLY_DEGREE, len(np.unique(x)) - 1), 0, -1):
        with warnings.catch_warnings():
            warnings.simplefilter("error", np.exceptions.RankWarning)
            try:
                # domain mapped to [-1, 1] (well conditioned), then plain polyval coefficients
                poly = np.polynomial.Polynomial.fit(x, y, degree)
            except np.exceptions.RankWarning:
                continue
        coeffs = poly.convert().coef[::-1]
        break
    else:
        raise CaloCloudsError("cannot fit the N calibration: the showers have (almost) one number of points")
    coeffs = np.concatenate([np.zeros(POLY_DEGREE + 1 - len(coeffs)), coeffs])
    residual = y - np.polyval(coeffs, x)
    r2 = 1.0 - residual.var() / max(y.var(), 1e-300)
    return tuple(float(c) for c in coeffs), float(r2)


@dataclass
class CalibrationReport:
    calibration: PointCountCalibration
    r2_g4: float
    r2_model: float
    n_showers: int
    mean_cells_g4: float
    mean_cells_before: float
    mean_cells_after: float

    def text(self) -> str:
        c = self.calibration
        rel = lambda v: (v / self.mean_cells_g4 - 1) * 100  # noqa: E731
        return "\n".join([
            f"N calibration fitted on {self.n_showers} showers (cubic fits, ILD cells above threshold)",
            f"  Geant4: N_cells(N_points)   R^2 = {self.r2_g4:.4f}  coeffs {np.round(c.g4_cells_from_points, 6).tolist()}",
            f"  model:  N_cells(N_points)   R^2 = {self.r2_model:.4f}  coeffs {np.round(c.model_cells_from_points, 6).tolist()}",
            f"  mean cells: Geant4 {self.mean_cells_g4:.1f}, model before {self.mean_cells_before:.1f} "
            f"({rel(self.mean_cells_before):+.1f} %), after {self.mean_cells_after:.1f} ({rel(self.mean_cells_after):+.1f} %)",
        ])


def fit_point_count_calibration(
    bundle: ModelBundle,
    reference: Showers,
    *,
    geometry: str = "ild",
    sampler: str = "cm",
    device: str = "cpu",
    seed: int = 0,
    batch_size: int = 500,
    iterations: int = 2,
) -> CalibrationReport:
    """Fit the cubic pair on ``reference`` (Geant4) and on the model at the same energies.

    Generating fewer points puts more energy on each, so more of them pass the cell threshold:
    the model's N_cells(N) depends on the calibration itself. Each of the ``iterations`` refits
    the model's cubic on showers generated with the previous calibration.
    """
    project = cell_projector(geometry, bundle.config.detector)  # the bundle's detector and threshold
    energies = reference.incident_energy_gev

    settings = bundle.config.generation

    def model_counts(b: ModelBundle, calibrated: bool) -> tuple[np.ndarray, np.ndarray]:
        # N is the number of points the network draws: the core sharing comes after, so it is applied
        # here to the cells only
        gen = ShowerGenerator(b, sampler=sampler, device=device, calibrate_n=calibrated,  # type: ignore[arg-type]
                              share_core=False)
        g = torch.Generator(device=device).manual_seed(seed)
        parts = [gen.generate(energies[i : i + batch_size], generator=g) for i in range(0, len(energies), batch_size)]
        drawn = Showers.concatenate(parts)
        points, offsets = share_core_energy(torch.from_numpy(drawn.points), torch.from_numpy(drawn.offsets),
                                            radius_mm=settings.core_radius_mm, spread_mm=settings.core_spread_mm)
        shared = Showers(points.numpy(), offsets.numpy(), drawn.incident_energy_gev)
        return drawn.n_points, count_cells(shared, project)

    cells_g4 = count_cells(reference, project)
    points_model, cells_model = model_counts(bundle, False)
    g4_coeffs, r2_g4 = _fit(reference.n_points, cells_g4)
    model_coeffs, r2_model = _fit(points_model, cells_model)
    lo, hi = float(reference.n_points.min()), float(reference.n_points.max())
    calibration = PointCountCalibration(g4_coeffs, model_coeffs, (lo, hi))
    points_after, cells_after = model_counts(bundle.with_calibration(calibration), True)
    for _ in range(iterations - 1):
        model_coeffs, r2_model = _fit(points_after, cells_after)
        calibration = PointCountCalibration(g4_coeffs, model_coeffs, (lo, hi))
        points_after, cells_after = model_counts(bundle.with_calibration(calibration), True)
    return CalibrationReport(
        calibration=calibration,
        r2_g4=r2_g4,
        r2_model=r2_model,
        n_showers=len(reference),
        mean_cells_g4=float(cells_g4.mean()),
        mean_cells_before=float(cells_model.mean()),
        mean_cells_after=float(cells_after.mean()),
    )
