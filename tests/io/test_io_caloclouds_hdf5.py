"""CaloClouds HDF5 reader (events/energy, padded, y = shower axis in layer units)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from caloclouds.errors import InputFileError
from caloclouds.io.caloclouds_hdf5 import is_caloclouds_hdf5, read_caloclouds_hdf5


def _write(path, events, energy) -> None:
    with h5py.File(path, "w") as f:
        f["events"] = np.asarray(events, np.float32)
        f["energy"] = np.asarray(energy, np.float32)


def test_mini_sample(shared) -> None:
    path = shared("ild_caloclouds_mini_sample.hdf5")
    assert is_caloclouds_hdf5(path)
    showers = read_caloclouds_hdf5(path)
    assert len(showers) == 2
    assert showers.n_points.tolist() == [163, 236]
    np.testing.assert_allclose(showers.incident_energy_gev, [15.62, 41.93], atol=0.01)
    with h5py.File(path) as f:
        events = f["events"][()]
    real = events[events[:, :, 3] > 0]
    # axis mapping: our x = file z, our y = file x, layer = floor(file y), e: GeV -> MeV
    np.testing.assert_array_equal(showers.x_mm, real[:, 2])
    np.testing.assert_array_equal(showers.y_mm, real[:, 0])
    np.testing.assert_array_equal(showers.layer, np.floor(real[:, 1]))
    np.testing.assert_allclose(showers.e_mev, real[:, 3] * 1000, rtol=1e-6)
    np.testing.assert_allclose(showers.visible_energy_mev(), events[:, :, 3].sum(1) * 1000, rtol=1e-5)
    assert showers.layer.min() >= 0 and showers.layer.max() <= 29
    assert showers.conditions["p_norm_local"].shape == (2, 3)
    depth = read_caloclouds_hdf5(path, continuous_depth=True)
    np.testing.assert_array_equal(depth.layer, real[:, 1])


def test_layouts_and_padding_agree(tmp_path, rng) -> None:
    n, p = 3, 7
    events = np.zeros((n, p, 4), np.float32)
    counts = [4, 0, 7]
    for i, c in enumerate(counts):
        events[i, p - c :] = np.c_[rng.normal(0, 20, (c, 3)), rng.uniform(1e-4, 1e-2, c)]
    events[:, :, 1] = np.abs(events[:, :, 1]) % 30
    front = tmp_path / "front_npc.hdf5"
    _write(front, events, [[10], [20], [30]])
    back = tmp_path / "back_ncp.hdf5"
    back_events = np.zeros_like(events)
    for i, c in enumerate(counts):
        back_events[i, :c] = events[i, p - c :]
    _write(back, back_events.transpose(0, 2, 1), [10, 20, 30])
    a, b = read_caloclouds_hdf5(front), read_caloclouds_hdf5(back)
    assert a.n_points.tolist() == counts
    np.testing.assert_array_equal(a.points, b.points)
    np.testing.assert_array_equal(a.incident_energy_gev, [10, 20, 30])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda ev: ev.__setitem__((0, 5, 0), np.nan), "NaN or inf in event 0"),
        (lambda ev: ev.__setitem__((1, 5, 3), -1.0), "negative energy"),
        (lambda ev: ev.__setitem__((0, 5, 1), 45.0), "outside 0..30 layer units"),
    ],
)
def test_bad_values(tmp_path, edit, message) -> None:
    events = np.zeros((2, 6, 4), np.float32)
    events[:, 3:] = [1.0, 2.0, 3.0, 0.01]
    edit(events)
    path = tmp_path / "bad.hdf5"
    _write(path, events, [10, 20])
    with pytest.raises(InputFileError, match=message) as info:
        read_caloclouds_hdf5(path)
    assert "bad.hdf5" in str(info.value)


def test_missing_and_misshaped(tmp_path) -> None:
    path = tmp_path / "noenergy.hdf5"
    with h5py.File(path, "w") as f:
        f["events"] = np.zeros((2, 5, 4), np.float32)
    with pytest.raises(InputFileError, match=r"missing dataset\(s\) \['energy'\]"):
        read_caloclouds_hdf5(path)
    _write(path, np.zeros((2, 5, 3)), [1, 2])
    with pytest.raises(InputFileError, match=r"expected shape \(N, P, 4\) or \(N, 4, P\)"):
        read_caloclouds_hdf5(path)
    _write(path, np.zeros((2, 5, 4)), [1, 2, 3])
    with pytest.raises(InputFileError, match="does not match 2 events"):
        read_caloclouds_hdf5(path)
