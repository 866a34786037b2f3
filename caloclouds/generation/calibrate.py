"""Fit the calibrations of a bundle on Geant4 (``caloclouds calibrate``).

1. The radial calibration (:func:`fit_radial_calibration`): the energy-weighted radial quantiles of
   every layer, in bins of incident energy, of Geant4 and of the model at the same energies.
2. The N-points calibration (:func:`fit_point_count_calibration`): the number of cells above
   threshold is what a physicist sees; the number of points is what the models produce. On Geant4
   and on the uncalibrated model we fit N_cells(N_points), both cubic (CaloClouds II, Sec. 3.3),
   and store the pair in the bundle (see PointCountCalibration). It is fitted with the radial
   calibration applied, since the cells depend on where the points lie.
3. The point-energy calibration (:mod:`caloclouds.generation.calibrate_energy`): a map of the point
   energies that gives the cells Geant4's energy spectrum, fitted with the other two applied; the
   radial calibration is then fitted again with the map and the N calibration applied.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

import warnings

import numpy as np
import torch

from caloclouds.errors import CaloCloudsError
from caloclouds.generation.bundle import ModelBundle
from caloclouds.generation.calibrate_energy import EnergyCalibrationReport, cell_spectrum, fit_energy_calibration
from caloclouds.generation.calibration import (
    PointCountCalibration,
    PointEnergyCalibration,
    RadialCalibration,
    compiled,
    share_core_energy,
)
from caloclouds.generation.generator import generate_in_batches
from caloclouds.generation.pipeline import cell_projector
from caloclouds.showers import Showers, shower_index

__all__ = [
    "CalibrationReport",
    "fit_calibrations",
    "fit_point_count_calibration",
    "fit_radial_calibration",
    "count_cells",
]

#: Energy-weighted CDF levels of the radial calibration: fine in the halo, where the profile's tail is.
RADIAL_LEVELS = tuple(
    float(v) for v in np.concatenate([np.linspace(0.0, 0.9, 31)[:-1], 1.0 - np.logspace(-1, -3.5, 16)])
)
RADIAL_ENERGY_BINS = 5  # quantile bins of the reference's incident energies; the nodes are their medians
MIN_POINTS_PER_ROW = 50  # fewer points in a (bin, layer): that row is the identity

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
    radial: RadialCalibration = RadialCalibration()
    axis_depth_mm: tuple[float, ...] | None = None  # a direction-aware bundle's axis calibration, when fitted
    energy: EnergyCalibrationReport | None = None  # the point-energy calibration, when fitted

    @property
    def energy_calibration(self) -> PointEnergyCalibration:
        """The fitted point-energy calibration (the identity when none was fitted)."""
        return PointEnergyCalibration() if self.energy is None else self.energy.calibration

    def text(self) -> str:
        c = self.calibration
        rel = lambda v: (v / self.mean_cells_g4 - 1) * 100  # noqa: E731
        radial = (
            []
            if self.radial.is_identity
            else [
                f"radial calibration: {len(self.radial.nodes_gev)} energy nodes "
                f"({', '.join(f'{e:.0f}' for e in self.radial.nodes_gev)} GeV) x {len(self.radial.model_r_mm) // len(self.radial.nodes_gev)} layers "
                f"x {len(self.radial.levels)} energy-weighted radial quantiles"
            ]
        )
        if self.axis_depth_mm is not None:
            radial.append(
                f"axis calibration: depth of each layer's axis {self.axis_depth_mm[0]:.2f} ... "
                f"{self.axis_depth_mm[-1]:.2f} mm (angled reference showers)"
            )
        energy = [] if self.energy is None else [self.energy.text()]
        return "\n".join(
            radial
            + energy
            + [
                f"N calibration fitted on {self.n_showers} showers (cubic fits, ILD cells above threshold)",
                f"  Geant4: N_cells(N_points)   R^2 = {self.r2_g4:.4f}  coeffs {np.round(c.g4_cells_from_points, 6).tolist()}",
                f"  model:  N_cells(N_points)   R^2 = {self.r2_model:.4f}  coeffs {np.round(c.model_cells_from_points, 6).tolist()}",
                f"  mean cells: Geant4 {self.mean_cells_g4:.1f}, model before {self.mean_cells_before:.1f} "
                f"({rel(self.mean_cells_before):+.1f} %), after {self.mean_cells_after:.1f} ({rel(self.mean_cells_after):+.1f} %)",
            ]
        )


def _radial_quantiles(
    showers: Showers, edges_gev: np.ndarray, n_layers: int, *, jitter_mm: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(B * L, Q) energy-weighted radial quantiles per (energy bin, layer) and (B * L,) point counts.

    ``jitter_mm`` > 0 spreads each point uniformly over its clustering sub-cell first: Geant4's
    points sit on the sub-cell centres, whose few distinct radii would make a staircase CDF.
    """
    points = showers.points
    x, y = points[:, 0].astype(np.float64), points[:, 1].astype(np.float64)
    if jitter_mm > 0:
        rng = np.random.default_rng(seed)
        x = x + (rng.random(len(x)) - 0.5) * jitter_mm
        y = y + (rng.random(len(y)) - 0.5) * jitter_mm
    energy_bin = np.clip(
        np.searchsorted(edges_gev, showers.incident_energy_gev, side="right") - 1, 0, len(edges_gev) - 2
    )
    n_rows = (len(edges_gev) - 1) * n_layers
    row = energy_bin[shower_index(showers.offsets)] * n_layers + points[:, 2].astype(np.int64)
    r, e = np.hypot(x, y), np.clip(points[:, 3].astype(np.float64), 0.0, None)
    order = np.lexsort((r, row))
    row, r, e = row[order], r[order], e[order]
    starts = np.searchsorted(row, np.arange(n_rows))
    ends = np.searchsorted(row, np.arange(n_rows), side="right")
    levels = np.asarray(RADIAL_LEVELS)
    table = np.zeros((n_rows, len(levels)))
    for b in range(n_rows):  # one row per (energy bin, layer): a loop over 150 rows, not over points
        rb, eb = r[starts[b] : ends[b]], e[starts[b] : ends[b]]
        if len(rb) and eb.sum() > 0:
            cdf = (np.cumsum(eb) - eb / 2) / eb.sum()  # mid-point CDF
            table[b] = np.interp(levels, cdf, rb)
    return table, ends - starts


