"""Directions of incidence for generation (caloclouds/generation/directions.py), on real files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from caloclouds.errors import CaloCloudsError, InputFileError
from caloclouds.generation.directions import check_theta_range, directions_of_file, incident_directions


def test_no_angle_option_is_normal_incidence_without_angles() -> None:
    assert incident_directions(5) is None


def test_fixed_angles_and_wrapping() -> None:
    theta, phi = incident_directions(3, theta_deg=20.0, phi_deg=390.0)
    assert theta.tolist() == [20.0] * 3 and phi.dtype == np.float32
    np.testing.assert_allclose(phi, 30.0)
    theta, phi = incident_directions(2, phi_deg=-180.0)  # phi alone: theta 0
    assert theta.tolist() == [0.0, 0.0] and phi.tolist() == [180.0, 180.0]


def test_ranges_are_uniform_and_seeded() -> None:
    a = incident_directions(20000, theta_range_deg=(10.0, 30.0), phi_range_deg=(0.0, 90.0), seed=4)
    b = incident_directions(20000, theta_range_deg=(10.0, 30.0), phi_range_deg=(0.0, 90.0), seed=4)
    np.testing.assert_array_equal(a[0], b[0])
    assert 10.0 <= a[0].min() and a[0].max() <= 30.0 and abs(a[0].mean() - 20.0) < 0.2
    assert 0.0 <= a[1].min() and a[1].max() <= 90.0 and abs(a[1].mean() - 45.0) < 1.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"theta_deg": 10.0, "theta_range_deg": (0.0, 5.0)}, "not both"),
        ({"phi_deg": 1.0, "phi_range_deg": (0.0, 5.0)}, "not both"),
        ({"theta_range_deg": (30.0, 10.0)}, "LO <= HI"),
        ({"theta_deg": -3.0}, "theta_deg -3"),
        ({"theta_deg": float("nan")}, "theta_deg nan"),
    ],
)
def test_bad_angle_options(options: dict, message: str) -> None:
    with pytest.raises(CaloCloudsError, match=message):
        incident_directions(4, **options)


def test_one_theta_range_rule() -> None:
    check_theta_range(np.array([0.0, 40.0]), (0.0, 40.0), allow_extrapolation=False)
    with pytest.raises(CaloCloudsError, match="outside this model's trained range 0-40 deg.*--allow-extrapolation"):
        check_theta_range(np.array([10.0, 45.0]), (0.0, 40.0), allow_extrapolation=False)
    check_theta_range(np.array([45.0]), (0.0, 40.0), allow_extrapolation=True)
    with pytest.raises(CaloCloudsError, match="knows only normal incidence"):  # no extrapolation can lean a shower
        check_theta_range(np.array([5.0]), (0.0, 0.0), allow_extrapolation=True)


def test_directions_of_real_files(tmp_path: Path, shared) -> None:  # noqa: ANN001
    angled_path, normal_path = shared("g4_photons_angled_val.h5"), shared("g4_photons_val_fixed.h5")
    theta, phi = directions_of_file(angled_path, n_showers=10)
    with h5py.File(angled_path, "r") as f:
        np.testing.assert_array_equal(theta, f["theta_deg"][:10])
        np.testing.assert_array_equal(phi, f["phi_deg"][:10])
    assert directions_of_file(normal_path) is None
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f["theta_deg"] = np.array([10.0, np.nan], np.float32)
        f["phi_deg"] = np.array([0.0, 0.0], np.float32)
    with pytest.raises(InputFileError, match="bad.h5.*shower 1 has theta_deg nan"):
        directions_of_file(bad)
