"""Checks shared by the readers: a regular input file, numeric datasets, data actually stored, and
the direction of incidence (``theta_deg``/``phi_deg``: both or neither, one finite angle per
shower, theta in [0, 90) degrees)."""

from __future__ import annotations

import math
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from caloclouds.errors import InputFileError
from caloclouds.showers import PHI, THETA

__all__ = ["check_input_file", "check_numeric", "check_stored", "direction_problem"]


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


def direction_problem(
    conditions: Mapping[str, Any], n_showers: int, *, first: int = 0, values: bool = True
) -> tuple[str, str] | None:
    """The first problem of a batch's direction of incidence, as ``(dataset, problem)``, or None.

    A batch carries ``theta_deg`` and ``phi_deg`` together (neither: normal incidence), each one
    finite angle in degrees per shower, theta in [0, 90) (the polar angle from the depth axis, into
    the calorimeter); phi may take any finite value (it is an azimuth).

    Args:
        conditions: the per-shower arrays of the batch (datasets or branches, by name).
        n_showers: the number of showers of the batch.
        first: the index of the batch's first shower in the file (for the message).
        values: check the values too (False: only presence, shape and dtype, e.g. of HDF5 datasets
            when a file is opened, before any read).
    """
    present = [k for k in (THETA, PHI) if k in conditions]
    if len(present) == 1:
        missing = PHI if present[0] == THETA else THETA
        return present[0], f"has {present[0]} but no {missing}: a direction needs both (neither: normal incidence)"
    if not present:
        return None
    for name in (THETA, PHI):
        angles = conditions[name]
        shape = tuple(getattr(angles, "shape", (len(angles),)))
        if shape != (n_showers,):
            return name, f"has shape {shape}, expected ({n_showers},): one angle per shower"
        kind = getattr(angles, "dtype", np.asarray(angles).dtype).kind
        if kind not in "fiu":
            return name, f"holds {getattr(angles, 'dtype', kind)}, expected angles in degrees (numbers)"
    if not values:
        return None
    for name in (THETA, PHI):
        angles = np.asarray(conditions[name])
        bad = ~np.isfinite(angles)
        if bad.any():
            i = int(np.argmax(bad))
            return name, f"shower {first + i} has {name} = {angles[i]}, expected a finite angle in degrees"
    theta = np.asarray(conditions[THETA], dtype=np.float64)
    bad = (theta < 0.0) | (theta >= 90.0)
    if bad.any():
        i = int(np.argmax(bad))
        return THETA, f"shower {first + i} has theta_deg = {theta[i]:g}, expected 0 <= theta < 90 degrees"
    return None
