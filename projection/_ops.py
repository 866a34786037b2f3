"""One set of array primitives for numpy and torch, so every cell-assignment rule is written once.

The assignment code calls only these functions, in the same order, with float32 constants, so the
numpy and torch paths perform the same IEEE operations and give identical cell indices. No fused
operations (FMA, addcmul) are used.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["NumpyOps", "TorchOps", "ops_for"]


class NumpyOps:
    """numpy backend."""

    name = "numpy"

    @staticmethod
    def f32(value: float, like: Any) -> Any:
        return np.float32(value)

    @staticmethod
    def floor_int(x: Any) -> Any:
        return np.floor(x).astype(np.int64)

    @staticmethod
    def floor(x: Any) -> Any:
        return np.floor(x)

    @staticmethod
    def rint(x: Any) -> Any:
        return np.rint(x)

    @staticmethod
    def to_int(x: Any) -> Any:
        return x.astype(np.int64)

    @staticmethod
    def to_f32(x: Any) -> Any:
        return x.astype(np.float32)

    @staticmethod
    def where(cond: Any, a: Any, b: Any) -> Any:
        return np.where(cond, a, b)

    @staticmethod
    def abs(x: Any) -> Any:
        return np.abs(x)

    @staticmethod
    def maximum(a: Any, b: Any) -> Any:
        return np.maximum(a, b)

    @staticmethod
    def clip(x: Any, lo: int, hi: int) -> Any:
        return np.clip(x, lo, hi)

    @staticmethod
    def searchsorted(a: Any, v: Any) -> Any:
        return np.searchsorted(a, v)

    @staticmethod
    def nonzero(mask: Any) -> Any:
        return np.flatnonzero(mask)

    @staticmethod
    def arange(n: int, like: Any) -> Any:
        return np.arange(n, dtype=np.int64)

    @staticmethod
    def take(table: Any, idx: Any) -> Any:
        return np.take(table, idx)

    @staticmethod
    def stack_argmin(values: list[Any]) -> Any:
        return np.argmin(np.stack(values, axis=1), axis=1)

    @staticmethod
    def stack(values: list[Any]) -> Any:
        return np.stack(values, axis=1)

    @staticmethod
    def take_rows(table: Any, idx: Any, col: Any) -> Any:
        return table[idx, col]


class TorchOps:
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

    @staticmethod
    def take_rows(table: Any, idx: Any, col: Any) -> Any:
        return table[idx, col]


def ops_for(array: Any) -> type[NumpyOps] | type[TorchOps]:
    """The backend of ``array`` (numpy array or torch tensor)."""
    return NumpyOps if isinstance(array, np.ndarray) else TorchOps
