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

File attributes: ``format = "caloclouds-cells"``, ``format_version``, ``geometry`` and any ``attrs``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from caloclouds.io.atomic import AtomicWriter
from caloclouds.errors import InputFileError
from projection.cells import CellHits

__all__ = ["CellWriter", "read_cells", "CELLS_FORMAT"]

CELLS_FORMAT = "caloclouds-cells"
_VERSION = 1
_HIT_FIELDS = {"cell_id": np.int64, "layer": np.int64, "x_mm": np.float32, "y_mm": np.float32, "z_mm": np.float32, "e_mev": np.float32}
_SHOWER_FIELDS = {"lost_mev": np.float64, "below_threshold_mev": np.float64, "incident_energy_gev": np.float32}


class CellWriter(AtomicWriter):
    """Append CellHits chunk by chunk to a temporary HDF5 file, renamed to ``path`` on close."""

    def __init__(self, path: str | Path, *, attrs: dict[str, Any] | None = None) -> None:
        import h5py

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp")
        self._file = h5py.File(self._tmp, "w")
        self._file.attrs["format"] = CELLS_FORMAT
        self._file.attrs["format_version"] = _VERSION
        for key, value in (attrs or {}).items():
            self._file.attrs[key] = value
        for name, dtype in {**_HIT_FIELDS, **_SHOWER_FIELDS}.items():
            self._file.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(65536,), compression="gzip")
        self._file.create_dataset("offsets", data=np.zeros(1, np.int64), maxshape=(None,), chunks=(65536,))

    def _append(self, name: str, values: np.ndarray) -> None:
        ds = self._file[name]
        n = ds.shape[0]
        ds.resize((n + len(values),))
        ds[n:] = values

    def write(self, cells: CellHits, incident_energy_gev: np.ndarray) -> None:
        """Append one batch of showers."""
        cells = cells.numpy()
        last = int(self._file["offsets"][-1])
        for name in _HIT_FIELDS:
            self._append(name, getattr(cells, name))
        self._append("lost_mev", cells.lost_mev)
        self._append("below_threshold_mev", cells.below_threshold_mev)
        self._append("incident_energy_gev", np.asarray(incident_energy_gev, np.float32))
        self._append("offsets", cells.offsets[1:] + last)

    def close(self) -> None:
        self._file.close()
        self._tmp.replace(self.path)

    def abort(self) -> None:
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
            attrs = dict(f.attrs)
    except OSError as exc:
        raise InputFileError(path, f"not a readable HDF5 file: {exc}") from None
    energy = data.pop("incident_energy_gev")
    return CellHits(**data), energy, attrs
