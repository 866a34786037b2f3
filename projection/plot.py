"""Draw one shower layer by layer on the real cell shapes (squares, hexagons), coloured by energy.

matplotlib is imported inside :func:`plot_shower` (optional dependency).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from projection.cells import CellHits
from projection.geometry import Geometry

__all__ = ["plot_shower", "cell_polygons", "DEFAULT_HALF_WIDTH_MM"]

DEFAULT_HALF_WIDTH_MM = 60.0  # half width of each panel around the shower axis


def cell_polygons(geometry: Geometry, cells: np.ndarray) -> np.ndarray:
    """(len(cells), V, 2) outline vertices of the given cells (mm)."""
    x = geometry.cell_x_mm[cells].astype(np.float64)[:, None]
    y = geometry.cell_y_mm[cells].astype(np.float64)[:, None]
    size = geometry.cell_size_mm[cells].astype(np.float64)[:, None]
    if geometry.cell_shape in ("hex_flat", "hex_pointy"):
        start = 0.0 if geometry.cell_shape == "hex_flat" else 30.0
        angle = np.deg2rad(start + 60.0 * np.arange(6))[None, :]
        radius = size / math.sqrt(3.0)
        return np.stack([x + radius * np.cos(angle), y + radius * np.sin(angle)], axis=-1)
    half = size / 2 if geometry.cell_shape == "square" else np.maximum(size, 1.0) / 2
    sx = np.array([-1.0, 1.0, 1.0, -1.0])[None, :]
    sy = np.array([-1.0, -1.0, 1.0, 1.0])[None, :]
    return np.stack([x + half * sx, y + half * sy], axis=-1)


def _grid(n: int) -> tuple[int, int]:
    cols = math.ceil(math.sqrt(n * 1.6))
    return math.ceil(n / cols), cols


def plot_shower(
    hits: CellHits,
    geometry: Geometry,
    *,
    path: str | Path | None = None,
    title: str | None = None,
    layers: Sequence[int] | None = None,
    centre_mm: tuple[float, float] | None = None,
    half_width_mm: float = DEFAULT_HALF_WIDTH_MM,
    dpi: int = 110,
    note: str | None = None,
) -> Any:
    """One panel per detector layer: every cell of the window outlined, hit cells filled (log colour).

    Args:
        hits: the hits of one shower (``CellHits.shower(i)``).
        geometry: the geometry the hits belong to.
        path: write the figure here (PNG, PDF...), if given, and close it.
        title: figure title.
        layers: the detector layers to draw (default all).
        centre_mm: panel centre; default the energy-weighted centre of the hits.
        half_width_mm: half width of every panel (mm).
        dpi: resolution of the written image.
        note: a line at the foot of the figure; default: what the energies are
            (:func:`projection.files.energy_source_label`), e.g. ILD deposits re-binned onto HGCal.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import LogNorm

    hits = hits.numpy()
    if len(hits) != 1:
        msg = f"plot_shower draws one shower, got {len(hits)} (use hits.shower(i))"
        raise ValueError(msg)
    layers = list(range(geometry.n_layers)) if layers is None else [int(v) for v in layers]
    e = hits.e_mev.astype(np.float64)
    if centre_mm is None:
        weight = e.sum()
        centre_mm = (
            (float((hits.x_mm * e).sum() / weight), float((hits.y_mm * e).sum() / weight)) if weight > 0 else (0.0, 0.0)
        )
    cx, cy = centre_mm
    positive = e[e > 0]
    vmin = max(float(positive.min()), float(positive.max()) * 1e-4) if len(positive) else 1e-3
    vmax = float(positive.max()) if len(positive) else 1.0
    norm = LogNorm(vmin=vmin, vmax=vmax)
    cmap = plt.get_cmap("viridis")
    rows, cols = _grid(len(layers))
    fig, axes = plt.subplots(
        rows, cols, figsize=(2.3 * cols + 1.2, 2.3 * rows + 0.9), sharex=True, sharey=True, squeeze=False
    )
    reach = half_width_mm + float(geometry.cell_size_mm.max(initial=0.0))
    for k, ax in enumerate(axes.flat):
        if k >= len(layers):
            ax.set_visible(False)
            continue
        layer = layers[k]
        in_layer = np.flatnonzero(
            (geometry.cell_layer == layer)
            & (np.abs(geometry.cell_x_mm - cx) < reach)
            & (np.abs(geometry.cell_y_mm - cy) < reach)
        )
        ax.add_collection(
            PolyCollection(
                cell_polygons(geometry, in_layer), facecolors="#f2f2f2", edgecolors="#a8a8a8", linewidths=0.3
            )
        )
        mine = np.flatnonzero(hits.layer == layer)
        if len(mine):
            poly = cell_polygons(geometry, hits.cell_id[mine])
            ax.add_collection(
                PolyCollection(
                    poly, array=np.clip(e[mine], vmin, None), cmap=cmap, norm=norm, edgecolors="#555555", linewidths=0.2
                )
            )
        if geometry.kind == "hgcal":
            from projection.hgcal import wafer_outlines

            ax.add_collection(
                PolyCollection(wafer_outlines(geometry, layer), facecolors="none", edgecolors="#303030", linewidths=0.9)
            )
        ax.set_xlim(cx - half_width_mm, cx + half_width_mm)
        ax.set_ylim(cy - half_width_mm, cy + half_width_mm)
        ax.set_aspect("equal")
        layer_e = e[mine].sum()
        ax.set_title(f"layer {layer}   {layer_e:.3g} MeV", fontsize=8.5, pad=3)
        ax.tick_params(labelsize=7, length=2)
    for ax in axes[-1, :]:
        ax.set_xlabel("x [mm]", fontsize=9)
    for ax in axes[:, 0]:
        ax.set_ylabel("y [mm]", fontsize=9)
    # panels left empty in the last row: show the x axis on the row above
    for k in range(len(layers), rows * cols):
        above = axes.flat[k - cols]
        above.xaxis.set_tick_params(labelbottom=True)
        above.set_xlabel("x [mm]", fontsize=9)
    fig.subplots_adjust(left=0.06, right=0.9, bottom=0.1, top=0.9 if title else 0.95, wspace=0.12, hspace=0.3)
    cax = fig.add_axes((0.915, 0.15, 0.015, 0.7))
    bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), cax=cax)
    bar.set_label("cell energy [MeV]", fontsize=10)
    bar.ax.tick_params(labelsize=8)
    if title:
        fig.suptitle(title, fontsize=13)
    if note is None:
        from projection.files import energy_source_label

        note = energy_source_label(geometry.name)
    if note:
        fig.text(0.5, 0.005, note, ha="center", va="bottom", fontsize=7.5, color="#404040", wrap=True)
    if path is not None:
        from caloclouds.io.atomic import atomic_path

        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=Path(path).suffix.lstrip(".") or "png")
        plt.close(fig)
    return fig
