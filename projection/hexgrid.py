"""Hexagonal lattices: exact point-to-hexagon assignment by cube rounding, and hex-lattice geometries.

Axial coordinates (q, r) of a **flat-top** lattice (vertices on +-x) of flat-to-flat pitch ``p``:
the centre of cell (q, r) is ``x = q * (sqrt(3) / 2) p``, ``y = (r + q / 2) p``, so the six
neighbours lie at 30 + k * 60 degrees, one pitch away. A **pointy-top** lattice is the same with x and
y swapped. A point is assigned to the hexagon that contains it by rounding its fractional cube
coordinates ``(q, r, -q - r)`` and re-deriving the component with the largest rounding error
(exact up to float32 rounding at the hexagon edges).

References:
    Red Blob Games, "Hexagonal Grids" (axial coordinates, cube rounding).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from caloclouds.config import DetectorConfig
from projection._ops import ops_for
from projection.errors import ProjectionError
from projection.geometry import Geometry

__all__ = [
    "hex_round",
    "hex_centre",
    "hex_lattice",
    "hex_geometry_from_spec",
    "assign",
    "REQUIRED_TABLES",
    "DEFAULT_HALF_EXTENT_MM",
    "NEIGHBOURS_QR",
]

REQUIRED_TABLES = ("pitch_mm", "pointy", "origin_mm", "qr_min", "lut", "cells_per_layer")
DEFAULT_HALF_EXTENT_MM = 203.5  # cells with centres in |x|, |y| <= 203.5 mm, like the ILD grid
NEIGHBOURS_QR = ((1, 0), (0, 1), (-1, 1), (-1, 0), (0, -1), (1, -1))
_SQRT3 = math.sqrt(3.0)


def hex_constants(pitch_mm: float) -> tuple[np.float32, np.float32, np.float32]:
    """float32 factors (kq, kx, ky) with q = x * kq and r = y * ky - x * kx (flat-top)."""
    return np.float32(2.0 / (_SQRT3 * pitch_mm)), np.float32(1.0 / (_SQRT3 * pitch_mm)), np.float32(1.0 / pitch_mm)


def hex_round(x: Any, y: Any, kq: Any, kx: Any, ky: Any, *, pointy: bool = False) -> tuple[Any, Any]:
    """Axial (q, r) int64 of the hexagon containing each point (numpy or torch).

    Args:
        x, y: (P,) float32 coordinates relative to the centre of cell (0, 0).
        kq, kx, ky: the float32 factors of :func:`hex_constants` (scalars or per-point arrays).
        pointy: pointy-top lattice (x and y swapped).
    """
    ops = ops_for(x)
    if pointy:
        x, y = y, x
    qf = x * kq
    rf = y * ky - x * kx
    sf = -qf - rf
    q, r, s = ops.rint(qf), ops.rint(rf), ops.rint(sf)
    dq, dr, ds = ops.abs(q - qf), ops.abs(r - rf), ops.abs(s - sf)
    fix_q = (dq > dr) & (dq > ds)
    fix_r = ~fix_q & (dr > ds)
    q = ops.where(fix_q, -r - s, q)
    r = ops.where(fix_r, -q - s, r)
    return ops.to_int(q), ops.to_int(r)


def hex_centre(q: np.ndarray, r: np.ndarray, pitch_mm: float, *, pointy: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """float64 centre of axial cells (q, r) relative to the centre of cell (0, 0)."""
    a = q * (_SQRT3 / 2.0) * pitch_mm
    b = (r + q / 2.0) * pitch_mm
    return (b, a) if pointy else (a, b)


def hex_lattice(
    *,
    pitch_mm: float,
    layer_z_mm: Sequence[float],
    pointy: bool = False,
    origin_mm: tuple[float, float] = (0.0, 0.0),
    half_extent_mm: float = DEFAULT_HALF_EXTENT_MM,
    name: str | None = None,
) -> Geometry:
    """A hexagonal-lattice geometry, identical in every layer.

    Args:
        pitch_mm: flat-to-flat distance of the hexagons (= distance between neighbouring centres).
        layer_z_mm: depth of each layer (mm); its length is the number of layers.
        pointy: pointy-top (vertices on +-y) instead of flat-top (vertices on +-x).
        origin_mm: centre of cell (0, 0).
        half_extent_mm: keep cells whose centre lies in |x - x0|, |y - y0| <= half_extent_mm.
        name: geometry name (default ``hex:PITCH``).
    """
    if not pitch_mm > 0 or not half_extent_mm > 0:
        msg = f"hex_lattice needs pitch_mm > 0 and half_extent_mm > 0, got {pitch_mm}, {half_extent_mm}"
        raise ProjectionError(msg)
    z = np.asarray(layer_z_mm, dtype=np.float64)
    n_q = int(math.ceil(half_extent_mm / (_SQRT3 / 2 * pitch_mm))) + 1
    n_r = int(math.ceil(half_extent_mm / pitch_mm + n_q / 2)) + 1
    q, r = np.meshgrid(np.arange(-n_q, n_q + 1), np.arange(-n_r, n_r + 1), indexing="ij")
    cx, cy = hex_centre(q.ravel(), r.ravel(), pitch_mm, pointy=pointy)
    inside = (np.abs(cx) <= half_extent_mm) & (np.abs(cy) <= half_extent_mm)
    lut = np.full(q.size, -1, dtype=np.int64)
    lut[inside] = np.arange(int(inside.sum()))
    per_layer = int(inside.sum())
    n_layers = len(z)
    tables = {
        "pitch_mm": np.float64(pitch_mm),
        "pointy": np.int64(pointy),
        "origin_mm": np.asarray(origin_mm, dtype=np.float32),
        "qr_min": np.array([-n_q, -n_r], dtype=np.int64),
        "lut": lut.reshape(q.shape),
        "cells_per_layer": np.int64(per_layer),
    }
    return Geometry(
        name=name or f"hex:{pitch_mm:g}{':pointy' if pointy else ''}",
        kind="hex_lattice",
        layer_z_mm=z,
        cell_layer=np.repeat(np.arange(n_layers), per_layer),
        cell_x_mm=np.tile(cx[inside] + origin_mm[0], n_layers),
        cell_y_mm=np.tile(cy[inside] + origin_mm[1], n_layers),
        cell_size_mm=np.full(n_layers * per_layer, pitch_mm, dtype=np.float32),
        cell_shape="hex_pointy" if pointy else "hex_flat",
        tables=tables,
    )


MIN_SPEC_PITCH_MM = 0.55  # hex:PITCH specs finer than this exceed ~2e7 cells (hex:5 has 227,370)


def hex_geometry_from_spec(spec: str, *, detector: DetectorConfig) -> Geometry:
    """Parse ``hex:PITCH_MM`` or ``hex:PITCH_MM:flat|pointy`` into :func:`hex_lattice` on the layers of ``detector``."""
    parts = spec.split(":")
    orientation = parts[2] if len(parts) == 3 else "flat"
    try:
        pitch = float(parts[1])
    except (IndexError, ValueError):
        pitch = float("nan")
    if len(parts) not in (2, 3) or not 0 < pitch < float("inf") or orientation not in ("flat", "pointy"):
        msg = f"bad hexagonal geometry {spec!r}; expected hex:PITCH_MM or hex:PITCH_MM:flat|pointy with PITCH_MM > 0"
        raise ProjectionError(msg)
    if pitch < MIN_SPEC_PITCH_MM:
        msg = f"bad hexagonal geometry {spec!r}: pitch below {MIN_SPEC_PITCH_MM} mm would need more than 2e7 cells"
        raise ProjectionError(msg)
    return hex_lattice(pitch_mm=pitch, pointy=orientation == "pointy", layer_z_mm=detector.layer_centre_z_mm)


def assign(tables: dict[str, Any], layer: Any, x: Any, y: Any) -> Any:
    """Cell id of each point (numpy or torch), -1 outside the covered cells."""
    ops = ops_for(x)
    kq, kx, ky = (ops.f32(float(k), x) for k in hex_constants(float(tables["pitch_mm"])))
    origin = tables["origin_mm"]
    q, r = hex_round(x - origin[0], y - origin[1], kq, kx, ky, pointy=bool(int(tables["pointy"])))
    lut = tables["lut"]
    n_q, n_r = lut.shape
    iq = q - int(tables["qr_min"][0])
    ir = r - int(tables["qr_min"][1])
    inside = (iq >= 0) & (iq < n_q) & (ir >= 0) & (ir < n_r)
    idx = lut.reshape(-1)[ops.clip(iq, 0, n_q - 1) * n_r + ops.clip(ir, 0, n_r - 1)]
    ok = inside & (idx >= 0)
    return ops.where(ok, layer * int(tables["cells_per_layer"]) + idx, -1)
