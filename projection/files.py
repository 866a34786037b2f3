"""Project a whole shower file onto a geometry, chunk by chunk, into a cells file (.h5 or .root).

``.h5`` output is the cells layout of :mod:`projection.cellfile`; ``.root`` output is the package's
ROOT layout (:mod:`caloclouds.io.root`) with the points and the ``cells_*`` branches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from caloclouds.config import ILD_LIKE_DETECTOR, DetectorConfig
from caloclouds.errors import CaloCloudsError
from caloclouds.io.atomic import check_output_path
from projection.geometry import Geometry
from projection.project import project, project_torch

__all__ = [
    "ProjectionSummary",
    "project_file",
    "projection_metadata",
    "energy_source_label",
    "warn_if_lossy",
    "check_placement",
    "OUTPUT_SUFFIXES",
]

OUTPUT_SUFFIXES = (".h5", ".hdf5", ".root")
DEFAULT_CHUNK_SHOWERS = 1000


NATIVE_GEOMETRIES = ("ild", "ild-real")


def energy_source_label(geometry_name: str, source: str | None = None) -> str:
    """What the cell energies are, in words: written to every projected file and plot. ``source``:
    what the input's points are, where its file says (``energy_source`` of generated showers)."""
    source = source or (
        "Geant4 energy deposits in the 0.5 mm silicon of an ILD-like Si-W ECAL (or a model trained on them)"
    )
    if geometry_name in NATIVE_GEOMETRIES or geometry_name.startswith("square:"):
        return f"{source}, binned onto {geometry_name} cells"
    return (
        f"{source}, re-binned onto {geometry_name} cells; not a simulation of the {geometry_name} absorbers and sensors"
    )


def check_placement(*, impact_mm: Sequence[float], rotation_rad: float, chunk_showers: int) -> None:
    """One-line errors for placement options that would silently give wrong output."""
    if len(impact_mm) != 2 or not all(math.isfinite(v) for v in impact_mm):
        raise CaloCloudsError(f"--impact must be two finite numbers in mm, got {list(impact_mm)}")
    if not math.isfinite(rotation_rad):
        raise CaloCloudsError(f"--rotation-deg must be a finite angle, got {rotation_rad}")
    if int(chunk_showers) < 1:
        raise CaloCloudsError(f"--chunk must be >= 1 shower, got {chunk_showers}")


def projection_metadata(
    geometry: Geometry,
    *,
    impact_mm: Sequence[float],
    rotation_rad: float,
    layer_map: str | Sequence[int] | None,
    threshold_mev: float | None,
    threshold_mip: float | None,
    mip_mev: float,
) -> dict[str, Any]:
    """Typed metadata of a projection: every number as a number, nothing absent as a sentinel."""
    from projection.mip import THICKNESS_EXTRA

    mip = float(mip_mev)
    per_cell = THICKNESS_EXTRA in geometry.extras
    attrs: dict[str, Any] = {
        "geometry": geometry.name,
        "cells": geometry.name,  # as caloclouds generate --cells writes it
        "impact_mm": [float(v) for v in impact_mm],
        "rotation_rad": float(rotation_rad),
        "layer_map": layer_map if isinstance(layer_map, str) or layer_map is None else [int(v) for v in layer_map],
        "energy_source": energy_source_label(geometry.name),
    }
    if threshold_mev is not None:
        attrs["threshold_mev"] = float(threshold_mev)
    if threshold_mip is not None:
        attrs["threshold_mip"] = float(threshold_mip)
        attrs["mip_mev_500um"] = mip
        if per_cell:
            attrs["mip_rule"] = "MIP per cell, scaled from mip_mev_500um to the cell's silicon thickness (Landau MPV)"
        else:
            attrs["threshold_mev"] = float(threshold_mip) * mip
    return attrs


@dataclass
class ProjectionSummary:
    """Totals of one :func:`project_file` run (energies in MeV)."""

    showers: int = 0
    points: int = 0
    hits: int = 0
    input_mev: float = 0.0
    cells_mev: float = 0.0
    lost_mev: float = 0.0
    below_threshold_mev: float = 0.0
    unmapped_mev: float = 0.0  # part of lost_mev: in shower layers the layer map sends to no detector layer

    def lines(self) -> list[str]:
        total = max(self.input_mev, 1e-300)
        return [
            f"showers          {self.showers}",
            f"points           {self.points}",
            f"cell hits        {self.hits} ({self.hits / max(self.showers, 1):.1f} per shower)",
            f"energy in        {self.input_mev:.6g} MeV",
            f"in cells         {self.cells_mev:.6g} MeV ({100 * self.cells_mev / total:.3f} %)",
            f"lost             {self.lost_mev:.6g} MeV ({100 * self.lost_mev / total:.3f} %) outside cells, gaps, dead cells",
            f"below threshold  {self.below_threshold_mev:.6g} MeV ({100 * self.below_threshold_mev / total:.3f} %)",
        ]


LOSS_WARNING_FRACTION = 0.01  # a projection that loses more of the input energy than this warns