def fit_radial_calibration(
    bundle: ModelBundle,
    reference: Showers,
    *,
    model_part: str = "cm",
    device: str = "cpu",
    seed: int = 0,
    batch_size: int = 500,
    calibrate_n: bool = False,
) -> RadialCalibration:
    """Energy-weighted radial quantiles per (energy bin, layer) of ``reference`` and of the model.

    The model is run at the reference energies without the core sharing and a radial calibration,
    and without the N calibration unless ``calibrate_n`` (without a point-energy calibration the
    radial profile of a layer does not depend on how many points are drawn; with one it does).
    """
    detector = bundle.config.detector
    energies = reference.incident_energy_gev
    edges = np.quantile(energies, np.linspace(0.0, 1.0, RADIAL_ENERGY_BINS + 1))
    if np.any(np.diff(edges) <= 0):
        raise CaloCloudsError(
            "cannot fit the radial calibration: the reference showers have (almost) one incident energy"
        )
    model = generate_in_batches(
        bundle,
        energies,
        model_part=model_part,
        device=device,
        seed=seed,
        batch_size=batch_size,
        calibrate_n=calibrate_n,
        share_core=False,
        calibrate_radii=False,
        cog="none",
    )
    pitch = detector.cell_pitch_mm / detector.subcells_per_cell
    g4_r, g4_n = _radial_quantiles(reference, edges, detector.n_layers, jitter_mm=pitch, seed=seed)
    model_r, model_n = _radial_quantiles(model, edges, detector.n_layers, jitter_mm=0.0, seed=seed)
    # rows with too few points on either side, or a flat table: the identity
    bad = (np.minimum(g4_n, model_n) < MIN_POINTS_PER_ROW) | (np.diff(model_r, axis=1) < 0).any(axis=1)
    model_r[bad] = g4_r[bad] = np.linspace(0.0, 100.0, len(RADIAL_LEVELS))
    bin_of = np.clip(np.searchsorted(edges, energies, side="right") - 1, 0, RADIAL_ENERGY_BINS - 1)
    nodes = tuple(float(np.median(energies[bin_of == k])) for k in range(RADIAL_ENERGY_BINS))
    rows = lambda t: tuple(tuple(float(v) for v in row) for row in t)  # noqa: E731
    return RadialCalibration(nodes, RADIAL_LEVELS, rows(model_r), rows(g4_r))


