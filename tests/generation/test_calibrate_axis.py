"""The axis calibration of a direction-aware bundle (caloclouds/generation/calibrate_axis.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from caloclouds.config import ILD_LIKE_DETECTOR
from caloclouds.errors import CaloCloudsError
from caloclouds.generation.bundle import load_bundle
from caloclouds.generation.calibrate_axis import fit_axis_depth, layer_lean_mm
from caloclouds.generation.generator import ShowerGenerator
from caloclouds.io import ShowerFile
from caloclouds.showers import Showers
from tests.export.conftest import direction_bundle  # noqa: F401 - the session fixture, shared

LAYER_Z = np.asarray(ILD_LIKE_DETECTOR.layer_centre_z_mm)
NORMAL_INCIDENCE = Path(__file__).resolve().parents[2] / "caloclouds" / "models" / "ild_normal_incidence"


def test_layer_lean_of_showers_on_a_known_line() -> None:
    """Points at x' = k_l tan(theta) along phi give the slope k_l in every layer, whatever phi."""
    k = np.array([3.0, 10.0, 20.0])
    rows = []
    for theta, phi in ((10.0, 0.0), (25.0, 120.0), (40.0, -60.0)):
        t, p = np.tan(np.radians(theta)), np.radians(phi)
        pts = [
            [k[i] * t * np.cos(p) + dx, k[i] * t * np.sin(p), i, e] for i in range(3) for dx, e in ((-1, 2.0), (1, 2.0))
        ]
        rows.append(np.array(pts))
    showers = Showers.from_list(rows, [50.0] * 3).with_direction([10.0, 25.0, 40.0], [0.0, 120.0, -60.0])
    np.testing.assert_allclose(layer_lean_mm(showers, 3), k, rtol=1e-6)


def test_geant4_leans_less_than_the_axis(shared) -> None:  # noqa: ANN001
    """Geant4's layer centres lead the axis early and lag it late (../shared/data README, section 4)."""
    with ShowerFile(shared("g4_photons_angled_train.h5")) as f:
        showers = f.read(0, 1500)
    lean = layer_lean_mm(showers[showers.theta_deg > 5], 30)
    assert lean[0] > LAYER_Z[0] and lean[25] < LAYER_Z[25]
    assert 0.85 < np.polyfit(LAYER_Z[5:25], lean[5:25], 1)[0] < 0.97  # about 0.92 tan(theta) per mm of depth


def test_the_fitted_axis_makes_the_model_lean_as_the_reference(direction_bundle: Path, shared) -> None:  # noqa: ANN001, F811
    bundle = load_bundle(direction_bundle)
    with ShowerFile(shared("g4_photons_angled_train.h5")) as f:
        reference = f.read(0, 300)
    depth = fit_axis_depth(bundle, reference, seed=4)
    assert len(depth) == 30 and bundle.axis_depth_mm == tuple(ILD_LIKE_DETECTOR.layer_centre_z_mm)
    calibrated = bundle.with_axis_depth(depth)
    assert calibrated.axis_depth_mm == depth
    angled = reference[reference.theta_deg >= 5.0]
    model = ShowerGenerator(calibrated).generate(
        angled.incident_energy_gev, theta_deg=angled.theta_deg, phi_deg=angled.phi_deg,
        generator=torch.Generator().manual_seed(4),
    )  # fmt: skip
    # the same draws as in the fit, each layer moved by the fitted line: what is left of the lean's
    # difference has no line in it (no offset, no slope against depth, weighted by Geant4's energy)
    g4_lean, weight = layer_lean_mm(angled, 30, weights=True)
    slope, offset = np.polyfit(LAYER_Z, layer_lean_mm(model, 30) - g4_lean, 1, w=np.sqrt(weight))
    assert abs(slope) < 1e-3 and abs(offset) < 0.05
    with pytest.raises(CaloCloudsError, match="at least 200 angled"):
        fit_axis_depth(bundle, reference[:50])
    with pytest.raises(CaloCloudsError, match="direction-aware"):
        fit_axis_depth(load_bundle(NORMAL_INCIDENCE), reference)


def test_calibrate_takes_a_mix_of_normal_and_angled_showers(direction_bundle: Path, shared) -> None:  # noqa: ANN001, F811
    """The radial and N calibrations on the normal-incidence showers, the axis on the angled ones."""
    from caloclouds.generation.calibrate import fit_calibrations

    with ShowerFile(shared("g4_photons_angled_train.h5")) as f:
        angled = f.read(0, 250)
    with ShowerFile(shared("g4_photons_train.h5")) as f:
        normal = f.read(0, 120)
    bundle = load_bundle(direction_bundle)
    report = fit_calibrations(bundle, Showers.concatenate([angled, normal]), seed=2)
    assert report.n_showers == 120 and report.axis_depth_mm is not None and len(report.axis_depth_mm) == 30
    assert "axis calibration" in report.text()
    assert fit_calibrations(bundle, normal, seed=2).axis_depth_mm is None
    with pytest.raises(CaloCloudsError, match="normal-incidence showers"):
        fit_calibrations(bundle, angled, seed=2)
