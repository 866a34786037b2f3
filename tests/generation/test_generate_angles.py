"""caloclouds generate with a direction of incidence (issue 25), on the tiny direction-aware bundle
trained in the session (tests/export/conftest.py) and on the real angled Geant4 file."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from caloclouds.cli import main
from caloclouds.config import ILD_LIKE_DETECTOR
from caloclouds.io.formats import read_any
from tests.export.conftest import direction_bundle  # noqa: F401 - the session fixture, shared

LAYER_Z = np.asarray(ILD_LIKE_DETECTOR.layer_centre_z_mm)
NORMAL_INCIDENCE = Path(__file__).resolve().parents[2] / "caloclouds" / "models" / "ild_normal_incidence"


def _generate(tmp_path: Path, name: str, *args: str) -> Path:
    out = tmp_path / name
    assert main(["generate", *args, "-o", str(out), "--threads", "1"]) == 0
    return out


def _drift_along(showers, phi_deg: float) -> float:  # noqa: ANN001
    """Energy-weighted mean of (position along phi) / (z_l tan(theta) per unit tan theta): the lean in mm per mm."""
    phi = np.radians(phi_deg)
    along = showers.x_mm * np.cos(phi) + showers.y_mm * np.sin(phi)
    z = LAYER_Z[np.clip(showers.layer.astype(int), 0, len(LAYER_Z) - 1)]
    return float(np.sum(along * showers.e_mev) / np.sum(z * showers.e_mev))


def test_fixed_angles_lean_the_showers_along_phi(tmp_path: Path, direction_bundle: Path) -> None:  # noqa: F811
    model = ["--model", str(direction_bundle), "--energies", "50", "-n", "40", "--seed", "3"]
    out = _generate(tmp_path, "a.h5", *model, "--theta-deg", "30", "--phi-deg", "120")
    showers = read_any(out)
    assert showers.theta_deg.tolist() == [30.0] * 40 and np.allclose(showers.phi_deg, 120.0)
    with h5py.File(out) as f:
        assert f.attrs["direction"].startswith("theta_deg, phi_deg")
    lean = _drift_along(showers, 120.0)
    assert 0.7 * np.tan(np.radians(30)) < lean < 1.2 * np.tan(np.radians(30))
    assert abs(_drift_along(showers, 30.0)) < 0.1  # nothing across phi
    normal = read_any(_generate(tmp_path, "n.h5", *model))
    assert not normal.has_direction and abs(_drift_along(normal, 120.0)) < 0.05


def test_conditions_from_a_reference(tmp_path: Path, direction_bundle: Path, shared) -> None:  # noqa: ANN001, F811
    ref = shared("g4_photons_angled_val.h5")
    out = _generate(tmp_path, "m.root", "--model", str(direction_bundle), "--conditions-from", str(ref), "-n", "25")
    showers, reference = read_any(out), read_any(ref)[:25]
    np.testing.assert_array_equal(showers.incident_energy_gev, reference.incident_energy_gev)
    np.testing.assert_allclose(showers.theta_deg, reference.theta_deg, atol=1e-4)
    np.testing.assert_allclose(showers.phi_deg, reference.phi_deg, atol=1e-4)


def test_ranges_and_refusals(tmp_path: Path, direction_bundle: Path, capsys: pytest.CaptureFixture) -> None:  # noqa: F811
    model = ["--model", str(direction_bundle), "--energy-range", "20", "80", "-n", "30"]
    showers = read_any(_generate(tmp_path, "r.h5", *model, "--theta-range", "5", "35", "--phi-range", "0", "360"))
    assert 5 <= showers.theta_deg.min() and showers.theta_deg.max() <= 35
    assert np.all((-180 < showers.phi_deg) & (showers.phi_deg <= 180))  # wrapped
    assert main(["generate", *model, "--theta-deg", "60", "-o", str(tmp_path / "x.h5")]) == 2
    assert "outside this model's trained range" in capsys.readouterr().err
    normal_incidence = ["--model", str(NORMAL_INCIDENCE), "--energies", "50", "-n", "2"]
    assert main(["generate", *normal_incidence, "--theta-deg", "10", "-o", str(tmp_path / "y.h5")]) == 2
    assert "knows only normal incidence" in capsys.readouterr().err  # the model the shipped one replaced
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "y.h5").exists()


def test_at_normal_incidence_phi_is_only_a_turn(direction_bundle: Path) -> None:  # noqa: F811
    """At theta = 0 the showers for one seed at phi and at phi + 90 deg are the same showers turned."""
    import torch

    from caloclouds.generation.bundle import load_bundle
    from caloclouds.generation.generator import ShowerGenerator

    generator = ShowerGenerator(load_bundle(direction_bundle))
    energies = np.array([15.0, 50.0, 85.0])
    a = generator.generate(energies, theta_deg=0.0, phi_deg=10.0, generator=torch.Generator().manual_seed(5))
    b = generator.generate(energies, theta_deg=0.0, phi_deg=100.0, generator=torch.Generator().manual_seed(5))
    np.testing.assert_array_equal(a.offsets, b.offsets)
    np.testing.assert_allclose(b.x_mm, -a.y_mm, atol=2e-3)
    np.testing.assert_allclose(b.y_mm, a.x_mm, atol=2e-3)
    np.testing.assert_array_equal(b.points[:, 2:], a.points[:, 2:])


def test_a_normal_incidence_generator_refuses_a_lean() -> None:
    """The library path keeps generate's rule: a normal-incidence model turns by phi but never leans."""
    from caloclouds.errors import CaloCloudsError
    from caloclouds.generation.bundle import load_bundle
    from caloclouds.generation.generator import ShowerGenerator

    generator = ShowerGenerator(load_bundle(NORMAL_INCIDENCE))
    assert generator.generate(np.array([50.0]), theta_deg=0.0, phi_deg=40.0).phi_deg.tolist() == [40.0]
    with pytest.raises(CaloCloudsError, match="knows only normal incidence"):
        generator.generate(np.array([50.0]), theta_deg=10.0)
