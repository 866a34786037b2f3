"""Largest-remainder rounding (caloclouds.rounding): exact integer splits, in Python and compiled."""

import torch

from caloclouds.rounding import largest_remainder


def test_largest_remainder_edge_cases():
    weights = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [-2.0, 1.0, 3.0], [0.2, 0.5, 0.3]])
    totals = torch.tensor([10, 7, 5, 0])
    out = largest_remainder(weights, totals)
    assert out.dtype == torch.int64 and torch.equal(out.sum(1), totals) and int(out.min()) >= 0
    assert out[1].tolist() == [7, 0, 0]  # all-zero weights: everything in column 0
    assert out[2, 0] == 0  # a negative weight counts as 0
    assert sorted(out[0].tolist()) == [3, 3, 4]


def test_largest_remainder_compiled_equals_python():
    """The generator and the export run the split compiled by TorchScript: the same split as in Python."""
    g = torch.Generator().manual_seed(0)
    weights = torch.rand(200, 30, generator=g, dtype=torch.float64) * (torch.rand(200, 30, generator=g) > 0.3)
    totals = torch.randint(0, 5000, (200,), generator=g)
    assert torch.equal(torch.jit.script(largest_remainder)(weights, totals), largest_remainder(weights, totals))
