"""The package's own ragged HDF5 schema (../shared/data/README.md).

| dataset               | shape, dtype     | meaning                                         |
|-----------------------|------------------|-------------------------------------------------|
| ``points``            | (P, 4) float32   | ``x_mm, y_mm, layer, e_mev`` (attribute columns) |
| ``offsets``           | (N+1,) int64     | shower i is ``points[offsets[i]:offsets[i+1]]`` |
| ``incident_energy_gev`` | (N,) float32   | photon energy                                   |
| any other (N, ...)    |                  | per-shower conditions, e.g. ``raw_visible_mev`` |
| ``cells/...``         | optional group   | cell hits, the layout of :mod:`projection.cellfile` |

File attributes (schema version 2): ``format = "caloclouds-showers"``, ``schema_version = 2``,
``columns`` and typed metadata (numbers as numbers). Version-1 files (no ``schema_version``, the
column written ``e_MeV``, as the shared Geant4 files) are read the same way.

Reading is lazy and streams: :class:`ShowerFile` checks the index when opened but reads offsets,
energies and points only for the showers asked for, so memory stays bounded for any file size.
Writing goes through :class:`ShowerWriter`, which buffers chunks in memory and appends them to
resizable gzip datasets in a temporary file, renamed on close. The datasets are byte-shuffled before
gzip level 1 (both filters built into every HDF5 library): smaller files than gzip level 4 alone,
written in 0.6 of its time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from caloclouds.errors import InputFileError
from caloclouds.io.atomic import AtomicWriter, check_output_path, rename_unless_signalled, temp_path_for
from caloclouds.io.checks import check_input_file, check_numeric, check_stored, direction_problem
from caloclouds.io.metadata import SCHEMA_VERSION, decode_attrs, typed_metadata
from caloclouds.showers import COLUMNS, PHI, THETA, Showers

__all__ = [
    "ShowerFile",
    "ShowerWriter",
    "read_showers",
    "write_showers",
    "is_shower_hdf5",
    "SHOWERS_FORMAT",
    "DEFAULT_N_LAYERS",
    "MAX_CHUNK_POINTS",
]

SHOWERS_FORMAT = "caloclouds-showers"
DEFAULT_N_LAYERS = 30  # layer bound of files that do not record n_layers (the ILD-like detector)
MAX_CHUNK_POINTS = 1 << 22  # iter_chunks splits chunks above this many points (64 MiB of float32 points)
INDEX_BLOCK_SHOWERS = 1 << 20  # iter_chunks reads offsets and energies in blocks of this many showers
_REQUIRED = ("points", "offsets", "incident_energy_gev")
_CHUNK_POINTS = 262144
_FLUSH_SHOWERS = 4096  # the writer also flushes after this many buffered showers
CELL_HIT_FIELDS = {
    "cell_id": np.int64,
    "layer": np.int64,
    "x_mm": np.float32,
    "y_mm": np.float32,
    "z_mm": np.float32,
    "e_mev": np.float32,
}
CELL_SHOWER_FIELDS = {"lost_mev": np.float64, "below_threshold_mev": np.float64}
GZIP_LEVEL = 1  # the writers' gzip level, after the shuffle filter


def gzip_options(level: int = GZIP_LEVEL) -> dict[str, Any]:
    """The h5py filter options of the writers' compressed datasets: shuffle, then gzip ``level``."""
    return {"compression": "gzip", "compression_opts": level, "shuffle": True}


def _open_h5(path: Path, what: str = "HDF5 file") -> Any:
    import h5py

    check_input_file(path, what)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise InputFileError(path, f"not a readable HDF5 file (truncated or another format?): {exc}") from None


def is_shower_hdf5(path: str | Path) -> bool:
    """True if ``path`` is an HDF5 file with the datasets of our schema."""
    import h5py

    try:
        check_input_file(path)
        with h5py.File(path, "r") as f:
            return all(k in f for k in _REQUIRED)
    except (OSError, InputFileError):
        return False


def _as_offsets(path: Path, values: np.ndarray) -> np.ndarray:
    """int64 offsets; float offsets are accepted only when every value is an integer."""
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or np.any(values != np.floor(values)):
            row = int(np.argmax(~np.isfinite(values) | (values != np.floor(values))))
            raise InputFileError(path, f"offset {row} is {float(values[row]):g}, expected an integer", where="offsets")
    return values.astype(np.int64)


_Reader = TypeVar("_Reader", bound="H5Reader")


