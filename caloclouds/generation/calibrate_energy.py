"""Fit the point-energy calibration (:mod:`caloclouds.generation.calibration.energy`) on Geant4.

The model is run once at the reference's incident energies, with the bundle's other calibrations.
Both samples are projected on the cells of ``geometry`` without threshold, each shower at its own
impact position, uniform within a cell (a seeded draw): Geant4's points sit on a sub-cell grid that
the axis of a real shower does not share. The map is then refined in ``iterations`` steps on these
same points (the map does not move them): at each step a model cell of energy e is sent to the
energy e' at which Geant4 has as many cells per shower above e' as the model has above e (matching
the counts, not the normalised spectra, keeps the number of cells above threshold), and the step's
change in ln(e) is applied to the points, damped by ``damping``. The layers are scaled back to their
energies by :func:`~caloclouds.generation.calibration.map_point_energies`, exactly as the generator does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

import projection
from caloclouds.errors import CaloCloudsError
from caloclouds.generation.bundle import ModelBundle
from caloclouds.generation.calibration import PointEnergyCalibration, map_point_energies
from caloclouds.generation.generator import generate_in_batches
from caloclouds.showers import Showers

__all__ = [
    "EnergyCalibrationReport",
    "fit_energy_calibration",
    "cell_energies_mev",
    "cell_spectrum",
    "SPECTRUM_EDGES_MIP",
]

#: The map's grid: uniform in ln(e / MeV) from 2e-3 MeV to 500 MeV (a point beyond keeps the end's ratio).
GRID_LOG_E_MEV = tuple(float(v) for v in np.linspace(np.log(2e-3), np.log(500.0), 241))
MIN_CELLS_ABOVE = 50  # where fewer model cells (of the whole sample) lie above e, the map is not changed
#: Cell-energy bins (MIP) of the report, as the spectrum check of issue 24 counts them.
SPECTRUM_EDGES_MIP = (0.5, 0.8, 1.2, 1.8, 2.5, 4.0, 8.0, 20.0, 60.0, 200.0, np.inf)


@dataclass(frozen=True)
class EnergyCalibrationReport:
    """The fitted map and the cells per shower in :data:`SPECTRUM_EDGES_MIP` bins."""

    calibration: PointEnergyCalibration
    cells_g4: tuple[float, ...]
    cells_before: tuple[float, ...]
    cells_after: tuple[float, ...]

    def text(self) -> str:
        edges = SPECTRUM_EDGES_MIP
        labels = [f"{lo:g}-{hi:g}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
        ratio = lambda cells: " ".join(f"{m / max(g, 1e-9):>8.2f}" for m, g in zip(cells, self.cells_g4, strict=True))  # noqa: E731
        return "\n".join(
            [
                "point-energy calibration: cells per shower above threshold, model / Geant4, by cell energy (MIP)",
                "  MIP           " + " ".join(f"{s:>8s}" for s in labels),
                "  Geant4 cells  " + " ".join(f"{v:>8.1f}" for v in self.cells_g4),
                "  model before  " + ratio(self.cells_before),
                "  model after   " + ratio(self.cells_after),
            ]
        )


def cell_energies_mev(showers: Showers, project: Any, pitch_mm: float, rng: np.random.Generator) -> np.ndarray:
    """The energy (MeV) of every cell of every shower, each shower moved by an offset uniform in a
    square cell of ``pitch_mm`` (``project``: showers -> cell hits, without threshold)."""
    offset = (rng.random((len(showers), 2)) - 0.5) * pitch_mm
    points = showers.points.copy()
    points[:, :2] += offset[showers.shower_index].astype(np.float32)
    hits = project(Showers(points, showers.offsets, showers.incident_energy_gev))
    return np.asarray(hits.e_mev, dtype=np.float64)


def _cells_above(log_e: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Number of cells above each grid value (increasing grid: a decreasing count)."""
    ordered = np.sort(log_e)
    return (len(ordered) - np.searchsorted(ordered, grid)).astype(np.float64)


def _spectrum(e_mev: np.ndarray, mip_mev: float, n_showers: int) -> tuple[float, ...]:
    counts = np.histogram(e_mev / mip_mev, np.asarray(SPECTRUM_EDGES_MIP))[0]
    return tuple(float(c) / n_showers for c in counts)


