"""Where each shower's axis hits the cells of the evaluation: the impact position.

A real photon hits a cell anywhere, so ``caloclouds evaluate`` projects every shower with its own
impact position (``--impact random``, the default). The positions are taken relative to one
**reference cell**: the cell of the geometry's first layer whose centre is nearest to x = y = 0
(for the ILD grid the cell whose corner sits at the origin, for ``hex:P`` the hexagon centred on
it, for ``hgcal`` the cell at its centre). Modes:

* ``random``: uniform within the reference cell (a square of side ``cell_size_mm``, or a hexagon
  of flat-to-flat width ``cell_size_mm``, flat- or pointy-top as the geometry), one draw per shower;
* ``corner``: the vertex of the reference cell nearest to x = y = 0; for the ILD grid exactly
  x = y = 0, where four cells meet (the alignment of the evaluation before the random mode);
* ``centre``: the centre of the reference cell.

``corner`` and ``centre`` positions are rounded to 1e-6 mm (the cell table is float32, so the
ILD corner is 0, not a few 1e-7 mm). Each sample draws from its own stream of the evaluation seed
(:func:`impact_rng`), so the reference, the floor and every model get independent positions.

The shower is moved, not the cells: each point's x, y gets its shower's offset before the
projection (:func:`shifted`), and the observables are then measured from the shower axis (the
cell centres minus the offset), so radii and the centre of gravity stay relative to the axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from caloclouds.showers import Showers

__all__ = [
    "IMPACT_MODES",
    "ReferenceCell",
    "reference_cell",
    "cell_vertices_mm",
    "inside_cell",
    "impact_offsets",
    "impact_rng",
    "shifted",
]

#: The impact modes of one evaluation (``--impact all`` scores all three).
IMPACT_MODES: tuple[str, ...] = ("random", "corner", "centre")
_SQRT3 = float(np.sqrt(3.0))
_CORNER_DECIMALS = 6  # float32 noise of the cell table removed from corner and centre positions


@dataclass(frozen=True)
class ReferenceCell:
    """The cell the impact positions are drawn in.

    Attributes:
        centre_mm: (x, y) of its centre in the geometry's local frame.
        size_mm: square side, or hexagon flat-to-flat width.
        shape: ``"square"``, ``"hex_flat"`` (vertices on +-x) or ``"hex_pointy"`` (vertices on +-y).
    """

    centre_mm: tuple[float, float]
    size_mm: float
    shape: str


def reference_cell(geometry: Any) -> ReferenceCell:
    """The cell of the first layer whose centre is nearest to x = y = 0 (first of equals).

    Args:
        geometry: a ``projection.Geometry`` (its ``cell_*`` arrays and ``cell_shape``).

    Raises:
        ValueError: a cell shape other than square or flat/pointy hexagon.
    """
    if geometry.cell_shape not in ("square", "hex_flat", "hex_pointy"):
        msg = f"impact positions need square or hexagonal cells, geometry {geometry.name!r} has {geometry.cell_shape!r}"
        raise ValueError(msg)
    layer = np.asarray(geometry.cell_layer)
    first = np.flatnonzero(layer == layer.min())
    x = np.asarray(geometry.cell_x_mm, dtype=np.float64)[first]
    y = np.asarray(geometry.cell_y_mm, dtype=np.float64)[first]
    i = int(np.argmin(np.hypot(x, y)))
    size = float(np.asarray(geometry.cell_size_mm, dtype=np.float64)[first[i]])
    return ReferenceCell(centre_mm=(float(x[i]), float(y[i])), size_mm=size, shape=str(geometry.cell_shape))


def cell_vertices_mm(cell: ReferenceCell) -> np.ndarray:
    """(K, 2) vertices of the cell (4 for a square, 6 for a hexagon), counter-clockwise."""
    if cell.shape == "square":
        half = cell.size_mm / 2.0
        rel = np.array([[half, half], [-half, half], [-half, -half], [half, -half]])
    else:
        circumradius = cell.size_mm / _SQRT3
        angle = np.radians(60.0 * np.arange(6) + (90.0 if cell.shape == "hex_pointy" else 0.0))
        rel = circumradius * np.column_stack([np.cos(angle), np.sin(angle)])
    return rel + np.asarray(cell.centre_mm)


def inside_cell(cell: ReferenceCell, dx_mm: np.ndarray, dy_mm: np.ndarray) -> np.ndarray:
    """Whether points (dx, dy) relative to the cell centre lie in the cell (boundary included)."""
    ax, ay = np.abs(dx_mm), np.abs(dy_mm)
    half = cell.size_mm / 2.0
    if cell.shape == "square":
        return (ax <= half) & (ay <= half)
    if cell.shape == "hex_pointy":
        ax, ay = ay, ax
    # flat-top hexagon of flat-to-flat width p: |y| <= p / 2 and sqrt(3) |x| + |y| <= p
    return (ay <= half) & (_SQRT3 * ax + ay <= cell.size_mm)


def _uniform_in_cell(cell: ReferenceCell, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 2) points uniform in the cell, relative to its centre (hexagons: rejection from the box)."""
    half = cell.size_mm / 2.0
    if cell.shape == "square":
        return rng.uniform(-half, half, size=(n, 2))
    circumradius = cell.size_mm / _SQRT3
    box = np.array([circumradius, half]) if cell.shape == "hex_flat" else np.array([half, circumradius])
    out = np.empty((0, 2))
    while len(out) < n:  # acceptance 3/4: one or two rounds of whole arrays
        draw = rng.uniform(-1.0, 1.0, size=(2 * n + 16, 2)) * box
        out = np.concatenate([out, draw[inside_cell(cell, draw[:, 0], draw[:, 1])]])
    return out[:n]


