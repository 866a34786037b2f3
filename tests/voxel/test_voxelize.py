"""Points <-> voxels: exact round trips, energy bookkeeping and the (layer, alpha, r) order."""

from __future__ import annotations

import numpy as np
import pytest

from caloclouds.io.hdf5 import ShowerFile
from caloclouds.showers import Showers
from caloclouds.voxel.mesh import calochallenge_ds1_like, calochallenge_ds2_like
from caloclouds.voxel.voxelize import voxel_indices, voxelize, voxels_to_points


@pytest.fixture
def g4(shared) -> Showers:
    with ShowerFile(shared("g4_photons_val_fixed.h5")) as f:
        return f.take(np.array([0, 1, 2, 250, 251, 500, 501]))  # 10, 50 and 90 GeV


def test_flat_order_is_layer_alpha_r() -> None:
    mesh = calochallenge_ds2_like()
    # alpha bin 4 of 16 covers [-pi + 4 w, -pi + 5 w): its centre angle is -pi + 4.5 w
    w = 2 * np.pi / 16
    a = -np.pi + 4.5 * w
    r = 3 * 4.65 + 1.0  # radial bin 3
    idx = voxel_indices(np.array([r * np.cos(a)]), np.array([r * np.sin(a)]), np.array([7.0]), mesh)
    assert idx[0] == 7 * 16 * 9 + 4 * 9 + 3


def test_outside_points_are_counted(rng) -> None:
    mesh = calochallenge_ds2_like()
    pts = np.array([[1, 1, 0, 2.0], [100, 0, 3, 5.0], [1, 0, 30, 7.0], [0, 1, -1, 11.0]], np.float32)
    v = voxelize(Showers.from_list([pts], [10.0]), mesh)
    assert v.energy_mev.sum() == pytest.approx(2.0)
    assert v.outside_mev[0] == pytest.approx(23.0)


@pytest.mark.parametrize("mesh_fn", [calochallenge_ds2_like, calochallenge_ds1_like])
@pytest.mark.parametrize("mode", ["centre", "uniform"])
def test_round_trip_is_exact(g4: Showers, mesh_fn, mode: str) -> None:
    mesh = mesh_fn()
    voxels = voxelize(g4, mesh)
    np.testing.assert_allclose(voxels.total_mev() + voxels.outside_mev, g4.visible_energy_mev(), rtol=1e-5)
    points = voxels_to_points(voxels, mode=mode, rng=np.random.default_rng(0))
    assert np.array_equal(points.n_points, (voxels.energy_mev > 0).sum(axis=1))
    again = voxelize(points, mesh)
    assert np.array_equal(again.energy_mev, voxels.energy_mev)
    assert np.all(again.outside_mev == 0)


def test_several_points_per_voxel_keep_the_energy(g4: Showers) -> None:
    mesh = calochallenge_ds2_like()
    voxels = voxelize(g4, mesh)
    points = voxels_to_points(voxels, mode="uniform", points_per_voxel=4, rng=np.random.default_rng(1))
    assert np.array_equal(points.n_points, 4 * (voxels.energy_mev > 0).sum(axis=1))
    np.testing.assert_allclose(voxelize(points, mesh).energy_mev, voxels.energy_mev, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(points.layer_sums(30), voxels.layer_sums(), rtol=1e-5, atol=1e-4)


def test_threshold_and_argument_checks(g4: Showers) -> None:
    voxels = voxelize(g4, calochallenge_ds2_like())
    points = voxels_to_points(voxels, threshold_mev=0.1)
    assert np.all(points.e_mev > 0.1)
    with pytest.raises(ValueError, match="needs rng"):
        voxels_to_points(voxels, mode="uniform")
    with pytest.raises(ValueError, match="mode must be"):
        voxels_to_points(voxels, mode="corner")  # type: ignore[arg-type]