def _projector(geometry: str, bundle: ModelBundle) -> Any:
    """showers -> cell hits on ``geometry``, without threshold."""
    detector = bundle.config.detector
    geom = projection.get_geometry(geometry, detector=detector)
    return lambda showers: projection.project(showers, geom, n_shower_layers=detector.n_layers)


def cell_spectrum(
    bundle: ModelBundle, reference: Showers, *, geometry: str = "ild", seed: int = 0, **options: Any
) -> tuple[float, ...]:
    """Cells per shower in :data:`SPECTRUM_EDGES_MIP` bins of the model with all of ``bundle``'s
    calibrations, at the reference's energies and random impact positions (the fit's check);
    ``options`` (``model_part``, ``device``, ``batch_size``) go to :func:`generate_in_batches`."""
    model = generate_in_batches(bundle, reference.incident_energy_gev, seed=seed, **options)
    detector = bundle.config.detector
    e = cell_energies_mev(model, _projector(geometry, bundle), detector.cell_pitch_mm, np.random.default_rng([seed, 2]))
    return _spectrum(e, detector.mip_mev, len(model))


def fit_energy_calibration(
    bundle: ModelBundle,
    reference: Showers,
    *,
    geometry: str = "ild",
    seed: int = 0,
    iterations: int = 6,
    damping: float = 0.8,
    **options: Any,
) -> EnergyCalibrationReport:
    """The point-energy map that gives the model Geant4's cell-energy spectrum (see the module doc).

    ``bundle`` carries the N and radial calibrations to fit with; its own point-energy map is not
    used. ``options`` (``model_part``, ``device``, ``batch_size``) go to :func:`generate_in_batches`.
    """
    detector = bundle.config.detector
    if len(reference) < 20:
        raise CaloCloudsError(f"the point-energy calibration needs at least 20 reference showers, got {len(reference)}")
    project = _projector(geometry, bundle)
    model = generate_in_batches(bundle, reference.incident_energy_gev, seed=seed, calibrate_energies=False, **options)
    pitch = detector.cell_pitch_mm
    g4_e = cell_energies_mev(reference, project, pitch, np.random.default_rng([seed, 1]))
    grid = np.asarray(GRID_LOG_E_MEV)
    g4_above = _cells_above(np.log(g4_e[g4_e > 0]), grid) / len(reference)

    points = torch.from_numpy(model.points)
    n_rows = len(model) * detector.n_layers  # the generator's rows: (shower, layer)
    row = torch.from_numpy(model.shower_index).long() * detector.n_layers + points[:, 2].long()

    def cells_with(calibration: PointEnergyCalibration) -> np.ndarray:
        """The model's cell energies with ``calibration`` applied to its points."""
        e = points[:, 3]
        if not calibration.is_identity:
            e = map_point_energies(e, row, n_rows, calibration.table())
        mapped = Showers(
            torch.cat([points[:, :3], e.float().unsqueeze(1)], 1).numpy(), model.offsets, model.incident_energy_gev
        )
        return cell_energies_mev(mapped, project, pitch, np.random.default_rng([seed, 2]))

    curve = grid.copy()
    calibration = PointEnergyCalibration()
    before = cells_with(calibration)
    model_e = before
    for step in range(iterations):
        if step:
            model_e = cells_with(calibration)
        model_above = _cells_above(np.log(model_e[model_e > 0]), grid)
        # the Geant4 energy with as many cells per shower above it as the model has above grid[k]
        target = np.interp(-model_above / len(model), -g4_above, grid)
        valid = (model_above >= MIN_CELLS_ABOVE) & (model_above / len(model) <= g4_above[0])
        change = np.where(valid, target - grid, 0.0)
        curve = np.maximum.accumulate(curve + damping * np.interp(curve, grid, change))
        calibration = PointEnergyCalibration(GRID_LOG_E_MEV, tuple(float(v) for v in curve))
    after = cells_with(calibration)
    mip = detector.mip_mev
    return EnergyCalibrationReport(
        calibration,
        _spectrum(g4_e, mip, len(reference)),
        _spectrum(before, mip, len(model)),
        _spectrum(after, mip, len(model)),
    )