def impact_offsets(cell: ReferenceCell, mode: str, n: int, *, rng: np.random.Generator) -> np.ndarray:
    """(n, 2) float64 impact positions (mm) of n showers in the given mode.

    Args:
        cell: the reference cell (:func:`reference_cell`).
        mode: ``"random"``, ``"corner"`` or ``"centre"``.
        n: number of showers.
        rng: the sample's generator (:func:`impact_rng`); used only by ``random``.

    Raises:
        ValueError: an unknown mode.
    """
    centre = np.asarray(cell.centre_mm, dtype=np.float64)
    if mode == "random":
        return centre + _uniform_in_cell(cell, n, rng)
    if mode == "centre":
        point = centre
    elif mode == "corner":
        vertices = cell_vertices_mm(cell)
        point = vertices[int(np.argmin(np.hypot(vertices[:, 0], vertices[:, 1])))]
    else:
        raise ValueError(f"impact mode must be one of {', '.join(IMPACT_MODES)}, got {mode!r}")
    point = np.round(point, _CORNER_DECIMALS) + 0.0  # + 0.0: no -0.0
    return np.broadcast_to(point, (n, 2)).copy()


def impact_rng(seed: int, stream: int) -> np.random.Generator:
    """The generator of one sample's impact positions: stream 0 the reference, 1 the floor
    reference, 2 + k the k-th generated sample."""
    return np.random.default_rng([int(seed), 7919, int(stream)])


def shifted(showers: Showers, offsets_mm: np.ndarray) -> Showers:
    """A copy of ``showers`` with every point's x, y moved by its shower's (dx, dy) (float32).

    An all-zero offset returns ``showers`` itself (nothing to move).
    """
    offsets_mm = np.asarray(offsets_mm, dtype=np.float64)
    if offsets_mm.shape != (len(showers), 2):
        raise ValueError(f"need ({len(showers)}, 2) offsets, got {offsets_mm.shape}")
    if not offsets_mm.any():
        return showers
    points = showers.points.copy()
    per_point = np.repeat(offsets_mm.astype(np.float32), np.diff(showers.offsets), axis=0)
    points[:, :2] += per_point
    return Showers(points, showers.offsets.copy(), showers.incident_energy_gev.copy(), dict(showers.conditions))