class H5Reader:
    """What the lazy HDF5 readers (:class:`ShowerFile`, :class:`caloclouds.io.cells.CellsReader`) share:
    the open file ``_file`` (from :func:`_open_h5`) of ``_n`` showers. Use as a context manager or call
    :meth:`close`."""

    _file: Any
    _n: int

    def __len__(self) -> int:
        return self._n

    def __enter__(self: _Reader) -> _Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()


class ShowerFile(H5Reader):
    """Lazy reader of a shower HDF5 file. Use as a context manager or call :meth:`close`.

    Opening checks the layout (datasets, dtypes, shapes, that the data is really stored, the ends of
    the offsets). Offsets, energies and points are read per request and checked then, so reading
    100 showers of a 10^8-shower file reads 100 showers, and :meth:`iter_chunks` streams a file of
    any size in bounded memory.

    Args:
        path: the file.
        check_values: check each read for NaN/inf, non-positive incident energies, negative point
            energies and (for point files) layers outside ``[0, n_layers)``.
        n_layers: layer bound; default the file's ``n_layers`` attribute, else :data:`DEFAULT_N_LAYERS`.
            Raw-step files (a ``z_mm`` column) have no layer column and are not checked.
    """

    def __init__(self, path: str | Path, *, check_values: bool = True, n_layers: int | None = None) -> None:
        self.path = Path(path)
        self.check_values = check_values
        self._file = _open_h5(self.path)
        self._offsets: np.ndarray | None = None
        self._energies: np.ndarray | None = None
        try:
            self._check_layout()
        except Exception:
            self._file.close()
            raise
        columns = self.columns.split(",")
        self.n_layers = None if "z_mm" in columns else int(n_layers or self.attrs.get("n_layers", DEFAULT_N_LAYERS))

    def _check_layout(self) -> None:
        f, path = self._file, self.path
        missing = [k for k in _REQUIRED if k not in f]
        if missing:
            hint = " (this looks like a CaloClouds file: use --format caloclouds)" if "events" in f else ""
            raise InputFileError(path, f"missing dataset(s) {missing}; found {sorted(f)}{hint}")
        points, offsets, energies = (f[k] for k in _REQUIRED)
        check_numeric(path, points, "points")
        check_numeric(path, offsets, "offsets")
        check_numeric(path, energies, "incident_energy_gev")
        if points.ndim != 2 or points.shape[1] != 4:
            raise InputFileError(path, f"expected shape (P, 4), found {points.shape}", where="points")
        n = energies.shape[0] if energies.ndim >= 1 else 0
        if energies.ndim != 1:
            raise InputFileError(path, f"expected shape (N,), found {energies.shape}", where="incident_energy_gev")
        if offsets.shape != (n + 1,):
            raise InputFileError(
                path, f"offsets has shape {offsets.shape}, expected ({n + 1},) for {n} showers", where="offsets"
            )
        for name in _REQUIRED:
            check_stored(path, f[name], name)
        try:
            ends = _as_offsets(path, offsets[[0, n]] if n else offsets[:1])
        except OSError as exc:
            raise InputFileError(path, f"cannot read dataset (truncated file?): {exc}", where="offsets") from None
        if ends[0] != 0 or ends[-1] != points.shape[0]:
            raise InputFileError(
                path,
                f"offsets run from {ends[0]} to {ends[-1]}, expected 0 to {points.shape[0]} (the number of points)",
                where="offsets",
            )
        self._n = n
        self.columns = str(decode_attrs(points.attrs).get("columns", ",".join(COLUMNS)))
        self.attrs = decode_attrs(f.attrs)
        self._conditions = [
            k
            for k in f
            if k not in _REQUIRED
            and getattr(f[k], "shape", None)
            and f[k].shape[:1] == (n,)
            and f[k].dtype.kind in "fiub"
        ]
        # the direction of incidence: both datasets or neither, one angle per shower (values per read)
        problem = direction_problem({k: f[k] for k in (THETA, PHI) if k in f}, n, values=False)
        if problem:
            raise InputFileError(path, problem[1], where=problem[0])

    # the whole index, read on first use (memory: 12 bytes per shower) ------------------------------
    @property
    def offsets(self) -> np.ndarray:
        """(N+1,) int64 offsets of the whole file (read and checked on first use)."""
        if self._offsets is None:
            self._offsets = self._read_offsets(0, self._n)
        return self._offsets

    @property
    def incident_energy_gev(self) -> np.ndarray:
        """(N,) incident energies of the whole file (read on first use)."""
        if self._energies is None:
            self._energies = self._read_energies(0, self._n)
        return self._energies

    @property
    def n_points(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def condition_names(self) -> list[str]:
        return list(self._conditions)

    def _read_offsets(self, start: int, stop: int) -> np.ndarray:
        """Offsets ``start..stop`` (inclusive), checked to be integers that never decrease."""
        try:
            raw = self._file["offsets"][start : stop + 1]
        except OSError as exc:
            raise InputFileError(self.path, f"cannot read dataset (truncated file?): {exc}", where="offsets") from None
        offsets = _as_offsets(self.path, raw)
        steps = np.diff(offsets)
        if np.any(steps < 0):
            raise InputFileError(
                self.path, f"offsets decrease at shower {start + int(np.argmax(steps < 0))}", where="offsets"
            )
        return offsets

    def _read_energies(self, start: int, stop: int) -> np.ndarray:
        try:
            energies = self._file["incident_energy_gev"][start:stop].astype(np.float32)
        except OSError as exc:
            msg = f"cannot read dataset (truncated file?): {exc}"
            raise InputFileError(self.path, msg, where="incident_energy_gev") from None
        if not np.all(np.isfinite(energies)):
            raise InputFileError(self.path, "NaN or inf incident energies", where="incident_energy_gev")
        return energies

    def read(self, start: int = 0, stop: int | None = None) -> Showers:
        """Showers ``start:stop`` (one contiguous read of their points)."""
        start, stop, _ = slice(start, stop).indices(self._n)
        stop = max(stop, start)
        offsets = self._offsets[start : stop + 1] if self._offsets is not None else self._read_offsets(start, stop)
        energies = self._energies[start:stop] if self._energies is not None else self._read_energies(start, stop)
        return self._read_indexed(start, stop, offsets, energies)

    def _read_indexed(self, start: int, stop: int, offsets: np.ndarray, energies: np.ndarray) -> Showers:
        lo, hi = int(offsets[0]), int(offsets[-1])
        try:
            points = self._file["points"][lo:hi]
            conditions = {k: self._file[k][start:stop] for k in self._conditions}
        except OSError as exc:
            raise InputFileError(self.path, f"cannot read points (truncated file?): {exc}", where="points") from None
        showers = Showers(points, offsets - lo, energies, conditions)
        problem = direction_problem(conditions, stop - start, first=start)
        if problem:
            raise InputFileError(self.path, problem[1], where=problem[0])
        if self.check_values:
            problem = showers.check_values(n_layers=self.n_layers)
            if problem:
                raise InputFileError(self.path, f"{problem} (in showers {start}-{stop - 1})", where="points")
        return showers

    def take(self, indices: np.ndarray) -> Showers:
        """Arbitrary showers by index (read in sorted contiguous runs, returned in the order given)."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size == 0:
            return self.read(0, 0)
        order = np.unique(indices)
        lo, hi = int(order[0]), int(order[-1]) + 1
        if hi - lo <= 4 * len(order):
            block = self.read(lo, hi)
            return block[indices - lo]
        parts = Showers.concatenate([self.read(int(i), int(i) + 1) for i in order])
        return parts[np.searchsorted(order, indices)]

    def iter_chunks(self, chunk_showers: int = 1000, *, max_points: int = MAX_CHUNK_POINTS) -> Iterator[Showers]:
        """Consecutive chunks of at most ``chunk_showers`` showers and (unless one shower is larger)
        ``max_points`` points; only one chunk's index and points are in memory at a time."""
        if chunk_showers < 1:
            raise ValueError(f"chunk_showers must be >= 1, got {chunk_showers}")
        start = 0
        block_start, block_offsets, block_energies = 0, np.zeros(1, np.int64), np.zeros(0, np.float32)
        while start < self._n:
            if (
                start + chunk_showers > block_start + len(block_energies)
                and block_start + len(block_energies) < self._n
            ):
                # the index is read in blocks of INDEX_BLOCK_SHOWERS (12 MB), not per chunk
                block_start = start
                block_stop = min(self._n, start + max(INDEX_BLOCK_SHOWERS, chunk_showers))
                block_offsets = self._read_offsets(block_start, block_stop)
                block_energies = self._read_energies(block_start, block_stop)
            i = start - block_start
            stop = min(self._n, start + chunk_showers, block_start + len(block_energies))
            offsets = block_offsets[i : stop - block_start + 1]
            # the last shower boundary within max_points of the chunk start (at least one shower)
            cut = int(np.searchsorted(offsets, offsets[0] + max_points, side="right")) - 1
            stop = start + max(cut, 1)
            yield self._read_indexed(start, stop, offsets[: stop - start + 1], block_energies[i : stop - block_start])
            start = stop

    def __repr__(self) -> str:
        return f"ShowerFile({str(self.path)!r}, {len(self)} showers)"


def read_showers(path: str | Path, start: int = 0, stop: int | None = None) -> Showers:
    """Read showers ``start:stop`` of a shower HDF5 file (all of them by default)."""
    with ShowerFile(path) as f:
        return f.read(start, stop)


class BufferedDatasets:
    """Resizable datasets of one HDF5 group, appended in buffered blocks (one resize per flush)."""

    def __init__(self, group: Any) -> None:
        self.group = group
        self.pending: dict[str, list[np.ndarray]] = {}
        self.datasets: dict[str, Any] = {}  # one handle each, for the writer's life (see flush)

    def create(self, name: str, tail: tuple[int, ...], dtype: Any, chunks: tuple[int, ...], **options: Any) -> None:
        # an explicit fill value: HDF5 then initialises the part of an edge chunk beyond the data, which
        # it otherwise leaves as whatever the heap held, so the same showers give the same file bytes
        options.setdefault("fillvalue", 0)
        self.datasets[name] = self.group.create_dataset(
            name, shape=(0, *tail), maxshape=(None, *tail), dtype=dtype, chunks=chunks, **options
        )
        self.pending[name] = []

    def add(self, name: str, values: np.ndarray) -> None:
        self.pending[name].append(np.asarray(values))

    def flush(self) -> None:
        for name, parts in self.pending.items():
            if not parts:
                continue
            values = parts[0] if len(parts) == 1 else np.concatenate(parts)
            ds = self.datasets[name]
            old = ds.shape[0]
            ds.resize(old + len(values), axis=0)
            ds[old:] = values
            parts.clear()
            # its chunks go to the file now, in this order: not when a handle happens to be closed
            # (h5py may defer that in a worker thread), so the file's layout, and its bytes, depend
            # only on the showers (production shards are compared byte for byte)
            ds.flush()
        self.group.file.flush()


def create_cell_datasets(data: BufferedDatasets, level: int = GZIP_LEVEL) -> None:
    """The resizable datasets of the cells layout (hit fields, per-shower fields, offsets from 0),
    the hit and per-shower fields compressed with :func:`gzip_options` of ``level``."""
    for name, dtype in {**CELL_HIT_FIELDS, **CELL_SHOWER_FIELDS}.items():
        data.create(name, (), dtype, (65536,), **gzip_options(level))
    data.create("offsets", (), np.int64, (65536,))
    data.add("offsets", np.zeros(1, np.int64))


def add_cell_hits(data: BufferedDatasets, cells: Any, *, n_showers: int, hits_before: int) -> int:
    """Buffer one chunk of cell hits (CellHits-like, numpy or torch) after ``hits_before`` stored
    hits; returns the number of hits added.

    Raises:
        ValueError: ``cells`` does not hold ``n_showers`` showers.
    """
    cells = cells.numpy() if hasattr(cells, "numpy") else cells
    offsets = np.asarray(cells.offsets, np.int64)
    if len(offsets) != n_showers + 1:
        raise ValueError(f"cells has {len(offsets) - 1} showers but showers has {n_showers}")
    hits = slice(int(offsets[0]), int(offsets[-1]))
    for name, dtype in CELL_HIT_FIELDS.items():
        data.add(name, np.asarray(getattr(cells, name), dtype)[hits])
    for name, dtype in CELL_SHOWER_FIELDS.items():
        data.add(name, np.asarray(getattr(cells, name), dtype))
    data.add("offsets", offsets[1:] - offsets[0] + hits_before)
    return int(offsets[-1] - offsets[0])


class BufferedH5Writer(AtomicWriter):
    """An HDF5 writer into the temporary file ``self._tmp`` (open as ``self._h5``) that buffers
    chunks; a subclass implements ``_flush()``, which appends the buffers."""

    path: Path
    _tmp: Path
    _h5: Any

    def _flush(self) -> None:  # pragma: no cover - always overridden
        raise NotImplementedError

    def update_attrs(self, attrs: dict[str, Any]) -> None:
        """Add or replace file attributes (typed, see :mod:`caloclouds.io.metadata`) before the file closes."""
        for key, value in typed_metadata(attrs).items():
            self._h5.attrs[key] = value

    def close(self) -> None:
        """Finish the file and move it to its final name."""
        if self._h5.id.valid:
            self._flush()
            self._h5.close()
            rename_unless_signalled(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the temporary file; the final name is left untouched."""
        if self._h5.id.valid:
            self._h5.close()
        self._tmp.unlink(missing_ok=True)


class ShowerWriter(BufferedH5Writer):
    """Append showers (and optionally their cell hits) chunk by chunk to a new HDF5 file.

    Chunks are buffered and written in blocks of about 2^18 points, so the cost per call does not
    grow with the number of calls (``generate --batch-size 1``). The file appears under its name
    on close; until then it is a temporary file next to it.

    Example::

        with ShowerWriter("out.h5", attrs={"source": "caloclouds generate"}) as w:
            for chunk in chunks:
                w.write(chunk)

    Args:
        path: the output file.
        attrs: metadata stored as typed file attributes (numbers stay numbers, None is dropped).
        compression_level: gzip level (after the shuffle filter), of the cells group too.
    """

    def __init__(
        self, path: str | Path, *, attrs: dict[str, Any] | None = None, compression_level: int = GZIP_LEVEL
    ) -> None:
        import h5py

        self.path = check_output_path(path)
        self._tmp = temp_path_for(self.path)
        meta = typed_metadata(attrs)
        self._h5 = h5py.File(self._tmp, "w")
        try:
            self._level = compression_level
            gzip = gzip_options(compression_level)
            root = self._h5.attrs
            root["format"] = SHOWERS_FORMAT
            root["schema_version"] = SCHEMA_VERSION
            root["columns"] = ",".join(COLUMNS)
            for k, v in meta.items():
                root[k] = v
            self._data = BufferedDatasets(self._h5)
            self._data.create("points", (4,), "f4", (_CHUNK_POINTS, 1), **gzip)
            self._h5["points"].attrs["columns"] = ",".join(COLUMNS)
            self._data.create("offsets", (), np.int64, (65536,), **gzip)
            self._data.add("offsets", np.zeros(1, np.int64))
            self._data.create("incident_energy_gev", (), "f4", (65536,))
        except BaseException:
            self.abort()
            raise
        self._cells: BufferedDatasets | None = None
        self._with_cells: bool | None = None
        self._conditions: list[str] | None = None
        self._buffered_points = self._buffered_showers = 0
        self.n_showers = 0
        self.n_points = 0
        self.n_hits = 0

    def _start(self, showers: Showers, cells: Any | None) -> None:
        self._conditions = sorted(showers.conditions)
        for k in self._conditions:
            v = np.asarray(showers.conditions[k])
            self._data.create(k, v.shape[1:], v.dtype, (65536, *v.shape[1:]))
        self._with_cells = cells is not None
        if self._with_cells:
            group = self._h5.create_group("cells")
            group.attrs["format"] = "caloclouds-cells"
            self._cells = BufferedDatasets(group)
            create_cell_datasets(self._cells, self._level)

    def write(self, showers: Showers, cells: Any | None = None) -> None:
        """Append a chunk of showers; ``cells`` (CellHits-like) must be given for every chunk or none."""
        if self._conditions is None:
            self._start(showers, cells)
        elif sorted(showers.conditions) != self._conditions:
            raise ValueError(f"conditions changed between chunks: {sorted(showers.conditions)} vs {self._conditions}")
        elif (cells is not None) != self._with_cells:
            raise ValueError("cells must be given for every chunk or for none")
        self._data.add("points", showers.points)
        self._data.add("offsets", showers.offsets[1:] + self.n_points)
        self._data.add("incident_energy_gev", showers.incident_energy_gev)
        for k in self._conditions:
            self._data.add(k, showers.conditions[k])
        if cells is not None:
            self._add_cells(showers, cells)
        self.n_showers += len(showers)
        self.n_points += len(showers.points)
        self._buffered_points += len(showers.points)
        self._buffered_showers += len(showers)
        if self._buffered_points >= _CHUNK_POINTS or self._buffered_showers >= _FLUSH_SHOWERS:
            self._flush()

    def _add_cells(self, showers: Showers, cells: Any) -> None:
        assert self._cells is not None
        self.n_hits += add_cell_hits(self._cells, cells, n_showers=len(showers), hits_before=self.n_hits)

    def _flush(self) -> None:
        self._data.flush()
        if self._cells is not None:
            self._cells.flush()
        self._buffered_points = self._buffered_showers = 0


def write_showers(path: str | Path, showers: Showers, *, attrs: dict[str, Any] | None = None) -> None:
    """Write a batch of showers to ``path`` (atomically, gzip-compressed)."""
    with ShowerWriter(path, attrs=attrs) as w:
        w.write(showers)
