"""Two helpers of the calibration stages: per-shower values per point, and TorchScript compilation."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["per_point", "compiled"]


def per_point(values: Tensor, shower: Tensor) -> Tensor:
    """(P,) ``values[shower]`` of (B,) per-shower values; for one shower a broadcast view, no copy."""
    if values.shape[0] == 1:
        return values.expand(shower.shape[0])
    return values.index_select(0, shower)


@functools.cache
def compiled(function: Callable[..., Any]) -> Callable[..., Any]:
    """One of the calibration's TorchScript-compatible functions compiled by TorchScript (once per process).

    The generator runs :func:`~caloclouds.generation.calibration.calibrate_points` through it,
    :class:`~caloclouds.generation.calibration.RadialCalibration` and ``caloclouds calibrate`` their
    functions: the same operations without Python's per-operation cost.
    """
    return torch.jit.script(function)
