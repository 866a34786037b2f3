"""CaloChallenge HDF5 I/O and the `caloclouds voxelize` verb."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from caloclouds.cli import main
from caloclouds.errors import InputFileError
from caloclouds.io.hdf5 import read_showers
from caloclouds.voxel.calochallenge import read_calochallenge, write_calochallenge
from caloclouds.voxel.mesh import calochallenge_ds1_like, calochallenge_ds2_like
from caloclouds.voxel.voxelize import VoxelShowers, voxelize


def _random_voxels(rng: np.random.Generator, n: int = 5) -> VoxelShowers:
    mesh = calochallenge_ds2_like()
    e = rng.exponential(1.0, (n, mesh.n_voxels)).astype(np.float32) * (rng.random((n, mesh.n_voxels)) < 0.3)
    return VoxelShowers(e, rng.uniform(10, 90, n), mesh)


def test_write_read_round_trip(tmp_path, rng) -> None:
    voxels = _random_voxels(rng)
    path = tmp_path / "cc.h5"
    write_calochallenge(path, voxels)
    with h5py.File(path) as f:
        assert f["incident_energies"].shape == (5, 1)
        assert f["showers"].shape == (5, 4320)
        np.testing.assert_allclose(f["incident_energies"][:, 0], voxels.incident_energy_gev * 1000, rtol=1e-6)
    back = read_calochallenge(path)
    assert back.mesh == voxels.mesh
    assert np.array_equal(back.energy_mev, voxels.energy_mev)
    np.testing.assert_allclose(back.incident_energy_gev, voxels.incident_energy_gev, rtol=1e-6)
    assert back.images().shape == (5, 30, 16, 9)
    assert len(read_calochallenge(path, start=1, stop=3)) == 2


def test_foreign_file_needs_matching_mesh(tmp_path, rng) -> None:
    path = tmp_path / "official.h5"
    with h5py.File(path, "w") as f:  # like an official dataset: no mesh attribute
        f["incident_energies"] = np.full((2, 1), 1000.0)
        f["showers"] = np.zeros((2, 4320))
    assert read_calochallenge(path).mesh == calochallenge_ds2_like()
    with pytest.raises(InputFileError, match="has 4320 voxels per shower but the mesh"):
        read_calochallenge(path, mesh=calochallenge_ds1_like())


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ({"showers": np.zeros((2, 4320))}, "missing dataset"),
        ({"incident_energies": np.ones((2, 1)), "showers": np.zeros((2, 17))}, "17 voxels"),
        ({"incident_energies": np.ones((3, 1)), "showers": np.zeros((2, 4320))}, "expected \\(2, 1\\)"),
        ({"incident_energies": np.ones((2, 1)), "showers": np.full((2, 4320), np.nan)}, "NaN"),
        ({"incident_energies": np.ones((2, 1)), "showers": -np.ones((2, 4320))}, "negative"),
    ],
)
def test_bad_files_are_explained(tmp_path, content: dict, match: str) -> None:
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        for key, value in content.items():
            f[key] = value
    with pytest.raises(InputFileError, match=match):
        read_calochallenge(path)
    with pytest.raises(InputFileError, match="not found"):
        read_calochallenge(tmp_path / "missing.h5")


def test_write_is_atomic(tmp_path, rng) -> None:
    voxels = _random_voxels(rng)
    path = tmp_path / "cc.h5"
    wrong = VoxelShowers(np.zeros((1, 3404), np.float32), [1.0], calochallenge_ds1_like())
    from caloclouds.voxel.calochallenge import CaloChallengeWriter

    with pytest.raises(ValueError, match="3404 voxels"):
        with CaloChallengeWriter(path, voxels.mesh) as writer:
            writer.write(voxels)
            writer.write(wrong)
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_voxelize_verb_round_trip(shared, tmp_path, capsys) -> None:
    src = shared("g4_photons_val_fixed.h5")
    out = tmp_path / "vox.h5"
    assert main(["voxelize", str(src), "-o", str(out), "--max-showers", "6", "--chunk-showers", "4"]) == 0
    assert "energy outside the mesh" in capsys.readouterr().out
    voxels = read_calochallenge(out)
    expected = voxelize(read_showers(src, 0, 6), calochallenge_ds2_like())
    assert np.array_equal(voxels.energy_mev, expected.energy_mev)
    pts = tmp_path / "points.h5"
    assert main(["voxelize", str(out), "--to-points", "--mode", "uniform", "-o", str(pts)]) == 0
    assert np.array_equal(voxelize(read_showers(pts), voxels.mesh).energy_mev, voxels.energy_mev)
    assert main(["voxelize", str(src), "-o", str(out), "--mesh", "ds7"]) == 2
    assert "unknown mesh" in capsys.readouterr().err
