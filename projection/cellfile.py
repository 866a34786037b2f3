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
``format_version = 1``), ``geometry`` and the typed ``attrs`` (numbers as numbers). Chunks are
buffered and appended in blocks, so the cost of a write does not grow with the number of calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from caloclouds.errors import InputFileError
from caloclouds.io.atomic import AtomicWriter, check_output_path, temp_path_for
from caloclouds.io.hdf5 import BufferedDatasets
from caloclouds.io.metadata import SCHEMA_VERSION, decode_attrs, typed_metadata
from projection.cells import CellHits

__all__ = ["CellWriter", "read_cells", "CELLS_FORMAT"]

CELLS_FORMAT = "caloclouds-cells"
_FLUSH_HITS = 262144
_HIT_FIELDS = {"cell_id": np.int64, "layer": np.int64, "x_mm": np.float32, "y_mm": np.float32, "z_mm": np.float32, "e_mev": np.float32}
_SHOWER_FIELDS = {"lost_mev": np.float64, "below_threshold_mev": np.float64, "incident_energy_gev": np.float32}


class CellWriter(AtomicWriter):
    """Append CellHits chunk by chunk to a temporary HDF5 file, renamed to ``path`` on close."""

    def __init__(self, path: str | Path, *, attrs: dict[str, Any] | None = None) -> None:
        import h5py

        self.path = check_output_path(path)
        meta = typed_metadata(attrs)
        self._tmp = temp_path_for(self.path)
        self._file = h5py.File(self._tmp, "w")
        try:
            self._file.attrs["format"] = CELLS_FORMAT
            self._file.attrs["schema_version"] = SCHEMA_VERSION
            for key, value in meta.items():
                self._file.attrs[key] = value
            self._data = BufferedDatasets(self._file)
            for name, dtype in {**_HIT_FIELDS, **_SHOWER_FIELDS}.items():
                self._data.create(name, (), dtype, (65536,), compression="gzip")
            self._data.create("offsets", (), np.int64, (65536,))
            self._data.add("offsets", np.zeros(1, np.int64))
        except BaseException:
            self.abort()
            raise
        self._hits = 0
        self._pending = 0

    def write(self, cells: CellHits, incident_energy_gev: np.ndarray) -> None:
        """Append one batch of showers."""
        cells = cells.numpy()
        offsets = np.asarray(cells.offsets, np.int64)
        hits = slice(int(offsets[0]), int(offsets[-1]))
        for name, dtype in _HIT_FIELDS.items():
            self._data.add(name, np.asarray(getattr(cells, name), dtype)[hits])
        self._data.add("lost_mev", cells.lost_mev)
        self._data.add("below_threshold_mev", cells.below_threshold_mev)
        self._data.add("incident_energy_gev", np.asarray(incident_energy_gev, np.float32))
        self._data.add("offsets", offsets[1:] - offsets[0] + self._hits)
        n = int(offsets[-1] - offsets[0])
        self._hits += n
        self._pending += max(n, 1)
        if self._pending >= _FLUSH_HITS:
            self._data.flush()
            self._pending = 0

    def close(self) -> None:
        if self._file.id.valid:
            self._data.flush()
            self._file.close()
            self._tmp.replace(self.path)

    def abort(self) -> None:
        if self._file.id.valid:
            self._file.close()
        self._tmp.unlink(missing_ok=True)


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
            data = {k: f[k][()] for k in ("offsets", *_HIT_FIELDS, *_SHOWER_FIELDS)}
            attrs = decode_attrs(f.attrs)
    except OSError as exc:
        raise InputFileError(path, f"not a readable HDF5 file: {exc}") from None
    energy = data.pop("incident_energy_gev")
    return CellHits(**data), energy, attrs
