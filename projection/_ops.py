"""One set of array primitives for numpy and torch, so the projection is written once.

Every cell-assignment rule and the binning (:mod:`projection.project`) call only these functions,
in the same order, with float32 constants, so the numpy and torch paths perform the same IEEE
operations and give identical cell indices. No fused operations (FMA, addcmul) are used. The
per-(shower, cell) sums are each backend's own (:mod:`projection.binning`): numpy packs keys and
energies into one sort, torch sorts and adds with ``index_add_``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from caloclouds.showers import shower_index, shower_index_torch
from projection.binning import segment_sums_numpy, segment_sums_torch

__all__ = ["NumpyOps", "TorchOps", "ops_for"]


class _BothBackends:
    """The primitives that read the same in numpy and torch."""

    @staticmethod
    def take_rows(table: Any, idx: Any, col: Any) -> Any:
        return table[idx, col]


class NumpyOps(_BothBackends):
    """numpy backend."""

    name = "numpy"
    # numpy's own functions where they have the primitive's signature
    floor = staticmethod(np.floor)
    rint = staticmethod(np.rint)
    where = staticmethod(np.where)
    abs = staticmethod(np.abs)
    maximum = staticmethod(np.maximum)
    clip = staticmethod(np.clip)
    searchsorted = staticmethod(np.searchsorted)
    nonzero = staticmethod(np.flatnonzero)
    take = staticmethod(np.take)

    @staticmethod
    def f32(value: float, like: Any) -> Any:
        return np.float32(value)

    @staticmethod
    def floor_int(x: Any) -> Any:
        return np.floor(x).astype(np.int64)

    @staticmethod
    def to_int(x: Any) -> Any:
        return x.astype(np.int64)

    @staticmethod
    def to_f32(x: Any) -> Any:
        return x.astype(np.float32)

    @staticmethod
    def arange(n: int, like: Any) -> Any:
        return np.arange(n, dtype=np.int64)

    @staticmethod
    def stack_argmin(values: list[Any]) -> Any:
        return np.argmin(np.stack(values, axis=1), axis=1)

    @staticmethod
    def stack(values: list[Any]) -> Any:
        return np.stack(values, axis=1)

    # the binning (projection.project)
    blockable = True  # the element-wise placement and assignment may run on cache-sized blocks
    shower_index = staticmethod(shower_index)
    segment_sums = staticmethod(segment_sums_numpy)

    @staticmethod
    def tables(geometry: Any, like: Any) -> dict[str, Any]:
        return {**geometry.numpy_tables(), "layer_z_mm": geometry.layer_z_mm}

    @staticmethod
    def asarray(values: np.ndarray, like: Any) -> Any:
        return values

    @staticmethod
    def contiguous(x: Any) -> Any:
        return np.ascontiguousarray(x)

    @staticmethod
    def full_int(n: int, value: int, like: Any) -> Any:
        return np.full(n, value, dtype=np.int64)

    @staticmethod
    def empty_int(n: int, like: Any) -> Any:
        return np.empty(n, dtype=np.int64)

    @staticmethod
    def zeros_f64(n: int, like: Any) -> Any:
        return np.zeros(n, dtype=np.float64)

    @staticmethod
    def divmod(a: Any, b: int) -> tuple[Any, Any]:
        return np.divmod(a, b)

    @staticmethod
    def sum_per(index: Any, weights: Any, n: int) -> Any:
        """(n,) float64 sums of ``weights`` per ``index``."""
        return np.bincount(index, weights=weights, minlength=n).astype(np.float64, copy=False)  # int64 if empty

    @staticmethod
    def offsets_of(index: Any, n: int) -> Any:
        """(n+1,) int64 offsets of the sorted ``index`` (values in 0..n-1)."""
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(index, minlength=n), out=offsets[1:])
        return offsets


class TorchOps(_BothBackends):
    """torch backend (any device)."""

    name = "torch"

    @staticmethod
    def f32(value: float, like: Any) -> Any:
        import torch

        return torch.tensor(np.float32(value), dtype=torch.float32, device=like.device)

    @staticmethod
    def floor_int(x: Any) -> Any:
        import torch

        return torch.floor(x).long()

    @staticmethod
    def floor(x: Any) -> Any:
        import torch

        return torch.floor(x)

    @staticmethod
    def rint(x: Any) -> Any:
        import torch

        return torch.round(x)

    @staticmethod
    def to_int(x: Any) -> Any:
        return x.long()

    @staticmethod
    def to_f32(x: Any) -> Any:
        return x.float()

    @staticmethod
    def where(cond: Any, a: Any, b: Any) -> Any:
        import torch

        return torch.where(cond, a, b)

    @staticmethod
    def abs(x: Any) -> Any:
        return x.abs()

    @staticmethod
    def maximum(a: Any, b: Any) -> Any:
        import torch

        return torch.maximum(a, b)

    @staticmethod
    def clip(x: Any, lo: int, hi: int) -> Any:
        return x.clamp(lo, hi)

    @staticmethod
    def searchsorted(a: Any, v: Any) -> Any:
        import torch

        return torch.searchsorted(a, v.contiguous())

    @staticmethod
    def nonzero(mask: Any) -> Any:
        return mask.nonzero().reshape(-1)

    @staticmethod
    def arange(n: int, like: Any) -> Any:
        import torch

        return torch.arange(n, dtype=torch.int64, device=like.device)

    @staticmethod
    def take(table: Any, idx: Any) -> Any:
        return table[idx]

    @staticmethod
    def stack_argmin(values: list[Any]) -> Any:
        import torch

        return torch.stack(values, dim=1).argmin(dim=1)

    @staticmethod
    def stack(values: list[Any]) -> Any:
        import torch

        return torch.stack(values, dim=1)

    # the binning (projection.project)
    blockable = False  # one launch for all points (the device's own parallelism)
    shower_index = staticmethod(shower_index_torch)
    segment_sums = staticmethod(segment_sums_torch)

    @staticmethod
    def tables(geometry: Any, like: Any) -> dict[str, Any]:
        return geometry.torch_tables(like.device)

    @staticmethod
    def asarray(values: np.ndarray, like: Any) -> Any:
        import torch

        return torch.as_tensor(values, device=like.device)

    @staticmethod
    def contiguous(x: Any) -> Any:
        return x.contiguous()

    @staticmethod
    def full_int(n: int, value: int, like: Any) -> Any:
        import torch

        return torch.full((n,), value, dtype=torch.int64, device=like.device)

    @staticmethod
    def empty_int(n: int, like: Any) -> Any:
        import torch

        return torch.empty(n, dtype=torch.int64, device=like.device)

    @staticmethod
    def zeros_f64(n: int, like: Any) -> Any:
        import torch

        return torch.zeros(n, dtype=torch.float64, device=like.device)

    @staticmethod
    def divmod(a: Any, b: int) -> tuple[Any, Any]:
        import torch

        quotient = torch.div(a, b, rounding_mode="floor")
        return quotient, a - quotient * b

    @staticmethod
    def sum_per(index: Any, weights: Any, n: int) -> Any:
        import torch

        return torch.zeros(n, dtype=torch.float64, device=weights.device).index_add_(0, index, weights)

    @staticmethod
    def offsets_of(index: Any, n: int) -> Any:
        import torch

        offsets = torch.zeros(n + 1, dtype=torch.int64, device=index.device)
        offsets[1:] = torch.cumsum(torch.bincount(index, minlength=n), 0)
        return offsets


def ops_for(array: Any) -> type[NumpyOps] | type[TorchOps]:
    """The backend of ``array`` (numpy array or torch tensor)."""
    return NumpyOps if isinstance(array, np.ndarray) else TorchOps
