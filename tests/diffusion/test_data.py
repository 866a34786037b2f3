from __future__ import annotations

import numpy as np
import torch

from caloclouds.diffusion.data import TrainingData
from caloclouds.diffusion.edm import per_shower_mean
from caloclouds.diffusion.preprocessing import PointNormaliser
from caloclouds.showers import ragged_take, ragged_take_torch

from .conftest import make_toy_showers


def _data() -> tuple[TrainingData, PointNormaliser]:
    s = make_toy_showers(10)
    data = TrainingData(s.points, s.offsets, s.incident_energy_gev)
    return data, data.fit_normaliser(n_layers=30, subcell_pitch_mm=0.0, sigma_data=0.5)


def test_ragged_take_takes_whole_showers_in_order() -> None:
    offsets = torch.tensor([0, 3, 3, 7, 8])
    idx, new = ragged_take_torch(offsets, torch.tensor([2, 0, 2, 1]))
    assert idx.tolist() == [3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6] and new.tolist() == [0, 4, 7, 11, 11]
    idx_np, new_np = ragged_take(offsets.numpy(), np.array([2, 0, 2, 1]))  # the numpy twin
    assert np.array_equal(idx_np, idx.numpy()) and np.array_equal(new_np, new.numpy())


def test_batch_rotation_keeps_radius_depth_energy_and_no_truncation() -> None:
    data, norm = _data()
    idx = torch.tensor([3, 1, 3])
    g = torch.Generator().manual_seed(0)
    plain = data.batch(idx, norm, rotate=False, jitter=False, generator=g)
    rot = data.batch(idx, norm, rotate=True, jitter=False, generator=g)
    a, b = norm.inverse(plain.x), norm.inverse(rot.x)
    assert len(a) == int(data.n_points[idx].sum())  # every point of every shower, no padding
    torch.testing.assert_close(a[:, 0].hypot(a[:, 1]), b[:, 0].hypot(b[:, 1]), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(a[:, 2:], b[:, 2:])
    assert not torch.allclose(a[:, 0], b[:, 0])


def test_noise_groups_split_points_but_reduce_per_shower() -> None:
    data, norm = _data()
    idx = torch.tensor([0, 5, 7])
    batch = data.batch(idx, norm, rotate=False, jitter=False, groups=4, generator=torch.Generator().manual_seed(1))
    assert batch.cond.n_showers == 12 and batch.showers.n_showers == 3
    assert torch.equal(batch.cond.shower_index // 4, batch.showers.shower_index)
    torch.testing.assert_close(batch.cond.features[::4], batch.showers.features)
    ones = per_shower_mean(torch.ones(len(batch.x)), batch.showers)
    torch.testing.assert_close(ones, torch.ones(3))
