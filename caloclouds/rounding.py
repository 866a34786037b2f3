"""Largest-remainder rounding: integer splits of per-shower totals that sum to them exactly.

Used by the Shower Flow (its layer counts n_l from sampled fractions), the N calibration (the
calibrated number of points split over the layers) and their TorchScript export, all through these
two functions. They are TorchScript-compatible: the export compiles the same code that the Python
path runs, and the generator runs them compiled, without Python's cost per operation.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["largest_remainder", "largest_remainder_shares"]


def largest_remainder_shares(exact: Tensor, totals: Tensor) -> Tensor:
    """Round non-negative shares ``exact`` (B, L), whose rows sum to ``totals`` (B,), to integers.

    Each entry gets ``floor(exact)``; the units still missing go, one each, to the largest
    fractional parts (equal fractional parts in the order ``torch.sort`` (descending) returns
    them). The arithmetic stays in the dtype of ``exact``: :func:`largest_remainder` passes float64
    shares, the Shower Flow float32 ones.

    Returns:
        (B, L) int64, each row summing exactly to its total.
    """
    base = exact.floor().long()
    missing = totals.long() - base.sum(1)
    # give the remaining units to the largest fractional parts
    order = torch.argsort(exact - base.to(exact.dtype), dim=1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(exact.shape[1], device=exact.device).expand_as(order))
    return base + (rank < missing[:, None]).long()


def largest_remainder(weights: Tensor, totals: Tensor) -> Tensor:
    """Split integer ``totals`` (B,) in proportion to ``weights`` (B, L), by largest-remainder rounding.

    The exact shares ``w / sum(w) * total`` are computed in float64 and rounded by
    :func:`largest_remainder_shares`. Edge cases: negative weights count as 0; a row whose weights
    are all 0 (or negative) puts its whole total in column 0.

    Returns:
        (B, L) int64, each row summing exactly to its total, no entry negative.
    """
    weights = weights.clamp_min(0).double()
    totals = totals.long()
    empty = weights.sum(1) <= 0
    first = torch.nn.functional.one_hot(torch.zeros_like(totals), weights.shape[1]).double()
    weights = torch.where(empty[:, None], first, weights)
    return largest_remainder_shares(weights / weights.sum(1, keepdim=True) * totals[:, None].double(), totals)
