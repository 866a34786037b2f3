"""The package's own ragged HDF5 schema (../shared/data/README.md).

| dataset               | shape, dtype     | meaning                                         |
|-----------------------|------------------|-------------------------------------------------|
| ``points``            | (P, 4) float32   | ``x_mm, y_mm, layer, e_MeV`` (attribute columns) |
| ``offsets``           | (N+1,) int64     | shower i is ``points[offsets[i]:offsets[i+1]]`` |
| ``incident_energy_gev`` | (N,) float32   | photon energy                                   |
| any other (N, ...)    |                  | per-shower conditions, e.g. ``raw_visible_mev`` |

Reading is lazy: :class:`ShowerFile` reads only the offsets and energies up front, and the points of
the showers asked for. Writing goes through :class:`ShowerWriter`, which appends chunks to resizable
gzip datasets in a temporary file and renames it on close.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from caloclouds.io.atomic import AtomicWriter
from caloclouds.errors import InputFileError
from caloclouds.showers import COLUMNS, Showers

__all__ = ["ShowerFile", "ShowerWriter", "read_showers", "write_showers", "is_shower_hdf5"]

_REQUIRED = ("points", "offsets", "incident_energy_gev")
_CHUNK_POINTS = 262144


def _open_h5(path: Path) -> Any:
    import h5py

    if not path.exists():
        raise InputFileError(path, "file not found")
    if path.is_dir():
        raise InputFileError(path, "is a directory, expected an HDF5 file")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise InputFileError(path, f"not a readable HDF5 file (truncated or another format?): {exc}") from None


def is_shower_hdf5(path: str | Path) -> bool:
    """True if ``path`` is an HDF5 file with the datasets of our schema."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return all(k in f for k in _REQUIRED)
    except OSError:
        return False


