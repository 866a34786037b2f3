"""One writer protocol for every output file: ``open_writer(path, ...)``.

Every writer is a context manager with ``write(showers, cells=None)`` and ``update_attrs(attrs)``
(metadata known only at the end, e.g. counts); leaving the ``with`` block
normally finishes the file and renames it into place, leaving it by an exception drops it
(:class:`caloclouds.io.atomic.AtomicWriter`).

| format          | file                    | ``showers``                      | ``cells``                    |
|-----------------|-------------------------|----------------------------------|------------------------------|
| ``hdf5``        | ``.h5``/``.hdf5``       | points, offsets, energies        | the ``cells`` group          |
| ``root``        | ``.root``               | the ``points_*`` branches        | the ``cells_*`` branches     |
| ``cells``       | ``.h5``/``.hdf5``       | incident energies                | the whole file (required)    |

CaloChallenge voxel files are written by the voxel package's
:class:`caloclouds.voxel.calochallenge.CaloChallengeWriter`, which follows the same protocol (and
refuses cells): the data layer imports no model.

Cells are written wherever they are asked for, or refused with an error naming the file; a writer
never drops them. Example::

    with open_writer("out.h5", attrs={"generator": "caloclouds generate"}) as writer:
        for showers, cells in chunks:
            writer.write(showers, cells=cells)
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol

from caloclouds.errors import CaloCloudsError

__all__ = ["ShowerSink", "WriterFormat", "WRITER_FORMATS", "open_writer", "writer_format"]

WriterFormat = Literal["hdf5", "root", "cells"]
WRITER_FORMATS: tuple[str, ...] = ("hdf5", "root", "cells")
_SUFFIXES = {".h5": "hdf5", ".hdf5": "hdf5", ".root": "root"}


class ShowerSink(Protocol):
    """What :func:`open_writer` returns."""

    path: Path

    def write(self, showers: Any, cells: Any | None = None) -> None: ...

    def update_attrs(self, attrs: dict[str, Any]) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...

    def __enter__(self) -> Any: ...

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None: ...


def writer_format(path: str | Path, format: str | None = None) -> WriterFormat:
    """The writer format for ``path``: ``format`` if given, else from the suffix (.root, .h5, .hdf5).

    Raises:
        CaloCloudsError: an unknown format, or a suffix that does not fit it; names the file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if format is None:
        if suffix not in _SUFFIXES:
            raise CaloCloudsError(f"{path}: unknown output extension {suffix!r}; use one of {', '.join(_SUFFIXES)}")
        return _SUFFIXES[suffix]  # type: ignore[return-value]
    if format not in WRITER_FORMATS:
        raise CaloCloudsError(
            f"{path}: unknown output format {format!r}; valid formats are {', '.join(WRITER_FORMATS)}"
        )
    expected = "root" if format == "root" else "hdf5"
    if _SUFFIXES.get(suffix) != expected:
        want = ".root" if format == "root" else ".h5 or .hdf5"
        raise CaloCloudsError(f"{path}: a {format} file needs the extension {want}, got {suffix!r}")
    return format  # type: ignore[return-value]


def open_writer(
    path: str | Path,
    *,
    format: str | None = None,
    attrs: dict[str, Any] | None = None,
) -> ShowerSink:
    """A chunk writer with ``write(showers, cells=None)`` for ``path``.

    Args:
        path: the output file; it appears under its name only when the writer closes.
        format: ``"hdf5"``, ``"root"`` or ``"cells"``; None = from the suffix
            (``.root`` -> ROOT, ``.h5``/``.hdf5`` -> our shower HDF5).
        attrs: metadata stored with its types (HDF5 attributes, the ROOT ``metadata`` tree).

    Raises:
        CaloCloudsError: an unknown format, or a suffix that does not fit; the message names the file.
    """
    fmt = writer_format(path, format)
    if fmt == "root":
        from caloclouds.io.root import RootWriter

        return RootWriter(path, attrs=attrs)
    if fmt == "cells":
        from caloclouds.io.cells import CellWriter

        return CellWriter(path, attrs=attrs)
    from caloclouds.io.hdf5 import ShowerWriter

    return ShowerWriter(path, attrs=attrs)
