"""Project ragged point-cloud showers onto the cells of a geometry (numpy and torch).

One call bins a whole batch: place every point (:mod:`projection.placement`), assign it to a cell
with the exact rule of the geometry's kind, then sum energies per (shower, cell)
(:mod:`projection.binning`). Energy is conserved: for each shower,
``sum(hits.e_mev) + hits.lost_mev + hits.below_threshold_mev`` equals the input energy.

The threshold is applied after summing: cells with ``E < threshold`` are removed and their energy
goes to ``below_threshold_mev``. Give it in MeV (``threshold_mev``) or in MIPs (``threshold_mip``
times ``mip_mev``, the detector's :attr:`caloclouds.config.DetectorConfig.mip_mev`: 0.147 MeV,
measured in 500 um of silicon, for :data:`caloclouds.config.ILD_LIKE_DETECTOR`). Pipelines pass
their detector's ``n_layers`` and ``mip_mev``; the defaults are the ILD-like detector's. A geometry whose cells have their own silicon thickness (HGCal: 120, 200,
300 um, ``extras["silicon_thickness_um"]``) gets a MIP threshold per cell, the MIP scaled to the
cell's thickness (:mod:`projection.mip`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from caloclouds.config import ILD_LIKE_DETECTOR
from caloclouds.showers import Showers
from projection._ops import ops_for
from projection.cells import CellHits
from projection.errors import ProjectionError
from projection.geometry import Geometry
from projection.mip import REFERENCE_THICKNESS_UM, THICKNESS_EXTRA, landau_mpv_mev
from projection.placement import check_points, place_xy, resolve_layer_map
from projection.kinds import KINDS

__all__ = ["project", "project_torch", "TorchPoints", "resolve_threshold_mev", "cell_mip_scale", "BLOCK_POINTS"]

BLOCK_POINTS = 1 << 16  # points per cache block of the numpy assignment (temporaries ~256 kB each)


def resolve_threshold_mev(threshold_mev: float | None, threshold_mip: float | None, mip_mev: float) -> float | None:
    """The cell threshold in MeV from either a MeV or a MIP value (not both)."""
    if threshold_mev is not None and threshold_mip is not None:
        msg = f"give threshold_mev ({threshold_mev}) or threshold_mip ({threshold_mip}), not both"
        raise ProjectionError(msg)
    if threshold_mip is not None:
        if mip_mev <= 0:
            raise ProjectionError(f"mip_mev must be > 0, got {mip_mev}")
        threshold_mev = threshold_mip * mip_mev
    if threshold_mev is not None and not threshold_mev >= 0:
        raise ProjectionError(f"the cell threshold must be >= 0 MeV, got {threshold_mev}")
    return threshold_mev


def cell_mip_scale(geometry: Geometry) -> np.ndarray | None:
    """(C,) MIP of each cell relative to 500 um of silicon, or None if the geometry has one thickness."""
    thickness = geometry.extras.get(THICKNESS_EXTRA)
    if thickness is None:
        return None
    return (landau_mpv_mev(thickness) / landau_mpv_mev(REFERENCE_THICKNESS_UM)).astype(np.float64)


def _layer_map(geometry: Geometry, layer_map: Any, n_shower_layers: int) -> np.ndarray:
    return resolve_layer_map(
        geometry.default_layer_map if layer_map is None else layer_map,
        n_shower_layers=n_shower_layers,
        n_detector_layers=geometry.n_layers,
    )


def _keys(
    points: Any,
    shower_layer: Any,
    shower: Any,
    lmap: np.ndarray,
    geometry: Geometry,
    tables: dict[str, Any],
    ops: Any,
    impact_mm: tuple[float, float],
    rotation_rad: float,
    block_points: int,
) -> Any:
    """Key ``shower * (C + 1) + cell + 1`` of every point (0 + shower * (C + 1) when lost)."""
    n_points, n_cells = len(points), geometry.n_cells
    identity = np.array_equal(lmap, np.arange(len(lmap)))
    detector_layer = ops.asarray(lmap, like=points)
    kind = KINDS[geometry.kind]
    assign = kind.assign
    block = block_points if block_points > 0 and kind.blockable and ops.blockable else max(n_points, 1)
    keys = ops.empty_int(n_points, like=points) if block < n_points else None
    for start in range(0, n_points, block):  # cache blocking: whole vectorised blocks, not points
        rows = slice(start, start + block)
        det_layer = shower_layer[rows] if identity else detector_layer[shower_layer[rows]]
        x, y = ops.contiguous(points[rows, 0]), ops.contiguous(points[rows, 1])
        x, y = place_xy(x, y, impact_mm=impact_mm, rotation_rad=rotation_rad)
        if bool((det_layer >= 0).all()):
            cell = assign(tables, det_layer, x, y)
        else:
            cell = ops.full_int(len(x), -1, like=points)
            keep = ops.nonzero(det_layer >= 0)
            cell[keep] = assign(tables, det_layer[keep], x[keep], y[keep])
        block_keys = shower[rows] * (n_cells + 1) + (cell + 1)
        if keys is None:
            return block_keys
        keys[rows] = block_keys
    return keys if keys is not None else ops.empty_int(0, like=points)


def project(
    showers: Showers | TorchPoints,
    geometry: Geometry,
    *,
    impact_mm: tuple[float, float] = (0.0, 0.0),
    rotation_rad: float = 0.0,
    layer_map: str | Sequence[int] | None = None,
    threshold_mev: float | None = None,
    threshold_mip: float | None = None,
    mip_mev: float = ILD_LIKE_DETECTOR.mip_mev,
    n_shower_layers: int = ILD_LIKE_DETECTOR.n_layers,
    block_points: int = BLOCK_POINTS,
) -> CellHits:
    """Bin a batch of showers into the cells of ``geometry`` (one call, no loop over showers).

    The same steps for numpy and torch (:mod:`projection._ops`); :func:`project_torch` is the
    entry for tensors.

    Args:
        showers: the showers; the ``layer`` column holds integer shower layers.
        geometry: the readout geometry (:func:`projection.get_geometry`).
        impact_mm: where the shower axis hits the geometry's local frame (mm).
        rotation_rad: counter-clockwise rotation of the shower about its axis, applied first.
        layer_map: shower layer -> detector layer (see :mod:`projection.placement`);
            None = the geometry's default.
        threshold_mev: remove cells below this energy (MeV) after summing.
        threshold_mip: the same in MIP units (times ``mip_mev``); exclusive with ``threshold_mev``.
        mip_mev: the MIP energy for ``threshold_mip`` (MeV): the detector's ``mip_mev``.
        n_shower_layers: number of layers of the showers' detector (its ``n_layers``; 30 for the ILD-like data).
        block_points: the element-wise placement and cell assignment run on blocks of this many
            points, so that their temporaries stay in the CPU cache (about 1.8x faster than
            whole-array temporaries); each block is fully vectorised. 0 = one block.

    Returns:
        The per-shower cell hits.

    Raises:
        ProjectionError: NaN/inf points, layers that are not integers in range, a bad layer map or threshold.
    """
    points, offsets = showers.points, showers.offsets
    ops = ops_for(points)
    threshold = resolve_threshold_mev(threshold_mev, threshold_mip, mip_mev)
    shower_layer = check_points(points, offsets, n_shower_layers=n_shower_layers)
    lmap = _layer_map(geometry, layer_map, n_shower_layers)
    tables = ops.tables(geometry, like=points)
    n_showers, n_cells = len(offsets) - 1, geometry.n_cells
    shower = ops.shower_index(offsets)
    keys = _keys(points, shower_layer, shower, lmap, geometry, tables, ops, impact_mm, rotation_rad, block_points)
    keys, sums = ops.segment_sums(keys, ops.contiguous(points[:, 3]))
    hit_shower, hit_cell = ops.divmod(keys, n_cells + 1)
    hit_cell = hit_cell - 1
    lost = hit_cell < 0
    lost_mev = ops.sum_per(hit_shower[lost], sums[lost], n_showers)
    keep = ~lost
    below = ops.zeros_f64(n_showers, like=sums)
    if threshold is not None:
        scale = cell_mip_scale(geometry) if threshold_mip is not None else None
        cut: Any = threshold
        if scale is not None:  # the MIP of each hit cell's silicon
            cut = threshold * ops.take(ops.asarray(scale, like=sums), ops.clip(hit_cell, 0, n_cells - 1))
        low = keep & (sums < cut)
        below = ops.sum_per(hit_shower[low], sums[low], n_showers)
        keep = keep & ~low
    hit_shower, hit_cell, e = hit_shower[keep], hit_cell[keep], sums[keep]
    layer = ops.take(tables["cell_layer"], hit_cell)
    return CellHits(
        offsets=ops.offsets_of(hit_shower, n_showers),
        cell_id=hit_cell,
        layer=layer,
        x_mm=ops.take(tables["cell_x_mm"], hit_cell),
        y_mm=ops.take(tables["cell_y_mm"], hit_cell),
        z_mm=ops.to_f32(ops.take(tables["layer_z_mm"], layer)),
        e_mev=ops.to_f32(e),
        lost_mev=lost_mev,
        below_threshold_mev=below,
    )


class TorchPoints(NamedTuple):
    """A ragged batch as tensors, for :func:`project`: (P, 4) float32 ``points``, (N+1,) int64 ``offsets``."""

    points: Any
    offsets: Any


def project_torch(points: Any, offsets: Any, geometry: Geometry, **options: Any) -> CellHits:
    """:func:`project` on the device of ``points`` (CUDA when given CUDA tensors).

    Args:
        points: (P, 4) tensor ``x_mm, y_mm, layer, e_MeV`` (made float32).
        offsets: (N+1,) tensor (made int64, on the device of ``points``).
        geometry: as for :func:`project`.
        options: the keyword options of :func:`project` (``impact_mm``, ``rotation_rad``,
            ``layer_map``, ``threshold_mev``, ``threshold_mip``, ``mip_mev``, ``n_shower_layers``);
            no ``block_points``: all points go in one launch.

    Returns:
        CellHits whose fields are tensors on the same device (``.numpy()`` converts). Cell ids and
        layers are identical to :func:`project`; energies agree to float64 rounding of the sums.
    """
    import torch

    if "block_points" in options:
        raise TypeError("project_torch() takes no block_points: all points go in one launch")
    points = points.to(torch.float32)
    offsets = offsets.to(device=points.device, dtype=torch.int64)
    return project(TorchPoints(points, offsets), geometry, **options, block_points=0)
