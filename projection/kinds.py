"""The cell-assignment rule of each geometry kind: one plain table, built when this module is imported.

``KINDS[kind]`` is a :class:`CellKind` with the rule ``assign(tables, layer, x, y) -> cell`` (numpy
or torch, -1 outside every cell), the tables a geometry of that kind must carry, and whether the
rule may run on blocks of points. The kind modules import :mod:`projection.geometry` and nothing
here, so the table imports them directly (no lazy lookups, no cycle).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from projection import hexgrid, hgcal, ildreal, square, voronoi
from projection.errors import ProjectionError

__all__ = ["CellKind", "KINDS", "cell_kind"]


@dataclass(frozen=True)
class CellKind:
    """One geometry kind."""

    assign: Callable[..., Any]  # assign(tables, layer, x, y) -> cell id, -1 = no cell.
    required_tables: tuple[str, ...]  # Keys of Geometry.tables this rule reads.
    blockable: bool = True  # False: per-call set-up (KD-trees), assign all points at once.


KINDS: dict[str, CellKind] = {
    "square_grid": CellKind(square.assign, square.REQUIRED_TABLES),
    "square_cells": CellKind(ildreal.assign, ildreal.REQUIRED_TABLES),
    "hex_lattice": CellKind(hexgrid.assign, hexgrid.REQUIRED_TABLES),
    "hgcal": CellKind(hgcal.assign, hgcal.REQUIRED_TABLES),
    "voronoi": CellKind(voronoi.assign, voronoi.REQUIRED_TABLES, blockable=voronoi.BLOCKABLE),
}


def cell_kind(kind: str) -> CellKind:
    """The rule of ``kind``; a ProjectionError lists the valid kinds."""
    if kind not in KINDS:
        raise ProjectionError(f"unknown geometry kind {kind!r}; valid kinds: {sorted(KINDS)}")
    return KINDS[kind]
