"""The direction of incidence (theta_deg, phi_deg) through the readers and writers (issue 25).

Slices of the real angled Geant4 file go through HDF5, ROOT and ``caloclouds convert``; malformed
angles (NaN, theta outside [0, 90), a wrong length, one angle without the other) are refused with
an error naming the file and the dataset; ``caloclouds info`` shows the angle ranges; training
over angled and normal-incidence files gives every shower a direction.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from caloclouds.cli import main
from caloclouds.errors import InputFileError
from caloclouds.io import read_any
from caloclouds.io.formats import file_has_direction, iter_training_showers
from caloclouds.io.hdf5 import ShowerFile, read_showers, write_showers
from caloclouds.io.root import read_root, write_root
from caloclouds.showers import PHI, THETA, Showers

N = 40  # showers of each slice: a few MB, read in well under a second


@pytest.fixture(scope="module")
def angled(shared) -> Showers:
    with ShowerFile(shared("g4_photons_angled_val.h5")) as f:
        return f.read(0, N)


@pytest.fixture(scope="module")
def normal(shared) -> Showers:
    with ShowerFile(shared("g4_photons_val_uniform.h5")) as f:
        return f.read(0, N)


def _same_direction(a: Showers, b: Showers) -> None:
    assert a.has_direction and b.has_direction
    np.testing.assert_array_equal(a.conditions[THETA], b.conditions[THETA])
    np.testing.assert_array_equal(a.conditions[PHI], b.conditions[PHI])
    np.testing.assert_array_equal(a.points, b.points)


def test_the_angled_file_carries_its_angles(angled, normal) -> None:
    assert angled.has_direction and not normal.has_direction
    assert angled.conditions[THETA].dtype == np.float32
    assert 0 <= angled.theta_deg.min() and angled.theta_deg.max() < 40.0
    assert 0 <= angled.phi_deg.min() and angled.phi_deg.max() < 360.0


def test_hdf5_root_and_convert_keep_the_angles(angled, tmp_path) -> None:
    write_showers(tmp_path / "a.h5", angled)
    _same_direction(read_showers(tmp_path / "a.h5"), angled)
    write_root(tmp_path / "a.root", angled)
    _same_direction(read_root(tmp_path / "a.root"), angled)
    # convert: HDF5 -> ROOT -> HDF5, as a user would
    assert main(["convert", str(tmp_path / "a.h5"), "-o", str(tmp_path / "b.root")]) == 0
    assert main(["convert", str(tmp_path / "b.root"), "-o", str(tmp_path / "c.h5")]) == 0
    _same_direction(read_any(tmp_path / "c.h5"), angled)
    assert file_has_direction(tmp_path / "b.root") and file_has_direction(tmp_path / "c.h5")


def test_info_shows_the_angle_ranges_or_normal_incidence(angled, normal, tmp_path, capsys) -> None:
    write_showers(tmp_path / "a.h5", angled)
    write_root(tmp_path / "n.root", normal)
    assert main(["info", str(tmp_path / "a.h5")]) == 0
    out = capsys.readouterr().out
    lo, hi = angled.theta_deg.min(), angled.theta_deg.max()
    plo, phi = angled.phi_deg.min(), angled.phi_deg.max()
    assert f"direction        theta {lo:.2f} - {hi:.2f} deg, phi {plo:.2f} - {phi:.2f} deg" in out
    assert main(["info", str(tmp_path / "n.root")]) == 0
    assert "direction        normal incidence (no theta_deg/phi_deg)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("theta", "phi", "dataset", "words"),
    [
        (np.nan, 10.0, THETA, "theta_deg = nan, expected a finite angle"),
        (95.0, 10.0, THETA, "theta_deg = 95, expected 0 <= theta < 90"),
        (-1.0, 10.0, THETA, "theta_deg = -1, expected 0 <= theta < 90"),
        (20.0, np.inf, PHI, "phi_deg = inf, expected a finite angle"),
    ],
)
def test_malformed_angle_values_name_the_file_and_the_shower(angled, tmp_path, theta, phi, dataset, words) -> None:
    theta_deg, phi_deg = angled.theta_deg.copy(), angled.phi_deg.copy()
    theta_deg[7], phi_deg[7] = theta, phi
    bad = angled.with_direction(theta_deg, phi_deg)
    write_showers(tmp_path / "bad.h5", bad)
    with pytest.raises(InputFileError, match=rf"bad\.h5\[{dataset}\]: shower 7 has {words}"):
        read_any(tmp_path / "bad.h5")
    write_root(tmp_path / "bad.root", bad)
    with pytest.raises(InputFileError, match=rf"bad\.root\[events/{dataset}\]: shower 7 has {words}"):
        read_any(tmp_path / "bad.root")


def test_a_later_chunk_names_its_shower_in_the_file(angled, tmp_path) -> None:
    theta_deg = angled.theta_deg.copy()
    theta_deg[N - 3] = 90.0  # theta = 90 grazes the front face: refused
    write_showers(tmp_path / "bad.h5", angled.with_direction(theta_deg, angled.phi_deg))
    with pytest.raises(InputFileError, match=rf"shower {N - 3} has theta_deg = 90"):
        list(iter_training_showers(tmp_path / "bad.h5", chunk_showers=10))


def test_wrong_length_or_a_lone_angle_is_refused_when_opened(angled, tmp_path) -> None:
    write_showers(tmp_path / "long.h5", angled)
    with h5py.File(tmp_path / "long.h5", "r+") as f:
        del f[PHI]
        f[PHI] = np.zeros(N + 1, np.float32)
    with pytest.raises(InputFileError, match=rf"long\.h5\[phi_deg\]: has shape \({N + 1},\), expected \({N},\)"):
        ShowerFile(tmp_path / "long.h5")
    write_showers(tmp_path / "lone.h5", angled)
    with h5py.File(tmp_path / "lone.h5", "r+") as f:
        del f[PHI]
    with pytest.raises(InputFileError, match=r"lone\.h5\[theta_deg\]: has theta_deg but no phi_deg"):
        read_any(tmp_path / "lone.h5")
    lone = Showers(angled.points, angled.offsets, angled.incident_energy_gev, {THETA: angled.conditions[THETA]})
    write_root(tmp_path / "lone.root", lone)
    with pytest.raises(InputFileError, match=r"lone\.root\[events/theta_deg\]: has theta_deg but no phi_deg"):
        read_any(tmp_path / "lone.root")


def test_training_over_angled_and_normal_files_gives_every_shower_a_direction(angled, normal, tmp_path) -> None:
    write_showers(tmp_path / "normal.h5", normal)
    write_root(tmp_path / "angled.root", angled)
    files = [tmp_path / "normal.h5", tmp_path / "angled.root"]
    chunks = list(iter_training_showers(files, chunk_showers=16))
    assert all(c.has_direction for c in chunks)
    showers = Showers.concatenate(chunks)
    assert len(showers) == 2 * N
    np.testing.assert_array_equal(showers.theta_deg[:N], 0.0)
    np.testing.assert_array_equal(showers.phi_deg[:N], 0.0)
    np.testing.assert_array_equal(showers.conditions[THETA][N:], angled.conditions[THETA])
    np.testing.assert_array_equal(showers.points, np.concatenate([normal.points, angled.points]))
    # the limit caps the total, taken from the files in order
    limited = Showers.concatenate(list(iter_training_showers(files, limit=N + 5, chunk_showers=16)))
    assert len(limited) == N + 5 and limited.has_direction
    # normal-incidence files alone, or one file alone, stay as they are
    assert not any(c.has_direction for c in iter_training_showers([tmp_path / "normal.h5"]))
    assert not any(c.has_direction for c in iter_training_showers(tmp_path / "normal.h5"))
