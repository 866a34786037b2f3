"""Regular square grids, optionally with gaps every N cells and per-layer staggering.

Cell edges along x lie at ``shift_x[l] + b * period + k * pitch`` for block ``b`` and cell ``k``
of the block (``period = gap_every * pitch + gap_mm``; without gaps simply ``shift_x[l] + i * pitch``),
and likewise along y. A point between the last cell of a block and the next block is in a gap: its
energy is booked as lost. ``ild`` is this grid with pitch 5.088333 mm, no gaps, no staggering and
edges at multiples of the pitch from x = y = 0 (80 x 80 cells, +-203.5 mm, 30 layers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from caloclouds.config import DetectorConfig
from projection._ops import ops_for
from projection.geometry import Geometry

__all__ = ["square_grid", "ild_grid", "square_geometry_from_spec", "assign", "REQUIRED_TABLES", "ILD_CELLS_PER_SIDE"]

REQUIRED_TABLES = ("pitch_mm", "n_cells", "first_index", "shift_x_mm", "shift_y_mm", "gap_every", "gap_mm")
ILD_HALF_WIDTH_MM = 200.0  # the Geant4 calorimeter is 40 x 40 cm
ILD_CELLS_PER_SIDE = 80  # 80 x 80 cells of 5.088 mm cover +-203.5 mm, the 40 x 40 cm Geant4 calorimeter.


def square_grid(
    *,
    pitch_mm: float,
    layer_z_mm: Sequence[float],
    n_cells: int | tuple[int, int] = ILD_CELLS_PER_SIDE,
    offset_mm: tuple[float, float] = (0.0, 0.0),
    gap_every: int = 0,
    gap_mm: float = 0.0,
    stagger_mm: np.ndarray | None = None,
    name: str = "square",
) -> Geometry:
    """A square grid geometry.

    Args:
        pitch_mm: cell side (mm).
        layer_z_mm: depth of each layer (mm); its length is the number of layers.
        n_cells: cells per side (or (n_x, n_y)); cell indices run from ``-n // 2`` to ``n - n // 2 - 1``,
            so with no offset and no gaps the grid is centred on x = y = 0.
        offset_mm: (x, y) position of the edge of cell index 0.
        gap_every: put a gap after every ``gap_every`` cells (0 = no gaps), e.g. wafer boundaries.
        gap_mm: width of each gap (mm).
        stagger_mm: optional (L, 2) per-layer shift of the grid (mm).
        name: geometry name.

    Returns:
        The geometry (kind ``"square_grid"``, cell shape ``"square"``).
    """
    z = np.asarray(layer_z_mm, dtype=np.float64)
    n_layers = len(z)
    n_x, n_y = (n_cells, n_cells) if isinstance(n_cells, int) else n_cells
    if pitch_mm <= 0 or n_x < 1 or n_y < 1:
        msg = f"square_grid needs pitch_mm > 0 and n_cells >= 1, got pitch_mm={pitch_mm}, n_cells={n_cells}"
        raise ValueError(msg)
    if gap_every < 0 or gap_mm < 0 or (gap_every == 0 and gap_mm != 0):
        msg = f"gap_every must be >= 0 and gap_mm >= 0 (gap_mm needs gap_every > 0), got {gap_every}, {gap_mm}"
        raise ValueError(msg)
    stagger = np.zeros((n_layers, 2)) if stagger_mm is None else np.asarray(stagger_mm, dtype=np.float64)
    if stagger.shape != (n_layers, 2):
        msg = f"stagger_mm must have shape ({n_layers}, 2), got {stagger.shape}"
        raise ValueError(msg)
    first = np.array([-(n_x // 2), -(n_y // 2)], dtype=np.int64)
    tables = {
        "pitch_mm": np.float32(pitch_mm),
        "n_cells": np.array([n_x, n_y], dtype=np.int64),
        "first_index": first,
        "shift_x_mm": (offset_mm[0] + stagger[:, 0]).astype(np.float32),
        "shift_y_mm": (offset_mm[1] + stagger[:, 1]).astype(np.float32),
        "gap_every": np.int64(gap_every),
        "gap_mm": np.float32(gap_mm),
    }
    # cell table, layer-major then x then y
    ix = np.arange(n_x, dtype=np.int64) + first[0]
    iy = np.arange(n_y, dtype=np.int64) + first[1]
    cx = _cell_centre(ix, tables)[None, :] + tables["shift_x_mm"][:, None].astype(np.float64)
    cy = _cell_centre(iy, tables)[None, :] + tables["shift_y_mm"][:, None].astype(np.float64)
    cell_x = np.broadcast_to(cx[:, :, None], (n_layers, n_x, n_y))
    cell_y = np.broadcast_to(cy[:, None, :], (n_layers, n_x, n_y))
    return Geometry(
        name=name,
        kind="square_grid",
        layer_z_mm=z,
        cell_layer=np.repeat(np.arange(n_layers), n_x * n_y),
        cell_x_mm=cell_x.reshape(-1),
        cell_y_mm=cell_y.reshape(-1),
        cell_size_mm=np.full(n_layers * n_x * n_y, pitch_mm, dtype=np.float32),
        cell_shape="square",
        tables=tables,
    )


def ild_grid(detector: DetectorConfig) -> Geometry:
    """The ``ild`` geometry: the square readout grid of ``detector`` (its cell pitch and layers)."""
    return square_grid(pitch_mm=detector.cell_pitch_mm, layer_z_mm=detector.layer_centre_z_mm, name="ild")


MAX_SPEC_CELLS = 20_000_000  # square:PITCH specs with more cells than this are refused (memory)


def square_geometry_from_spec(spec: str, *, detector: DetectorConfig) -> Geometry:
    """Parse ``square:PITCH_MM`` or ``square:PITCH_MM:EVERY:GAP_MM`` (the layers of ``detector``, 40 x 40 cm)."""
    from projection.errors import ProjectionError

    parts = spec.split(":")
    try:
        pitch = float(parts[1])
        every, gap = (int(parts[2]), float(parts[3])) if len(parts) == 4 else (0, 0.0)
        finite = math.isfinite(pitch) and math.isfinite(gap)
        if len(parts) not in (2, 4) or not finite or not pitch > 0 or gap < 0 or (len(parts) == 4 and every < 1):
            raise ValueError
    except (IndexError, ValueError):
        msg = (
            f"bad square geometry {spec!r}; expected square:PITCH_MM or square:PITCH_MM:EVERY:GAP_MM "
            "with PITCH_MM > 0, EVERY >= 1 cells and GAP_MM >= 0"
        )
        raise ProjectionError(msg) from None
    n_cells = (2 * math.ceil(ILD_HALF_WIDTH_MM / pitch)) ** 2 * detector.n_layers
    if n_cells > MAX_SPEC_CELLS:
        raise ProjectionError(
            f"bad square geometry {spec!r}: a pitch of {pitch:g} mm gives {n_cells:.3g} cells, more than {MAX_SPEC_CELLS:.0e}"
        )
    period = pitch + (gap / every if every else 0.0)
    n = 2 * math.ceil(ILD_HALF_WIDTH_MM / period)
    return square_grid(
        pitch_mm=pitch, layer_z_mm=detector.layer_centre_z_mm, n_cells=n, gap_every=every, gap_mm=gap, name=spec
    )


def _cell_centre(index: np.ndarray, tables: dict[str, np.ndarray]) -> np.ndarray:
    """Centre (mm, relative to the layer shift) of cells with absolute index ``index``."""
    pitch = float(tables["pitch_mm"])
    every = int(tables["gap_every"])
    if every == 0:
        return (index + 0.5) * pitch
    period = every * pitch + float(tables["gap_mm"])
    block, k = np.divmod(index, every)
    return block * period + (k + 0.5) * pitch


def _axis_index(u: Any, shift: Any, first: int, n: int, tables: dict[str, Any], ops: Any) -> tuple[Any, Any]:
    """Cell index along one axis (0 .. n-1) and a mask of points inside the grid and not in a gap."""
    every = int(tables["gap_every"])
    pitch = ops.f32(float(tables["pitch_mm"]), u)
    if shift is not None:
        u = u - shift
    if every == 0:
        f = ops.floor(u / pitch)
        ok = (f >= first) & (f < first + n)
        return ops.to_int(f) - first, ok
    period = ops.f32(every * float(tables["pitch_mm"]) + float(tables["gap_mm"]), u)
    block = ops.floor(u / period)
    k = ops.clip(ops.floor_int((u - block * period) / pitch), 0, every)
    i = ops.to_int(block) * every + k - first
    return i, (i >= 0) & (i < n) & (k < every)


def _layer_shift(shift: Any, layer: Any) -> Any:
    """Per-point shift, or None when every layer has the same shift of 0 (the common case)."""
    values = np.asarray(shift.cpu() if hasattr(shift, "cpu") else shift)
    if np.all(values == 0):
        return None
    if np.all(values == values[0]):
        return shift[0]
    return shift[layer]


def assign(tables: dict[str, Any], layer: Any, x: Any, y: Any) -> Any:
    """Cell id of each point (numpy or torch), -1 outside the grid or in a gap.

    Args:
        tables: the geometry's tables (numpy arrays, or tensors from ``Geometry.torch_tables``).
        layer: (P,) int64 detector layer, all in range.
        x: (P,) float32 x (mm, local frame of the geometry).
        y: (P,) float32 y (mm).
    """
    ops = ops_for(x)
    n_x, n_y = int(tables["n_cells"][0]), int(tables["n_cells"][1])
    first_x, first_y = int(tables["first_index"][0]), int(tables["first_index"][1])
    i, ok_x = _axis_index(x, _layer_shift(tables["shift_x_mm"], layer), first_x, n_x, tables, ops)
    j, ok_y = _axis_index(y, _layer_shift(tables["shift_y_mm"], layer), first_y, n_y, tables, ops)
    cell = (layer * n_x + i) * n_y + j
    return ops.where(ok_x & ok_y, cell, -1)
