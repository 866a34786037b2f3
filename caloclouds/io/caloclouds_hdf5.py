"""The CaloClouds training format: padded ``events`` plus ``energy`` (../shared/data/README.md, part 2).

| dataset        | shape          | meaning                                                     |
|----------------|----------------|-------------------------------------------------------------|
| ``events``     | (N, P, 4) or (N, 4, P) | columns x, y, z, e; rows with e == 0 are padding (front or back) |
| ``energy``     | (N,) or (N, 1) | incident energy in GeV                                      |
| ``p_norm_local`` | (3, N), optional | incident direction (kept as the condition ``p_norm_local``, (N, 3)) |

In these files the *y* axis is the shower axis, in layer units (0 to n_layers), x and z are in mm
and e is in GeV. They map onto our local frame (shower axis +z) by a cyclic permutation of the axes,
which is a rotation (right-handed frames stay right-handed)::

    our x_mm  = file z   (mm)
    our y_mm  = file x   (mm)
    our layer = floor(file y)  (or the continuous depth with ``continuous_depth=True``)
    our e_MeV = 1000 * file e  (GeV -> MeV)

This is the same mapping as for the ILD barrel in :mod:`caloclouds.io.edm4hep` (beam axis -> x).
When P == 4 the layout is ambiguous and (N, P, 4) is assumed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from caloclouds.config import ILD_LIKE_DETECTOR, DetectorConfig
from caloclouds.errors import InputFileError
from caloclouds.showers import Showers

__all__ = ["is_caloclouds_hdf5", "iter_caloclouds_hdf5", "read_caloclouds_hdf5", "count_caloclouds_hdf5"]

MEV_PER_GEV = 1000.0
_FILE_X, _FILE_Y, _FILE_Z, _FILE_E = range(4)
_DEFAULT_CHUNK_SHOWERS = 10000


def is_caloclouds_hdf5(path: str | Path) -> bool:
    """True if ``path`` is an HDF5 file with ``events`` and ``energy`` datasets."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "events" in f and "energy" in f
    except OSError:
        return False


def _layout(path: Path, events: Any) -> str:
    shape = events.shape
    if events.ndim != 3 or 4 not in shape[1:]:
        raise InputFileError(path, f"expected shape (N, P, 4) or (N, 4, P), found {shape}", where="events")
    return "npc" if shape[2] == 4 else "ncp"


def count_caloclouds_hdf5(path: str | Path) -> int:
    """Number of showers in a CaloClouds file (reads no points)."""
    from caloclouds.io.hdf5 import _open_h5

    with _open_h5(Path(path)) as f:
        if "events" not in f:
            raise InputFileError(path, f"missing dataset 'events'; found {sorted(f)}")
        return int(f["events"].shape[0])


def iter_caloclouds_hdf5(
    path: str | Path,
    *,
    detector: DetectorConfig | None = None,
    continuous_depth: bool = False,
    chunk_showers: int = _DEFAULT_CHUNK_SHOWERS,
) -> Iterator[Showers]:
    """Read a CaloClouds file chunk by chunk, dropping the padding and mapping axes (module docstring).

    Args:
        path: the ``.hdf5`` file.
        detector: gives ``n_layers``, the allowed depth range (default: the ILD-like detector).
        continuous_depth: keep the depth in layer units instead of ``floor(depth)``.
        chunk_showers: showers read per chunk.

    Yields:
        :class:`Showers` with ``e_MeV`` in MeV and, if present, the condition ``p_norm_local`` (N, 3).
    """
    from caloclouds.io.hdf5 import _open_h5

    path = Path(path)
    n_layers = (detector or ILD_LIKE_DETECTOR).n_layers
    with _open_h5(path) as f:
        missing = [k for k in ("events", "energy") if k not in f]
        if missing:
            raise InputFileError(path, f"missing dataset(s) {missing} of the CaloClouds format; found {sorted(f)}")
        events, energy_ds = f["events"], f["energy"]
        layout = _layout(path, events)
        n = events.shape[0]
        if energy_ds.shape[0] != n or int(np.prod(energy_ds.shape)) != n:
            raise InputFileError(path, f"shape {energy_ds.shape} does not match {n} events", where="energy")
        direction = None
        if "p_norm_local" in f:
            d = f["p_norm_local"]
            if d.shape == (3, n):
                direction = d[()].T
            elif d.shape == (n, 3):
                direction = d[()]
        for start in range(0, n, chunk_showers):
            stop = min(start + chunk_showers, n)
            try:
                block = events[start:stop]
                energy = energy_ds[start:stop].reshape(-1).astype(np.float32)
            except OSError as exc:
                raise InputFileError(path, f"cannot read data (truncated file?): {exc}", where="events") from None
            if layout == "ncp":
                block = block.transpose(0, 2, 1)
            yield _to_showers(path, block, energy, direction, start, n_layers, continuous_depth)


def _to_showers(
    path: Path,
    block: np.ndarray,
    energy_gev: np.ndarray,
    direction: np.ndarray | None,
    start: int,
    n_layers: int,
    continuous_depth: bool,
) -> Showers:
    if not np.all(np.isfinite(block)):
        bad = np.argwhere(~np.isfinite(block))[0]
        raise InputFileError(path, f"NaN or inf in event {start + bad[0]}, row {bad[1]}", where="events")
    if not np.all(np.isfinite(energy_gev)):
        raise InputFileError(path, "NaN or inf incident energies", where="energy")
    e = block[:, :, _FILE_E]
    if np.any(e < 0):
        bad = np.argwhere(e < 0)[0]
        raise InputFileError(
            path, f"negative energy {e[bad[0], bad[1]]:g} GeV in event {start + bad[0]}, row {bad[1]}", where="events"
        )
    real = e > 0
    rows = block[real]  # (P, 4), event-major order, padding dropped wherever it is
    depth = rows[:, _FILE_Y]
    if rows.size and (depth.min() < 0 or depth.max() > n_layers):
        msg = (
            f"depth (file y axis) spans {depth.min():g}..{depth.max():g}, outside 0..{n_layers} "
            "layer units: is y the shower axis in layer units?"
        )
        raise InputFileError(path, msg, where="events")
    layer = depth if continuous_depth else np.minimum(np.floor(depth), n_layers - 1)
    points = np.stack([rows[:, _FILE_Z], rows[:, _FILE_X], layer, rows[:, _FILE_E] * MEV_PER_GEV], axis=1).astype(
        np.float32
    )
    conditions = {}
    if direction is not None:
        conditions["p_norm_local"] = direction[start : start + len(block)].astype(np.float32)
    return Showers.from_counts(points, real.sum(axis=1), energy_gev, conditions)


def read_caloclouds_hdf5(
    path: str | Path,
    *,
    detector: DetectorConfig | None = None,
    continuous_depth: bool = False,
) -> Showers:
    """Read a whole CaloClouds file (see :func:`iter_caloclouds_hdf5`)."""
    parts = list(iter_caloclouds_hdf5(path, detector=detector, continuous_depth=continuous_depth))
    return Showers.concatenate(parts) if parts else Showers.empty()