class ShowerFile:
    """Lazy reader of a shower HDF5 file. Use as a context manager or call :meth:`close`.

    Only ``offsets``, ``incident_energy_gev`` and other per-shower datasets are read when opened;
    points are read per request, so reading 100 showers from a 10^6-shower file reads 100 showers.
    """

    def __init__(self, path: str | Path, *, check_values: bool = True) -> None:
        self.path = Path(path)
        self.check_values = check_values
        self._file = _open_h5(self.path)
        try:
            self._load_index()
        except Exception:
            self._file.close()
            raise

    def _load_index(self) -> None:
        f, path = self._file, self.path
        missing = [k for k in _REQUIRED if k not in f]
        if missing:
            hint = " (this looks like a CaloClouds file: use --format caloclouds)" if "events" in f else ""
            raise InputFileError(path, f"missing dataset(s) {missing}; found {sorted(f)}{hint}")
        points = f["points"]
        if points.ndim != 2 or points.shape[1] != 4:
            raise InputFileError(path, f"expected shape (P, 4), found {points.shape}", where="points")
        try:
            self.offsets = f["offsets"][()].astype(np.int64)
            self.incident_energy_gev = f["incident_energy_gev"][()].astype(np.float32).reshape(-1)
        except OSError as exc:
            raise InputFileError(path, f"cannot read dataset (truncated file?): {exc}") from None
        n = len(self.incident_energy_gev)
        problem = None
        if self.offsets.ndim != 1 or len(self.offsets) != n + 1:
            problem = f"offsets has shape {self.offsets.shape}, expected ({n + 1},) for {n} showers"
        elif self.offsets[0] != 0 or self.offsets[-1] != points.shape[0]:
            problem = (
                f"offsets run from {self.offsets[0]} to {self.offsets[-1]}, "
                f"expected 0 to {points.shape[0]} (the number of points)"
            )
        elif np.any(np.diff(self.offsets) < 0):
            problem = f"offsets decrease at shower {int(np.argmax(np.diff(self.offsets) < 0))}"
        if problem:
            raise InputFileError(path, problem, where="offsets")
        if not np.all(np.isfinite(self.incident_energy_gev)):
            raise InputFileError(path, "NaN or inf incident energies", where="incident_energy_gev")
        self.columns = str(points.attrs.get("columns", ",".join(COLUMNS)))
        self.attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        self._conditions = [
            k for k in f if k not in _REQUIRED and getattr(f[k], "shape", None) and f[k].shape[:1] == (n,)
        ]

    # context manager ------------------------------------------------------------------------------
    def __enter__(self) -> ShowerFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def __len__(self) -> int:
        return len(self.incident_energy_gev)

    @property
    def n_points(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def condition_names(self) -> list[str]:
        return list(self._conditions)

    def read(self, start: int = 0, stop: int | None = None) -> Showers:
        """Showers ``start:stop`` (one contiguous read of their points)."""
        n = len(self)
        start, stop, _ = slice(start, stop).indices(n)
        stop = max(stop, start)
        lo, hi = int(self.offsets[start]), int(self.offsets[stop])
        try:
            points = self._file["points"][lo:hi]
            conditions = {k: self._file[k][start:stop] for k in self._conditions}
        except OSError as exc:
            raise InputFileError(self.path, f"cannot read points (truncated file?): {exc}", where="points") from None
        showers = Showers(
            points, self.offsets[start : stop + 1] - lo, self.incident_energy_gev[start:stop], conditions
        )
        if self.check_values:
            problem = showers.check_values()
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

    def iter_chunks(self, chunk_showers: int = 1000) -> Iterator[Showers]:
        """Consecutive chunks of at most ``chunk_showers`` showers."""
        for start in range(0, len(self), chunk_showers):
            yield self.read(start, start + chunk_showers)

    def __repr__(self) -> str:
        return f"ShowerFile({str(self.path)!r}, {len(self)} showers)"


def read_showers(path: str | Path, start: int = 0, stop: int | None = None) -> Showers:
    """Read showers ``start:stop`` of a shower HDF5 file (all of them by default)."""
    with ShowerFile(path) as f:
        return f.read(start, stop)


class ShowerWriter(AtomicWriter):
    """Append showers chunk by chunk to a new HDF5 file; the file appears under its name on close.

    Example::

        with ShowerWriter("out.h5", attrs={"source": "caloclouds generate"}) as w:
            for chunk in chunks:
                w.write(chunk)
    """

    def __init__(self, path: str | Path, *, attrs: dict[str, Any] | None = None, compression_level: int = 4) -> None:
        import h5py

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp")
        self._h5 = h5py.File(self._tmp, "w")
        self._gzip = dict(compression="gzip", compression_opts=compression_level)
        self._h5.attrs["columns"] = ",".join(COLUMNS)
        for k, v in (attrs or {}).items():
            self._h5.attrs[k] = v
        pts = self._h5.create_dataset(
            "points", shape=(0, 4), maxshape=(None, 4), dtype="f4", chunks=(_CHUNK_POINTS, 1), **self._gzip
        )
        pts.attrs["columns"] = ",".join(COLUMNS)
        self._h5.create_dataset("offsets", data=np.zeros(1, np.int64), maxshape=(None,), chunks=(65536,), **self._gzip)
        self._h5.create_dataset("incident_energy_gev", shape=(0,), maxshape=(None,), dtype="f4", chunks=(65536,))
        self._conditions: list[str] | None = None
        self.n_showers = 0
        self.n_points = 0

    def _append(self, name: str, values: np.ndarray) -> None:
        ds = self._h5[name]
        old = ds.shape[0]
        ds.resize(old + len(values), axis=0)
        ds[old:] = values

    def write(self, showers: Showers) -> None:
        if self._conditions is None:
            self._conditions = sorted(showers.conditions)
            for k in self._conditions:
                v = showers.conditions[k]
                self._h5.create_dataset(k, shape=(0, *v.shape[1:]), maxshape=(None, *v.shape[1:]), dtype=v.dtype)
        elif sorted(showers.conditions) != self._conditions:
            raise ValueError(f"conditions changed between chunks: {sorted(showers.conditions)} vs {self._conditions}")
        self._append("points", showers.points)
        self._append("offsets", showers.offsets[1:] + self.n_points)
        self._append("incident_energy_gev", showers.incident_energy_gev)
        for k in self._conditions:
            self._append(k, showers.conditions[k])
        self.n_showers += len(showers)
        self.n_points += len(showers.points)

    def close(self) -> None:
        """Finish the file and move it to its final name."""
        if self._h5.id.valid:
            self._h5.close()
            self._tmp.replace(self.path)

    def abort(self) -> None:
        """Drop the temporary file; the final name is left untouched."""
        if self._h5.id.valid:
            self._h5.close()
        self._tmp.unlink(missing_ok=True)



def write_showers(path: str | Path, showers: Showers, *, attrs: dict[str, Any] | None = None) -> None:
    """Write a batch of showers to ``path`` (atomically, gzip-compressed)."""
    with ShowerWriter(path, attrs=attrs) as w:
        w.write(showers)
