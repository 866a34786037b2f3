"""Arbitrary cells given by their centres: each point goes to the nearest centre of its layer.

The cell of a centre is its Voronoi region, found with one ``scipy.spatial.cKDTree`` per layer
(built at assignment time; the loop runs over layers, never over points). An optional
``max_distance_mm`` bounds the acceptance: points farther than that from every centre are lost.
On a regular lattice the Voronoi cell is the lattice cell itself; between cells of different sizes
(e.g. HGCal high- and low-density wafers) it is biased towards the smaller cells, so prefer the
exact geometry where one exists.

The torch path runs the same KD-tree on the CPU (the result is identical to numpy) and moves the
cell ids back to the points' device.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from projection.geometry import Geometry

__all__ = ["voronoi_cells", "assign", "REQUIRED_TABLES"]

REQUIRED_TABLES = ("max_distance_mm",)
BLOCKABLE = False  # the KD-trees are built per call: assign all points at once


def voronoi_cells(
    *,
    layer: Sequence[int] | np.ndarray,
    x_mm: Sequence[float] | np.ndarray,
    y_mm: Sequence[float] | np.ndarray,
    layer_z_mm: Sequence[float] | np.ndarray,
    cell_size_mm: float | np.ndarray = 0.0,
    max_distance_mm: float = np.inf,
    name: str = "voronoi",
) -> Geometry:
    """A geometry from cell centres (cells are sorted layer-major; ``cell_id`` is the sorted index).

    Args:
        layer: (C,) layer of each cell.
        x_mm, y_mm: (C,) cell centres (mm).
        layer_z_mm: (L,) depth of each layer (mm).
        cell_size_mm: nominal cell size, used only for drawing (scalar or (C,)).
        max_distance_mm: points farther than this from every centre of their layer are lost.
        name: geometry name.
    """
    layer = np.asarray(layer, dtype=np.int64)
    order = np.argsort(layer, kind="stable")
    size = np.broadcast_to(np.asarray(cell_size_mm, dtype=np.float32), layer.shape)
    return Geometry(
        name=name,
        kind="voronoi",
        layer_z_mm=np.asarray(layer_z_mm, dtype=np.float64),
        cell_layer=layer[order],
        cell_x_mm=np.asarray(x_mm, dtype=np.float32)[order],
        cell_y_mm=np.asarray(y_mm, dtype=np.float32)[order],
        cell_size_mm=size[order],
        cell_shape="point",
        tables={"max_distance_mm": np.float64(max_distance_mm)},
    )


def assign(tables: dict[str, Any], layer: Any, x: Any, y: Any) -> Any:
    """Cell id of each point: the nearest centre of its layer (-1 beyond ``max_distance_mm``)."""
    from scipy.spatial import cKDTree

    if not isinstance(x, np.ndarray):
        import torch

        cell = assign(
            {k: (v.cpu().numpy() if hasattr(v, "cpu") else v) for k, v in tables.items()},
            layer.cpu().numpy(),
            x.cpu().numpy(),
            y.cpu().numpy(),
        )
        return torch.as_tensor(cell, device=x.device)
    cell_layer = tables["cell_layer"]
    cx = tables["cell_x_mm"].astype(np.float64)
    cy = tables["cell_y_mm"].astype(np.float64)
    n_layers = int(cell_layer.max()) + 1 if len(cell_layer) else 0
    starts = np.searchsorted(cell_layer, np.arange(n_layers + 1))
    order = np.argsort(layer, kind="stable")
    bounds = np.searchsorted(layer[order], np.arange(n_layers + 1))
    out = np.full(len(x), -1, dtype=np.int64)
    limit = float(tables["max_distance_mm"])
    for lay in range(n_layers):
        a, b = starts[lay], starts[lay + 1]
        rows = order[bounds[lay] : bounds[lay + 1]]
        if a == b or len(rows) == 0:
            continue
        tree = cKDTree(np.column_stack([cx[a:b], cy[a:b]]))
        dist, idx = tree.query(np.column_stack([x[rows], y[rows]]).astype(np.float64), k=1)
        out[rows] = np.where(dist <= limit, idx + a, -1)
    return out
