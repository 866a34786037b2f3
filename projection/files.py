"""Project a whole shower file onto a geometry, chunk by chunk, into a cells file (.h5 or .root).

``.h5`` output is the cells layout of :mod:`projection.cellfile`; ``.root`` output is the package's
ROOT layout (:mod:`caloclouds.io.root`) with the points and the ``cells_*`` branches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from caloclouds.errors import CaloCloudsError
from projection.cellfile import CellWriter
from projection.geometry import Geometry
from projection.project import project, project_torch

__all__ = ["ProjectionSummary", "project_file", "OUTPUT_SUFFIXES"]

OUTPUT_SUFFIXES = (".h5", ".hdf5", ".root")
DEFAULT_CHUNK_SHOWERS = 1000


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
        impact_mm, rotation_rad, layer_map, threshold_mev, threshold_mip, mip_mev: see :func:`projection.project`.
        device: ``"numpy"`` or a torch device (``"cpu"``, ``"cuda"``).
        chunk_showers: showers per chunk.
        input_format: input format (None = detect).
        progress: called with the number of showers done after each chunk.
    """
    from caloclouds.io.formats import iter_any

    out_path = Path(out_path)
    if out_path.suffix not in OUTPUT_SUFFIXES:
        msg = f"output {out_path} must end in one of {OUTPUT_SUFFIXES}"
        raise CaloCloudsError(msg)
    options: dict[str, Any] = dict(
        impact_mm=impact_mm, rotation_rad=rotation_rad, layer_map=layer_map,
        threshold_mev=threshold_mev, threshold_mip=threshold_mip,
    )
    if mip_mev is not None:
        options["mip_mev"] = mip_mev
    attrs = {"geometry": geometry.name, "impact_mm": list(impact_mm), "rotation_rad": rotation_rad,
             "threshold_mev": -1.0 if threshold_mev is None else threshold_mev}
    summary = ProjectionSummary()
    if out_path.suffix == ".root":
        from caloclouds.io.root import RootWriter

        writer: Any = RootWriter(out_path, attrs=attrs)
    else:
        writer = CellWriter(out_path, attrs={k: str(v) for k, v in attrs.items()})
    with writer:
        for showers in iter_any(in_path, format=input_format, chunk_showers=chunk_showers):
            if device == "numpy":
                cells = project(showers, geometry, **options)
            else:
                import torch

                cells = project_torch(
                    torch.from_numpy(showers.points).to(device), torch.from_numpy(showers.offsets).to(device), geometry, **options
                ).numpy()
            if out_path.suffix == ".root":
                writer.write(showers, cells=cells)
            else:
                writer.write(cells, showers.incident_energy_gev)
            summary.showers += len(showers)
            summary.points += len(showers.points)
            summary.hits += len(cells.e_mev)
            summary.input_mev += float(np.sum(showers.points[:, 3], dtype=np.float64))
            summary.cells_mev += float(np.sum(cells.e_mev, dtype=np.float64))
            summary.lost_mev += float(cells.lost_mev.sum())
            summary.below_threshold_mev += float(cells.below_threshold_mev.sum())
            if progress is not None:
                progress(len(showers))
    return summary
