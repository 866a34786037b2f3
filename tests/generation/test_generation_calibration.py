from __future__ import annotations

import numpy as np
import pytest
import torch

from caloclouds.generation.calibration import (
    PointCountCalibration,
    assign_layers_by_depth,
    random_angles,
    rescale_layer_energies,
    rotate_showers,
    shift_showers_to_cog,
)
from caloclouds.rounding import largest_remainder
from caloclouds.showers import shower_index_torch


def test_largest_remainder_sums_exactly():
    g = torch.Generator().manual_seed(0)
    w = torch.rand(50, 30, generator=g)
    w[3] = 0  # an all-zero row
    totals = torch.randint(0, 5000, (50,), generator=g)
    n = largest_remainder(w, totals)
    assert n.dtype == torch.int64
    assert torch.equal(n.sum(1), totals)
    assert (n >= 0).all()
    exact = w[0].double() / w[0].sum() * totals[0]
    assert (n[0].double() - exact).abs().max() < 1


def test_assign_layers_by_depth_gives_requested_counts_in_depth_order():
    g = torch.Generator().manual_seed(1)
    ppl = torch.tensor([[2, 0, 3], [0, 4, 1], [0, 0, 0]])
    offsets = torch.tensor([0, 5, 10, 10])
    depth = torch.rand(10, generator=g) * 3
    layer = assign_layers_by_depth(depth, offsets, ppl)
    for b in range(3):
        lay = layer[offsets[b] : offsets[b + 1]]
        dep = depth[offsets[b] : offsets[b + 1]]
        assert torch.equal(torch.bincount(lay, minlength=3), ppl[b])
        # monotonic: deeper points never get a shallower layer
        order = torch.argsort(dep)
        assert (torch.diff(lay[order]) >= 0).all()
    with pytest.raises(ValueError, match="sum"):
        assign_layers_by_depth(depth, offsets, ppl + 1)


def test_rescale_layer_energies_matches_targets_and_handles_edge_cases():
    offsets = torch.tensor([0, 4, 6])
    layer = torch.tensor([0, 0, 1, 2, 0, 1])
    e = torch.tensor([1.0, -1.0, 0.0, 2.0, 3.0, 1.0])  # layer 1 of shower 0 has no positive energy
    target = torch.tensor([[10.0, 4.0, 6.0], [5.0, 5.0, 2.0]])  # shower 1 asks 2 MeV of an empty layer
    out = rescale_layer_energies(e, layer, shower_index_torch(offsets), target)
    assert (out >= 0).all()
    assert out[1] == 0  # negative energy -> 0
    assert out[0] == pytest.approx(10.0)
    assert out[2] == pytest.approx(4.0)
    assert out[3] == pytest.approx(6.0)
    # shower 1: total kept (12 MeV) although layer 2 has no points
    assert float(out[4:].sum()) == pytest.approx(12.0)
    assert float(out[4] / out[5]) == pytest.approx(1.0)


def test_shift_showers_to_cog():
    offsets = torch.tensor([0, 2, 3, 3])
    x = torch.tensor([0.0, 2.0, 5.0])
    y = torch.tensor([1.0, 1.0, -1.0])
    e = torch.tensor([1.0, 3.0, 2.0])
    cog = torch.tensor([[10.0, 0.0], [1.0, 1.0], [7.0, 7.0]])
    x2, y2 = shift_showers_to_cog(x, y, e, shower_index_torch(offsets), cog)
    for b in range(2):
        s = slice(int(offsets[b]), int(offsets[b + 1]))
        w = e[s] / e[s].sum()
        assert float((w * x2[s]).sum()) == pytest.approx(float(cog[b, 0]), abs=1e-5)
        assert float((w * y2[s]).sum()) == pytest.approx(float(cog[b, 1]), abs=1e-5)


def test_rotate_showers_turns_each_shower_rigidly_by_its_angle():
    offsets = torch.tensor([0, 3, 3, 5])
    x = torch.tensor([1.0, 0.0, -2.0, 3.0, 0.5])
    y = torch.tensor([0.0, 1.0, 2.0, 4.0, -0.5])
    angle = random_angles(3, torch.device("cpu"), torch.Generator().manual_seed(0))
    x2, y2 = rotate_showers(x, y, angle, shower_index_torch(offsets))
    # against the rotation written out in float64: each shower turned by its own angle, counter-clockwise
    a = angle.double()[shower_index_torch(offsets)]
    torch.testing.assert_close(x2.double(), a.cos() * x.double() - a.sin() * y.double(), atol=1e-5, rtol=0)
    torch.testing.assert_close(y2.double(), a.sin() * x.double() + a.cos() * y.double(), atol=1e-5, rtol=0)
    assert abs(float(angle[0] - angle[2])) > 0.1  # the two showers with points turn differently
    again = random_angles(3, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert torch.equal(again, angle) and ((0 <= angle) & (angle < 2 * torch.pi)).all()


def test_point_count_calibration_round_trip():
    identity = PointCountCalibration()
    n = torch.tensor([10, 500, 3000])
    assert torch.equal(identity(n), n)
    cal = PointCountCalibration((0.0, 0.0, 0.5, 10.0), (0.0, 0.0, 0.5, 10.0), (5.0, 5000.0))
    assert torch.equal(cal(n), n)  # equal fits: nothing to correct
    fewer = PointCountCalibration((0.0, 0.0, 0.5, 10.0), (0.0, 0.0, 1.0, 10.0), (5.0, 5000.0))
    assert torch.equal(fewer(torch.tensor([1000])), torch.tensor([500]))  # model makes 2x the cells
    again = PointCountCalibration.from_dict(cal.to_dict())
    assert again == cal
    assert np.all(again(torch.tensor([0])).numpy() >= 1)


def test_point_count_calibration_table_is_the_numpy_map():
    """The lookup table (N up to just beyond points_range) and the numpy path beyond it give the same N'."""
    cal = PointCountCalibration((1e-9, -1e-5, 0.22, 52.0), (1.2e-8, -7e-5, 0.38, 58.0), (657.0, 3908.0))
    n = torch.arange(0, 6000)
    expected = torch.as_tensor(cal.calibrated(n.numpy()), dtype=torch.long)
    assert torch.equal(cal(n), expected)  # beyond the table (N >= 3910): the numpy path
    assert torch.equal(cal(n[:3000]), expected[:3000])  # all inside the table
    assert torch.equal(cal(torch.tensor([[5, 4000]])), torch.tensor([[expected[5], expected[4000]]]))
    assert cal(torch.zeros(0, dtype=torch.long)).shape == (0,)
    wide = PointCountCalibration(cal.g4_cells_from_points, cal.model_cells_from_points, (1.0, 1e9))
    assert len(wide._table) == 1 << 16  # capped: a huge points_range does not make a huge table
    assert torch.equal(wide(torch.tensor([10, 10**7])), torch.as_tensor(wide.calibrated(np.array([10, 10**7]))).long())
