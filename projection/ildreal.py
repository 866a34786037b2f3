"""The real ILD ECAL barrel readout (``ild-real``): live square cells with wafer and module gaps.

Source: ``ild_ecal_barrel_cells.npz`` (the CaloClouds muon map: every cell a muon scan of the full
ILD simulation found sensitive, top stave, |x| < 300 mm, |z + 50| < 350 mm, 30 layers). Within a
layer the cells sit on rows and columns whose spacing is the 5.088 mm pitch, with the ~1 mm wafer
gaps and 10-30 mm module gaps between them; cells missing from the file are dead.

**Rule** (kind ``square_cells``): a point belongs to the live cell whose square (side = the cell
pitch, centred on the cell) contains it. Points in gaps or on dead cells are lost, as in the real
detector.

**Local frame**: ``x`` = global x and ``y`` = global z + 50 mm, both minus the photon gun position
of the muon scan, so ``impact_mm=(0, 0)`` is the gun's impact point; ``layer_z_mm`` is the global
(radial) y of the middle of each silicon layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from caloclouds.errors import InputFileError
from projection._ops import ops_for
from projection.geometry import Geometry, read_npz

__all__ = ["load_ild_real", "square_cells", "assign", "REQUIRED_TABLES"]

REQUIRED_TABLES = (
    "pitch_mm",
    "bucket_origin_x_mm",
    "bucket_origin_y_mm",
    "bucket_shape",
    "bucket_start",
    "bucket_cells",
)
_BIG_MM = 1.0e9  # L-infinity distance of an empty candidate slot
_REQUIRED_ARRAYS = ("layer", "x_mm", "z_mm", "layer_bottom_y_mm", "si_thickness_mm", "cell_pitch_mm", "gun_position_mm")


def square_cells(
    *,
    layer: np.ndarray,
    x_mm: np.ndarray,
    y_mm: np.ndarray,
    pitch_mm: float,
    layer_z_mm: np.ndarray,
    name: str = "square-cells",
) -> Geometry:
    """A geometry of axis-aligned square cells of side ``pitch_mm`` at arbitrary (non-overlapping) centres.

    A point belongs to the cell whose square contains it (the nearest centre in the L-infinity norm,
    if that is within half a pitch); points in no square are lost. The search uses a per-layer
    bucket grid of pitch-sized buckets, each listing the (at most a few) cells whose squares touch it.

    Args:
        layer: (C,) layer of each live cell.
        x_mm, y_mm: (C,) cell centres (mm).
        pitch_mm: cell side (mm).
        layer_z_mm: (L,) depth of each layer.
        name: geometry name.
    """
    layer = np.asarray(layer, dtype=np.int64)
    order = np.lexsort((y_mm, x_mm, layer))
    layer, x, y = layer[order], np.asarray(x_mm, np.float64)[order], np.asarray(y_mm, np.float64)[order]
    n_layers = len(layer_z_mm)
    half = pitch_mm / 2
    lo_x = np.full(n_layers, 0.0)
    lo_y = np.full(n_layers, 0.0)
    shape = np.ones((n_layers, 2), np.int64)
    present = np.bincount(layer, minlength=n_layers) > 0
    if present.any():
        lo_x[present] = np.floor(np.array([x[layer == i].min() for i in np.flatnonzero(present)]) - half) - 1.0
        lo_y[present] = np.floor(np.array([y[layer == i].min() for i in np.flatnonzero(present)]) - half) - 1.0
        hi_x = np.array([x[layer == i].max() for i in np.flatnonzero(present)]) + half
        hi_y = np.array([y[layer == i].max() for i in np.flatnonzero(present)]) + half
        shape[present, 0] = np.floor((hi_x - lo_x[present]) / pitch_mm).astype(np.int64) + 2
        shape[present, 1] = np.floor((hi_y - lo_y[present]) / pitch_mm).astype(np.int64) + 2
    start = np.concatenate(([0], np.cumsum(shape[:, 0] * shape[:, 1])))
    # every bucket touched by each square (at most 2 x 2)
    bx0 = np.floor((x - half - lo_x[layer]) / pitch_mm).astype(np.int64)
    by0 = np.floor((y - half - lo_y[layer]) / pitch_mm).astype(np.int64)
    bx1 = np.floor((x + half - lo_x[layer]) / pitch_mm).astype(np.int64)
    by1 = np.floor((y + half - lo_y[layer]) / pitch_mm).astype(np.int64)
    pairs_b, pairs_c = [], []
    for bx, by in ((bx0, by0), (bx0, by1), (bx1, by0), (bx1, by1)):
        pairs_b.append(start[layer] + bx * shape[layer, 1] + by)
        pairs_c.append(np.arange(len(x)))
    bucket, cell = np.concatenate(pairs_b), np.concatenate(pairs_c)
    keyed = np.unique(bucket * (len(x) + 1) + cell)
    bucket, cell = keyed // (len(x) + 1), keyed % (len(x) + 1)
    first = np.searchsorted(bucket, bucket)
    rank = np.arange(len(bucket)) - first
    capacity = int(rank.max()) + 1 if len(rank) else 1
    cells = np.full((int(start[-1]), capacity), -1, np.int64)
    cells[bucket, rank] = cell
    tables = {
        "pitch_mm": np.float64(pitch_mm),
        "bucket_origin_x_mm": lo_x.astype(np.float32),
        "bucket_origin_y_mm": lo_y.astype(np.float32),
        "bucket_shape": shape,
        "bucket_start": start.astype(np.int64),
        "bucket_cells": np.ascontiguousarray(cells.T),  # (capacity, buckets): candidate cells of each bucket
    }
    return Geometry(
        name=name,
        kind="square_cells",
        layer_z_mm=np.asarray(layer_z_mm, np.float64),
        cell_layer=layer,
        cell_x_mm=x,
        cell_y_mm=y,
        cell_size_mm=np.full(len(layer), pitch_mm, np.float32),
        cell_shape="square",
        tables=tables,
    )


def load_ild_real(path: str | Path) -> Geometry:
    """Build ``ild-real`` from ``ild_ecal_barrel_cells.npz`` (see the module docstring)."""
    path = Path(path)
    content = read_npz(path, _REQUIRED_ARRAYS, "ILD cell file")
    gun = content["gun_position_mm"].astype(np.float64)
    bottom = content["layer_bottom_y_mm"].astype(np.float64)
    layer = content["layer"].astype(np.int64)
    if layer.min() < 0 or layer.max() >= len(bottom):
        raise InputFileError(
            path, f"layer values {layer.min()}..{layer.max()} outside 0..{len(bottom) - 1}", where="layer"
        )
    try:
        return square_cells(
            layer=layer,
            x_mm=content["x_mm"].astype(np.float64) - gun[0],
            y_mm=content["z_mm"].astype(np.float64) - gun[2],
            pitch_mm=float(content["cell_pitch_mm"]),
            layer_z_mm=bottom + float(content["si_thickness_mm"]) / 2,
            name="ild-real",
        )
    except ValueError as exc:
        raise InputFileError(path, str(exc)) from None


def assign(tables: dict[str, Any], layer: Any, x: Any, y: Any) -> Any:
    """Cell id of each point (numpy or torch), -1 in gaps, on dead cells or outside."""
    ops = ops_for(x)
    pitch = ops.f32(float(tables["pitch_mm"]), x)
    half = ops.f32(float(tables["pitch_mm"]) / 2, x)
    shape = tables["bucket_shape"]
    n_x, n_y = ops.take(shape[:, 0], layer), ops.take(shape[:, 1], layer)
    bx = ops.floor_int((x - ops.take(tables["bucket_origin_x_mm"], layer)) / pitch)
    by = ops.floor_int((y - ops.take(tables["bucket_origin_y_mm"], layer)) / pitch)
    inside = (bx >= 0) & (bx < n_x) & (by >= 0) & (by < n_y)
    bucket = ops.where(inside, ops.take(tables["bucket_start"], layer) + bx * n_y + by, 0)
    cells = tables["bucket_cells"]
    cx, cy = tables["cell_x_mm"], tables["cell_y_mm"]
    best, best_d = None, None
    for slot in range(cells.shape[0]):
        cand = ops.take(cells[slot], bucket)
        safe = ops.clip(cand, 0, None)
        d = ops.maximum(ops.abs(x - ops.take(cx, safe)), ops.abs(y - ops.take(cy, safe)))
        d = ops.where(cand >= 0, d, ops.f32(_BIG_MM, x))
        if best is None:
            best, best_d = cand, d
        else:
            better = d < best_d
            best = ops.where(better, cand, best)
            best_d = ops.where(better, d, best_d)
    ok = inside & (best >= 0) & (best_d <= half)
    return ops.where(ok, best, -1)
