"""Streaming reader of cell hits in HDF5: the files of ``caloclouds project`` and the ``cells`` group
that ``generate --cells ... -o X.h5`` adds to a shower file.

Layout (:mod:`projection.cellfile`): ``offsets`` (N+1), per hit ``cell_id, layer, x_mm, y_mm, z_mm,
e_mev``, per shower ``lost_mev, below_threshold_mev`` (and ``incident_energy_gev`` in a cells file).

:func:`iter_cells_as_showers` reads a cells file as showers whose points are the hit cells (cell
centre, detector layer, cell energy), so ``info``, ``convert`` and ``evaluate`` accept it; the
per-shower ``lost_mev`` and ``below_threshold_mev`` become conditions.

:class:`CellWriter` writes a cells file through the writer protocol of :mod:`caloclouds.io.writers`:
``write(showers, cells)`` keeps each shower's incident energy and its cell hits (the points
themselves are not stored: write a ``.h5`` shower file with cells to keep both).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from caloclouds.errors import CaloCloudsError, InputFileError
from caloclouds.io.atomic import check_output_path, temp_path_for
from caloclouds.io.checks import check_numeric, check_stored
from caloclouds.io.hdf5 import (
    BufferedDatasets,
    BufferedH5Writer,
    H5Reader,
    _open_h5,
    add_cell_hits,
    create_cell_datasets,
)
from caloclouds.io.metadata import SCHEMA_VERSION, decode_attrs, typed_metadata
from caloclouds.showers import Showers

__all__ = [
    "CellsReader",
    "CellWriter",
    "count_cells",
    "iter_cells_as_showers",
    "CELLS_FORMAT",
    "HIT_FIELDS",
    "SHOWER_FIELDS",
]

CELLS_FORMAT = "caloclouds-cells"

HIT_FIELDS = ("cell_id", "layer", "x_mm", "y_mm", "z_mm", "e_mev")
SHOWER_FIELDS = ("lost_mev", "below_threshold_mev")
_MAX_LAYERS = 1000  # detector layers of a cells file are checked to lie in [0, this)
_FLUSH_HITS = 262144  # the cells writer appends its buffers after this many hits


class CellWriter(BufferedH5Writer):
    """Append cell hits chunk by chunk to a temporary HDF5 cells file, renamed to ``path`` on close.

    Layout: :mod:`projection.cellfile` (``format = "caloclouds-cells"``, ``schema_version``,
    typed ``attrs``). Chunks are buffered, so the cost of a write does not grow with the calls.

    Args:
        path: the output file.
        attrs: metadata stored as typed file attributes.
    """

    def __init__(self, path: str | Path, *, attrs: dict[str, Any] | None = None) -> None:
        import h5py

        self.path = check_output_path(path)
        meta = typed_metadata(attrs)
        self._tmp = temp_path_for(self.path)
        self._h5 = h5py.File(self._tmp, "w")
        try:
            self._h5.attrs["format"] = CELLS_FORMAT
            self._h5.attrs["schema_version"] = SCHEMA_VERSION
            for key, value in meta.items():
                self._h5.attrs[key] = value
            self._data = BufferedDatasets(self._h5)
            create_cell_datasets(self._data)
            self._data.create("incident_energy_gev", (), np.float32, (65536,), compression="gzip")
        except BaseException:
            self.abort()
            raise
        self._hits = 0
        self._pending = 0
        self.n_showers = 0

    def write(self, showers: Showers, cells: Any | None = None) -> None:
        """Append the cell hits ``cells`` (CellHits-like) of ``showers`` and their incident energies.

        Raises:
            CaloCloudsError: ``cells`` is None (a cells file has nothing else to store); names the file.
            ValueError: ``cells`` and ``showers`` hold different numbers of showers.
        """
        if cells is None:
            raise CaloCloudsError(
                f"{self.path}: a cells file stores cell hits; write(showers, cells) needs the "
                "cells of every chunk (write points to a shower .h5 or .root file)"
            )
        n = add_cell_hits(self._data, cells, n_showers=len(showers), hits_before=self._hits)
        self._data.add("incident_energy_gev", np.asarray(showers.incident_energy_gev, np.float32))
        self._hits += n
        self.n_showers += len(showers)
        self._pending += max(n, 1)
        if self._pending >= _FLUSH_HITS:
            self._flush()

    def _flush(self) -> None:
        self._data.flush()
        self._pending = 0


class CellsReader(H5Reader):
    """Lazy reader of the cell hits in ``path`` (the whole file, or its group ``group``)."""

    def __init__(self, path: str | Path, *, group: str = "/") -> None:
        self.path = Path(path)
        self._file = _open_h5(self.path, "cells file")
        try:
            self._group = self._file[group]
            self._check()
        except Exception:
            self._file.close()
            raise

    def _check(self) -> None:
        g, path = self._group, self.path
        missing = [k for k in ("offsets", *HIT_FIELDS, *SHOWER_FIELDS) if k not in g]
        if missing:
            raise InputFileError(path, f"cells layout: missing dataset(s) {missing}; found {sorted(g)}")
        for name in ("offsets", *HIT_FIELDS, *SHOWER_FIELDS):
            check_numeric(path, g[name], name)
            check_stored(path, g[name], name)
        self._n = g["offsets"].shape[0] - 1
        n_hits = g["e_mev"].shape[0]
        bad = [k for k in HIT_FIELDS if g[k].shape != (n_hits,)] + [
            k for k in SHOWER_FIELDS if g[k].shape != (self._n,)
        ]
        if bad or self._n < 0:
            raise InputFileError(path, f"cells layout: datasets {bad or ['offsets']} have inconsistent lengths")
        ends = g["offsets"][[0, self._n]] if self._n else g["offsets"][:1]
        if ends[0] != 0 or ends[-1] != n_hits:
            raise InputFileError(
                path, f"offsets run from {ends[0]} to {ends[-1]}, expected 0 to {n_hits}", where="offsets"
            )
        self.attrs = decode_attrs(self._file.attrs)

    def read(self, start: int, stop: int) -> Any:
        """Cell hits of showers ``start:stop``: a CellHits-like namespace with offsets from 0."""
        g = self._group
        offsets = g["offsets"][start : stop + 1]
        if offsets.dtype.kind == "f" and np.any(offsets != np.floor(offsets)):
            raise InputFileError(self.path, "fractional offsets", where="offsets")
        offsets = offsets.astype(np.int64)
        if np.any(np.diff(offsets) < 0):
            raise InputFileError(
                self.path, f"offsets decrease at shower {start + int(np.argmax(np.diff(offsets) < 0))}", where="offsets"
            )
        lo, hi = int(offsets[0]), int(offsets[-1])
        out: dict[str, Any] = {"offsets": offsets - lo}
        out.update({k: g[k][lo:hi] for k in HIT_FIELDS})
        out.update({k: g[k][start:stop] for k in SHOWER_FIELDS})
        return SimpleNamespace(**out)

    def incident_energy_gev(self, start: int, stop: int) -> np.ndarray:
        if "incident_energy_gev" not in self._group:
            raise InputFileError(self.path, "cells file without incident_energy_gev")
        return self._group["incident_energy_gev"][start:stop].astype(np.float32)


def count_cells(path: str | Path) -> int:
    with CellsReader(path) as reader:
        return len(reader)


def iter_cells_as_showers(path: str | Path, *, chunk_showers: int = 10000) -> Iterator[Showers]:
    """A cells file as showers of hit cells (points at the cell centres), chunk by chunk."""
    with CellsReader(path) as reader:
        for start in range(0, len(reader), chunk_showers):
            stop = min(len(reader), start + chunk_showers)
            cells = reader.read(start, stop)
            points = np.column_stack([cells.x_mm, cells.y_mm, cells.layer, cells.e_mev]).astype(np.float32)
            conditions = {k: np.asarray(getattr(cells, k), np.float64) for k in SHOWER_FIELDS}
            showers = Showers(points, cells.offsets, reader.incident_energy_gev(start, stop), conditions)
            problem = showers.check_values(n_layers=_MAX_LAYERS)
            if problem:
                raise InputFileError(reader.path, f"{problem} (in showers {start}-{stop - 1})")
            yield showers
