"""Raw-step clustering onto the sub-cell grid (caloclouds.io.steps)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from caloclouds.config import DetectorConfig
from caloclouds.errors import InputFileError
from caloclouds.io.steps import cluster_steps, is_steps_hdf5, layer_from_z, read_steps_hdf5

DET = DetectorConfig()
PITCH = DET.subcell_pitch_mm


def test_cluster_steps_sums_and_orders() -> None:
    # shower 1 first in the input, two steps sharing a sub-cell, one at negative x
    x = np.array([0.1, 0.2, -0.1, 0.3, 5.0])
    y = np.array([0.1, 0.3, 0.1, 0.1, 0.1])
    layer = np.array([3, 3, 3, 1, 3])
    e = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    shower = np.array([1, 1, 1, 0, 1])
    points, counts = cluster_steps(x, y, layer, e, shower, 3, pitch_mm=PITCH)
    assert counts.tolist() == [1, 3, 0]
    assert points.dtype == np.float32
    np.testing.assert_allclose(points[:, 3], [8.0, 4.0, 3.0, 16.0])
    np.testing.assert_allclose(points[:, 2], [1, 3, 3, 3])
    assert points[1, 0] == np.float32(-0.5 * PITCH)
    assert points[2, 0] == np.float32(0.5 * PITCH)
    assert points[3, 0] == np.float32((np.floor(5.0 / PITCH) + 0.5) * PITCH)


def test_cluster_steps_empty() -> None:
    points, counts = cluster_steps(*(np.zeros(0),) * 5, 2, pitch_mm=PITCH)
    assert points.shape == (0, 4) and counts.tolist() == [0, 0]


def test_layer_from_z_slabs() -> None:
    front = np.array(DET.silicon_front_mm)
    z = np.concatenate([front, front + DET.silicon_thickness_mm, front + 0.25])
    layer, inside = layer_from_z(z, DET)
    assert layer.tolist() == list(range(30)) * 3
    assert inside.all()
    # float32 rounding just below a slab face still counts; the middle of an absorber does not
    layer, inside = layer_from_z(np.array([np.float32(4.7) - 2e-6, 3.5]), DET)
    assert layer[0] == 1 and inside.tolist() == [True, False]


def test_raw_steps_reproduce_clustered_conventions(shared) -> None:
    raw = shared("g4_raw_steps_sample.h5")
    clustered = shared("g4_photons_val_fixed.h5")
    assert is_steps_hdf5(raw) and not is_steps_hdf5(clustered)
    showers = read_steps_hdf5(raw)
    with h5py.File(raw) as f:
        steps = f["points"][()]
        raw_visible = f["raw_visible_mev"][()]
    assert len(showers) == 6
    # energy sums: the points keep the step energy of every shower (README: to 1e-4)
    np.testing.assert_allclose(showers.visible_energy_mev(), raw_visible, rtol=1e-4)
    np.testing.assert_allclose(showers.points[:, 3].sum(), steps[:, 3].astype(np.float64).sum(), rtol=1e-6)
    # layer assignment: integer layers 0..29, every step inside a silicon slab
    _, inside = layer_from_z(steps[:, 2], DET)
    assert inside.all()
    assert np.array_equal(showers.layer, np.round(showers.layer)) and showers.layer.max() <= 29
    # sub-cell centres: bit-identical to the values in the shared clustered file
    with h5py.File(clustered) as f:
        ref = f["points"][:200000]
    grid = np.unique(ref[:, :2])
    for col in (0, 1):
        idx = np.floor(showers.points[:, col].astype(np.float64) / PITCH)
        assert np.array_equal(showers.points[:, col], ((idx + 0.5) * PITCH).astype(np.float32))
    common = np.abs(showers.points[:, :2]) < 20.0  # the core, where the reference has every sub-cell
    assert np.isin(showers.points[:, :2][common], grid).all()
    # order within a shower: layer, then x index, then y index, as in the shared files
    first = showers.shower_points(0)
    ix, iy = np.floor(first[:, 0] / PITCH), np.floor(first[:, 1] / PITCH)
    assert np.array_equal(np.lexsort((iy, ix, first[:, 2])), np.arange(len(first)))
    # points per shower similar to the clustered file at the same energy
    with h5py.File(clustered) as f:
        e = f["incident_energy_gev"][()]
        n = np.diff(f["offsets"][()])
    for energy in (10, 50, 90):
        ours = showers.n_points[showers.incident_energy_gev == energy].mean()
        assert 0.7 < ours / n[e == energy].mean() < 1.3


def test_step_outside_silicon_is_an_error(tmp_path) -> None:
    path = tmp_path / "steps.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("points", data=np.array([[0, 0, 3.5, 1.0]], np.float32))
        d.attrs["columns"] = "x_mm,y_mm,z_mm,e_MeV"
        f["offsets"] = np.array([0, 1])
        f["incident_energy_gev"] = np.array([10.0], np.float32)
    with pytest.raises(InputFileError, match=r"steps.h5\[points\].*z = 3.5000 mm is not in any silicon layer"):
        read_steps_hdf5(path)
