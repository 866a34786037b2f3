"""Placement of a shower (local frame, depth in layers) onto a geometry.

Conventions (the same for numpy and torch):

* **Rotation, then translation.** A point ``(x, y)`` of the shower's local frame lands at
  ``x' = cos(a) x - sin(a) y + impact_x``, ``y' = sin(a) x + cos(a) y + impact_y`` of the geometry's
  local frame: the shower is turned counter-clockwise by ``rotation_rad`` about its axis, and its axis
  hits the geometry at ``impact_mm``. The arithmetic is float32.
* **Layer map.** Shower layer ``l`` (0 .. n_shower_layers - 1, the showers' detector's ``n_layers``)
  goes to detector layer ``layer_map[l]``; ``-1`` drops the layer, and its energy is booked as lost.
  Named maps:

  - ``"identity"``: ``l -> l``; shower layers beyond the geometry's last layer are dropped (lost).
  - ``"linear"``: ``l -> floor(l * n_detector / n_shower)``, which spreads the shower's depth over all
    detector layers. For HGCal (26 layers) and 30 shower layers this merges the shower layer pairs
    (0, 1), (7, 8), (15, 16) and (22, 23) and keeps all energy. It is the HGCal default, because it
    keeps the whole longitudinal profile; use ``"identity"`` to keep layers one to one instead.
  - any sequence of ``n_shower_layers`` integers in ``[-1, n_detector)``.

  ``layer_map=None`` uses the geometry's ``default_layer_map`` (``identity`` for the ILD grids and hex
  lattices, ``linear`` for HGCal).
* **Layer values.** The shower's ``layer`` column must hold integers in ``[0, n_shower_layers)``;
  anything else (NaN, fractions, out-of-range values) raises :class:`ProjectionError`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from caloclouds.showers import rotate_xy
from projection._ops import ops_for
from projection.errors import ProjectionError

__all__ = ["resolve_layer_map", "place_xy", "check_points", "LAYER_MAPS"]

LAYER_MAPS = ("identity", "linear")


def resolve_layer_map(
    layer_map: str | Sequence[int] | np.ndarray,
    *,
    n_shower_layers: int,
    n_detector_layers: int,
) -> np.ndarray:
    """The layer map as an (n_shower_layers,) int64 array, -1 for dropped layers.

    Args:
        layer_map: ``"identity"``, ``"linear"`` or a sequence of detector layers (-1 = drop).
        n_shower_layers: number of shower layers.
        n_detector_layers: number of layers of the geometry.
    """
    shower = np.arange(n_shower_layers, dtype=np.int64)
    if isinstance(layer_map, str):
        if layer_map == "identity":
            return np.where(shower < n_detector_layers, shower, -1)
        if layer_map == "linear":
            return shower * n_detector_layers // n_shower_layers
        msg = f"layer_map {layer_map!r} is not one of {LAYER_MAPS} or a sequence of layer indices"
        raise ProjectionError(msg)
    mapping = np.asarray(layer_map)
    if mapping.shape != (n_shower_layers,) or not np.issubdtype(mapping.dtype, np.integer):
        msg = f"layer_map must be {n_shower_layers} integers (one per shower layer), got shape {mapping.shape} dtype {mapping.dtype}"
        raise ProjectionError(msg)
    if mapping.min(initial=0) < -1 or mapping.max(initial=0) >= n_detector_layers:
        msg = f"layer_map values must lie in [-1, {n_detector_layers - 1}], got {mapping.min()}..{mapping.max()}"
        raise ProjectionError(msg)
    return mapping.astype(np.int64)


def check_points(points: Any, offsets: Any, *, n_shower_layers: int) -> Any:
    """The integer shower layer of every point (int64, numpy or torch).

    Raises:
        ProjectionError: NaN/inf values, or layers that are not integers in ``[0, n_shower_layers)``.
    """
    is_numpy = isinstance(points, np.ndarray)
    layer = points[:, 2]
    if is_numpy:
        layer = np.ascontiguousarray(layer)
        as_int = layer.astype(np.int64)
        fine = bool(np.isfinite(points).all()) and (
            len(layer) == 0
            or (layer.min() >= 0 and layer.max() <= n_shower_layers - 1 and np.array_equal(as_int, layer))
        )
    else:
        fine = bool(points.isfinite().all()) and (
            len(layer) == 0
            or bool((layer.min() >= 0) & (layer.max() <= n_shower_layers - 1) & (layer == layer.long()).all())
        )
        as_int = layer.long()
    if fine:
        return as_int
    if not is_numpy:
        points, offsets = points.detach().cpu().numpy(), offsets.detach().cpu().numpy()
        layer = np.ascontiguousarray(points[:, 2])
    finite = np.isfinite(points).all(axis=1)
    with np.errstate(invalid="ignore"):
        bad = ~finite | (layer < 0) | (layer > n_shower_layers - 1) | (layer != np.floor(layer))
    row = int(np.argmax(bad))
    shower = int(np.searchsorted(np.asarray(offsets), row, side="right") - 1)
    values = [float(v) for v in points[row]]
    if not finite[row]:
        msg = f"point {row} (shower {shower}) has a NaN or inf value: {values}; NaN points cannot be projected"
    else:
        msg = (
            f"point {row} (shower {shower}) has layer {values[2]:g}; layers must be integers in "
            f"0..{n_shower_layers - 1} (pass n_shower_layers or a layer_map for other depths)"
        )
    raise ProjectionError(msg)


def place_xy(x: Any, y: Any, *, impact_mm: tuple[float, float], rotation_rad: float) -> tuple[Any, Any]:
    """Rotate by ``rotation_rad`` about the shower axis, then translate by ``impact_mm`` (float32)."""
    ops = ops_for(x)
    if rotation_rad != 0.0:
        c = ops.f32(math.cos(rotation_rad), x)
        s = ops.f32(math.sin(rotation_rad), x)
        x, y = rotate_xy(x, y, c, s)
    if impact_mm[0] != 0.0:
        x = x + ops.f32(impact_mm[0], x)
    if impact_mm[1] != 0.0:
        y = y + ops.f32(impact_mm[1], y)
    return x, y
