"""Cell hits in HDF5: one ragged file per projection run, written in chunks, atomically.

| dataset                  | shape, dtype    | meaning                                              |
|--------------------------|-----------------|------------------------------------------------------|
| ``offsets``              | (N+1,) int64    | shower i owns hits ``offsets[i]:offsets[i+1]``       |
| ``cell_id``              | (H,) int64      | cell index in the geometry                           |
| ``layer``                | (H,) int64      | detector layer                                       |
| ``x_mm``, ``y_mm``, ``z_mm`` | (H,) float32 | cell centre (local frame of the geometry)          |
| ``e_mev``                | (H,) float32    | cell energy                                          |
| ``lost_mev``             | (N,) float64    | energy outside cells, in gaps, on dead cells         |
| ``below_threshold_mev``  | (N,) float64    | energy of cells under the threshold                  |
| ``incident_energy_gev``  | (N,) float32    | incident energy of each shower                       |

File attributes: ``format = "caloclouds-cells"``, ``schema_version`` (2; version-1 files wrote
``format_version = 1``), ``geometry`` and the typed ``attrs`` (numbers as numbers). The writer is
:class:`caloclouds.io.cells.CellWriter` (``open_writer(path, format="cells")``), whose chunks are
buffered and appended in blocks, so the cost of a write does not grow with the number of calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from caloclouds.errors import InputFileError
from caloclouds.io.cells import CELLS_FORMAT, HIT_FIELDS, SHOWER_FIELDS, CellWriter
from caloclouds.io.metadata import decode_attrs
from projection.cells import CellHits

__all__ = ["CellWriter", "read_cells", "CELLS_FORMAT"]  # CellWriter lives in the data layer (caloclouds.io.cells)


def read_cells(path: str | Path) -> tuple[CellHits, np.ndarray, dict[str, Any]]:
    """Read a cells file: (CellHits, incident_energy_gev, attributes)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "cells file not found")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != CELLS_FORMAT:
                raise InputFileError(path, f"not a {CELLS_FORMAT} file (attribute format is {f.attrs.get('format')!r})")
            data = {k: f[k][()] for k in ("offsets", *HIT_FIELDS, *SHOWER_FIELDS, "incident_energy_gev")}
            attrs = decode_attrs(f.attrs)
    except OSError as exc:
        raise InputFileError(path, f"not a readable HDF5 file: {exc}") from None
    energy = data.pop("incident_energy_gev")
    return CellHits(**data), energy, attrs