def fit_calibrations(
    bundle: ModelBundle,
    reference: Showers,
    *,
    geometry: str = "ild",
    radial: bool = True,
    energy: bool = True,
    **options: Any,
) -> CalibrationReport:
    """The radial calibration (unless ``radial`` is false), then the N calibration with it applied,
    then the point-energy calibration with both (unless ``energy`` is false), all on the
    normal-incidence showers of ``reference``; then, for a direction-aware bundle and a
    reference with enough angled showers, the axis calibration on those
    (:func:`caloclouds.generation.calibrate_axis.fit_axis_depth`).

    ``options`` (``model_part``, ``device``, ``seed``, ``batch_size``) go to every fit, with their
    defaults there.
    """
    from caloclouds.generation.calibrate_axis import AXIS_MIN_SHOWERS, AXIS_MIN_THETA_DEG, fit_axis_depth

    whole = reference
    if reference.has_direction:
        reference = reference[reference.theta_deg == 0]
        if len(reference) == 0:
            raise CaloCloudsError(
                "the radial and N calibrations are fitted on normal-incidence showers (theta = 0): "
                "the reference has none; give a normal-incidence file too"
            )
    identity = RadialCalibration()
    bundle = bundle.with_energy_calibration(PointEnergyCalibration())  # the fits below see the raw energies
    fitted = (
        fit_radial_calibration(bundle.with_calibration(PointCountCalibration(), identity), reference, **options)
        if radial
        else identity
    )
    report = fit_point_count_calibration(
        bundle.with_calibration(PointCountCalibration(), fitted), reference, geometry=geometry, **options
    )
    calibrated = bundle.with_calibration(report.calibration, fitted)
    energy_report = None
    if energy:
        energy_report = fit_energy_calibration(calibrated, reference, geometry=geometry, **options)
        calibrated = calibrated.with_energy_calibration(energy_report.calibration)
        if radial:
            # the map moves energy between light (halo) and heavy (core) points: the radial profile is
            # fitted again with it (and the N calibration) applied
            refit = calibrated.with_calibration(report.calibration, identity)
            fitted = fit_radial_calibration(refit, reference, calibrate_n=True, **options)
            calibrated = calibrated.with_calibration(report.calibration, fitted)
        after = cell_spectrum(calibrated, reference, geometry=geometry, **options)
        energy_report = dataclasses.replace(energy_report, cells_after=after)
    axis = None
    if bundle.direction_aware and whole.has_direction:
        if int(np.sum(whole.theta_deg >= AXIS_MIN_THETA_DEG)) >= AXIS_MIN_SHOWERS:
            axis = fit_axis_depth(calibrated, whole, device=options.get("device", "cpu"), seed=options.get("seed", 0))
    return dataclasses.replace(report, radial=fitted, axis_depth_mm=axis, energy=energy_report)


def fit_point_count_calibration(
    bundle: ModelBundle,
    reference: Showers,
    *,
    geometry: str = "ild",
    model_part: str = "cm",
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
        drawn = generate_in_batches(
            b,
            energies,
            model_part=model_part,
            device=device,
            seed=seed,
            batch_size=batch_size,
            calibrate_n=calibrated,
            share_core=False,
        )
        points, offsets = compiled(share_core_energy)(
            torch.from_numpy(drawn.points),
            torch.from_numpy(drawn.shower_index),
            len(drawn),
            settings.core_radius_mm,
            settings.core_spread_mm,
        )
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