def warn_if_lossy(summary: ProjectionSummary, geometry: Geometry, layer_map: str | Sequence[int] | None) -> str | None:
    """Warn (:class:`ProjectionLossWarning`) when more than 1 % of the energy reached no cell, naming
    the cause; returns the message, or None."""
    import warnings

    from projection.errors import ProjectionLossWarning

    total = summary.input_mev
    if not total > 0 or summary.lost_mev <= LOSS_WARNING_FRACTION * total:
        return None
    causes = []
    if summary.unmapped_mev > 1e-3 * total:
        name = layer_map if isinstance(layer_map, str) else geometry.default_layer_map if layer_map is None else "given"
        causes.append(
            f"{100 * summary.unmapped_mev / total:.1f} % in shower layers that the {name!r} layer map sends to no "
            f"layer of {geometry.name} ({geometry.n_layers} layers)"
        )
    outside = summary.lost_mev - summary.unmapped_mev
    if outside > 1e-3 * total:
        causes.append(
            f"{100 * outside / total:.1f} % outside the cells of {geometry.name} (gaps, dead cells or beyond its "
            "edge: check the geometry and --impact)"
        )
    msg = f"{100 * summary.lost_mev / total:.1f} % of the energy reached no cell: {'; '.join(causes)}"
    warnings.warn(msg, ProjectionLossWarning, stacklevel=2)
    return msg


def project_file(
    in_path: str | Path,
    out_path: str | Path,
    geometry: Geometry,
    *,
    impact_mm: tuple[float, float] = (0.0, 0.0),
    rotation_rad: float = 0.0,
    layer_map: str | Sequence[int] | None = None,
    threshold_mev: float | None = None,
    threshold_mip: float | None = None,
    mip_mev: float | None = None,
    detector: DetectorConfig = ILD_LIKE_DETECTOR,
    device: str = "numpy",
    chunk_showers: int = DEFAULT_CHUNK_SHOWERS,
    input_format: str | None = None,
    progress: Callable[[int], Any] | None = None,
) -> ProjectionSummary:
    """Project every shower of ``in_path`` and write the cell hits to ``out_path`` (atomically).

    Args:
        in_path: any shower file :func:`caloclouds.io.formats.iter_any` reads.
        out_path: ``.h5``/``.hdf5`` (cells file) or ``.root`` (points plus cells).
        geometry: the target geometry.
        impact_mm, rotation_rad, layer_map, threshold_mev, threshold_mip: see :func:`projection.project`.
        mip_mev: the MIP for ``threshold_mip`` (MeV); None = the detector's.
        detector: the detector of the input showers (its ``n_layers``, ``mip_mev``).
        device: ``"numpy"`` or a torch device (``"cpu"``, ``"cuda"``).
        chunk_showers: showers per chunk.
        input_format: input format (None = detect).
        progress: called with the number of showers done after each chunk.
    """
    from caloclouds.io.formats import detect_format, iter_any

    out_path = check_output_path(out_path, suffixes=OUTPUT_SUFFIXES)
    check_placement(impact_mm=impact_mm, rotation_rad=rotation_rad, chunk_showers=chunk_showers)
    mip_mev = detector.mip_mev if mip_mev is None else mip_mev
    options: dict[str, Any] = dict(
        impact_mm=impact_mm,
        rotation_rad=rotation_rad,
        layer_map=layer_map,
        threshold_mev=threshold_mev,
        threshold_mip=threshold_mip,
        mip_mev=mip_mev,
        n_shower_layers=detector.n_layers,
    )
    attrs = projection_metadata(
        geometry,
        impact_mm=impact_mm,
        rotation_rad=rotation_rad,
        layer_map=layer_map,
        threshold_mev=threshold_mev,
        threshold_mip=threshold_mip,
        mip_mev=mip_mev,
    )
    attrs["detector"] = detector.name
    attrs["n_shower_layers"] = detector.n_layers
    if input_format is None:
        detect_format(in_path)  # a bad input fails before the output is opened
    summary = ProjectionSummary()
    from caloclouds.io.writers import open_writer
    from projection.placement import resolve_layer_map

    lmap = resolve_layer_map(
        geometry.default_layer_map if layer_map is None else layer_map,
        n_shower_layers=detector.n_layers,
        n_detector_layers=geometry.n_layers,
    )

    with open_writer(out_path, format="root" if out_path.suffix == ".root" else "cells", attrs=attrs) as writer:
        for showers in iter_any(in_path, format=input_format, chunk_showers=chunk_showers):
            if device == "numpy":
                cells = project(showers, geometry, **options)
            else:
                import torch

                cells = project_torch(
                    torch.from_numpy(showers.points).to(device),
                    torch.from_numpy(showers.offsets).to(device),
                    geometry,
                    **options,
                ).numpy()
            writer.write(showers, cells=cells)
            summary.showers += len(showers)
            summary.points += len(showers.points)
            summary.hits += len(cells.e_mev)
            summary.input_mev += float(np.sum(showers.points[:, 3], dtype=np.float64))
            summary.cells_mev += float(np.sum(cells.e_mev, dtype=np.float64))
            summary.lost_mev += float(cells.lost_mev.sum())
            summary.below_threshold_mev += float(cells.below_threshold_mev.sum())
            dropped = lmap[np.clip(showers.points[:, 2].astype(np.int64), 0, len(lmap) - 1)] < 0
            summary.unmapped_mev += float(np.sum(showers.points[dropped, 3], dtype=np.float64))
            if progress is not None:
                progress(len(showers))
    warn_if_lossy(summary, geometry, layer_map)
    return summary
