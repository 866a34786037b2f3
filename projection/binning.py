"""Per-(shower, cell) energy sums for a ragged batch, without Python loops (numpy and torch).

Every point gets the key ``shower * (C + 1) + cell + 1`` where ``C`` is the number of cells of
the geometry and ``cell = -1`` stands for "lost". One sort groups equal keys; segment sums give the
energy of every hit cell and the lost energy of every shower at once.

numpy: the float32 energy's bits are packed into the low 32 bits of the key (or, for keys of more
than 32 bits, the point index), so one plain (SIMD) ``np.sort`` replaces ``argsort`` plus a
gather; the sums use ``np.add.reduceat`` in float64.
torch: ``torch.sort`` plus ``index_add_`` in float64 (CUDA-capable).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["segment_sums_numpy", "segment_sums_torch"]

_MAX_KEY_BITS = 62
_ENERGY_PACK_KEY_BITS = 32  # keys below 2^32 share one uint64 with the float32 energy


def segment_sums_numpy(key: np.ndarray, e_mev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique keys (ascending) and the float64 sum of ``e_mev`` over each.

    Args:
        key: (P,) non-negative int64 keys.
        e_mev: (P,) float32 energies.
    """
    n = len(key)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    key_bits = int(key.max()).bit_length()
    if key_bits <= _ENERGY_PACK_KEY_BITS:
        # key in the high 32 bits, the float32 energy's bit pattern in the low 32: one sort, no gather
        packed = (key.astype(np.uint64) << np.uint64(32)) | np.ascontiguousarray(e_mev, np.float32).view(np.uint32)
        packed.sort()
        sorted_key = (packed >> np.uint64(32)).astype(np.int64)
        e_sorted = (packed & np.uint64(0xFFFFFFFF)).astype(np.uint32).view(np.float32)
    else:
        index_bits = max(int(n - 1).bit_length(), 1)
        if key_bits + index_bits <= _MAX_KEY_BITS:
            packed = np.sort((key << index_bits) | np.arange(n, dtype=np.int64))
            order = packed & ((1 << index_bits) - 1)
            sorted_key = packed >> index_bits
        else:  # pragma: no cover - only for batches of billions of (shower, cell) keys
            order = np.argsort(key, kind="stable")
            sorted_key = key[order]
        e_sorted = e_mev[order]
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(sorted_key[1:], sorted_key[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    sums = np.add.reduceat(e_sorted.astype(np.float64), starts)
    return sorted_key[starts], sums


def segment_sums_torch(key: Any, e_mev: Any) -> tuple[Any, Any]:
    """Torch version of :func:`segment_sums_numpy` (same keys, float64 sums)."""
    import torch

    if key.numel() == 0:
        return key.new_zeros(0), torch.zeros(0, dtype=torch.float64, device=key.device)
    sorted_key, order = torch.sort(key)
    new = torch.ones_like(sorted_key, dtype=torch.bool)
    new[1:] = sorted_key[1:] != sorted_key[:-1]
    segment = torch.cumsum(new.long(), 0) - 1
    starts = new.nonzero().reshape(-1)
    sums = torch.zeros(len(starts), dtype=torch.float64, device=key.device)
    sums.index_add_(0, segment, e_mev[order].double())
    return sorted_key[starts], sums
