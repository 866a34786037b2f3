"""Checks shared by the readers: a regular input file, numeric datasets, data actually stored."""

from __future__ import annotations

import math
import stat
from pathlib import Path
from typing import Any

from caloclouds.errors import InputFileError

__all__ = ["check_input_file", "check_numeric", "check_stored"]


def check_input_file(path: str | Path, what: str = "file") -> Path:
    """``path`` as a Path if it is an existing regular file (never blocks on a pipe or device).

    Raises:
        InputFileError: missing, a folder, or not a regular file.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputFileError(path, "file not found") from None
    except OSError as exc:
        raise InputFileError(path, f"cannot access the {what} ({exc.strerror})") from None
    if stat.S_ISDIR(mode):
        raise InputFileError(path, f"is a folder, expected {_article(what)} {what}")
    if not stat.S_ISREG(mode):
        raise InputFileError(
            path, f"is not a regular file (a pipe, socket or device?), expected {_article(what)} {what}"
        )
    return path


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def check_numeric(path: Path, dataset: Any, name: str, *, kinds: str = "fiu") -> None:
    """Raise if an HDF5 dataset does not hold numbers of the given numpy kinds."""
    kind = dataset.dtype.kind
    if kind not in kinds:
        described = "text" if kind in "SUO" else f"dtype {dataset.dtype}"
        wanted = {"fiu": "numbers", "iu": "integers", "fiub": "numbers"}.get(kinds, f"kinds {kinds}")
        raise InputFileError(path, f"holds {described} (dtype {dataset.dtype}), expected {wanted}", where=name)


def check_stored(path: Path, dataset: Any, name: str) -> None:
    """Raise if an HDF5 dataset declares more data than the file stores (truncated or forged file).

    A dataset whose shape promises 10^9 rows but whose chunks were never written would otherwise
    be read as gigabytes of fill values.
    """
    import h5py

    if dataset.size == 0:
        return
    dsid = dataset.id
    layout = dsid.get_create_plist().get_layout()
    if layout == h5py.h5d.CHUNKED:
        expected = math.prod(-(-s // c) for s, c in zip(dataset.shape, dataset.chunks))
        stored = dsid.get_num_chunks()
        if stored < expected:
            msg = f"declares shape {dataset.shape} but stores only {stored} of its {expected} chunks (truncated or corrupt file)"
            raise InputFileError(path, msg, where=name)
    elif layout == h5py.h5d.CONTIGUOUS:
        stored = dsid.get_storage_size()
        if stored < dataset.nbytes:
            msg = f"declares shape {dataset.shape} ({dataset.nbytes} bytes) but stores {stored} bytes (truncated or corrupt file)"
            raise InputFileError(path, msg, where=name)
