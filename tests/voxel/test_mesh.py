"""Cylindrical meshes: named meshes, sizes, YAML/JSON round trips and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from caloclouds.errors import ConfigError
from caloclouds.voxel.mesh import CylindricalMesh, calochallenge_ds1_like, calochallenge_ds2_like, get_mesh


def test_ds2_like_default() -> None:
    mesh = calochallenge_ds2_like()
    assert mesh.shape == (30, 16, 9)
    assert mesh.n_voxels == 4320
    assert mesh.r_edges_mm[0][-1] == pytest.approx(41.85)
    assert np.array_equal(mesh.layer_offsets, np.arange(31) * 144)
    assert calochallenge_ds2_like(45).n_voxels == 6480  # the real CaloChallenge dataset 2


def test_ds1_like_is_irregular() -> None:
    mesh = calochallenge_ds1_like()
    assert not mesh.is_regular
    assert set(mesh.n_alpha) == {1, 10}
    assert set(mesh.n_r) == {8, 16, 19, 5}
    assert mesh.n_voxels == int(mesh.voxels_per_layer.sum()) == mesh.layer_offsets[-1]
    with pytest.raises(ValueError, match="irregular"):
        _ = mesh.shape


def test_voxel_areas_tile_each_layer() -> None:
    mesh = calochallenge_ds1_like()
    area = np.add.reduceat(mesh.voxel_area_mm2(), mesh.layer_offsets[:-1])
    r_max = np.array([e[-1] for e in mesh.r_edges_mm])
    np.testing.assert_allclose(area, np.pi * r_max**2)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_save_load_round_trip(tmp_path, suffix: str) -> None:
    mesh = calochallenge_ds1_like()
    path = tmp_path / f"mesh{suffix}"
    mesh.save(path)
    assert get_mesh(path) == mesh


def test_from_dict_broadcasts_one_layer() -> None:
    mesh = CylindricalMesh.from_dict({"r_edges_mm": [0, 5, 10], "n_alpha": 4, "n_layers": 3})
    assert mesh.shape == (3, 4, 2)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"r_edges_mm": [[0, 5, 4]], "n_alpha": [4]}, "increase strictly"),
        ({"r_edges_mm": [[1, 5]], "n_alpha": [4]}, "start at 0"),
        ({"r_edges_mm": [[0, 5]], "n_alpha": [0]}, "n_alpha must be >= 1"),
        ({"r_edges_mm": [[0, 5]], "n_alpha": [2, 2]}, "2 entries"),
        ({"r_edges_mm": [[0, 5]], "n_alpha": [2], "edges": 1}, "unknown mesh key"),
    ],
)
def test_bad_meshes_are_explained(data: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        CylindricalMesh.from_dict(data)


def test_unknown_mesh_name() -> None:
    with pytest.raises(ConfigError, match="unknown mesh 'ds9'"):
        get_mesh("ds9")
