"""Clustering of raw Geant4 steps onto the sub-cell grid (../shared/data/README.md, "Clustering").

In each shower the steps are grouped by silicon layer; each layer is binned on a square grid of pitch
``DetectorConfig.subcell_pitch_mm`` (6 x 6 sub-cells per ILD cell, the "x36" grid) whose edges are at
multiples of the pitch from x = y = 0 (the shower axis). One point per occupied sub-cell is placed at
the sub-cell centre ``(i + 1/2) * pitch`` and carries the summed energy. Points come out ordered by
shower, layer, x index, y index: the order of the shared ``g4_photons_*.h5`` files, whose point
coordinates this reproduces bit for bit.

The raw-steps HDF5 file (``g4_raw_steps_sample.h5``) has our schema, but its ``points`` columns are
``x_mm, y_mm, z_mm, e_MeV``, one row per step. A step's layer is the silicon layer whose slab
``[silicon_front_mm[k], silicon_front_mm[k] + silicon_thickness_mm]`` contains its z (within
:data:`Z_TOLERANCE_MM`, for float32 rounding at the slab faces).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from caloclouds.config import ILD_LIKE_DETECTOR, DetectorConfig
from caloclouds.errors import InputFileError
from caloclouds.showers import Showers

__all__ = ["Z_TOLERANCE_MM", "STEP_COLUMNS", "cluster_steps", "layer_from_z", "read_steps_hdf5", "is_steps_hdf5"]

Z_TOLERANCE_MM = 0.01  # A step may lie this far outside its silicon slab (float32 rounding of z).
STEP_COLUMNS = ("x_mm", "y_mm", "z_mm", "e_MeV")


def layer_from_z(z_mm: np.ndarray, detector: DetectorConfig) -> tuple[np.ndarray, np.ndarray]:
    """Silicon layer index of each step from its depth.

    Args:
        z_mm: (S,) step depth in the local frame (front face of the calorimeter at z = 0).
        detector: silicon positions and thickness.

    Returns:
        ``(layer, inside)``: (S,) int64 index of the nearest silicon layer, and (S,) bool, True where
        the step lies in that layer's slab (within :data:`Z_TOLERANCE_MM`).
    """
    front = np.asarray(detector.silicon_front_mm, dtype=np.float64)
    centre = front + detector.silicon_thickness_mm / 2
    z = np.asarray(z_mm, dtype=np.float64)
    layer = np.searchsorted((centre[1:] + centre[:-1]) / 2, z).astype(np.int64)
    distance = np.abs(z - centre[layer]) - detector.silicon_thickness_mm / 2
    return layer, distance <= Z_TOLERANCE_MM


def cluster_steps(
    x_mm: np.ndarray,
    y_mm: np.ndarray,
    layer: np.ndarray,
    e_mev: np.ndarray,
    shower_index: np.ndarray,
    n_showers: int,
    *,
    pitch_mm: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Sum the energy of the steps in each (shower, layer, sub-cell); one point per occupied sub-cell.

    Args:
        x_mm, y_mm: (S,) transverse step positions in the shower's local frame (axis at x = y = 0).
        layer: (S,) integer layer of each step.
        e_mev: (S,) deposited energy of each step in MeV.
        shower_index: (S,) shower of each step, in ``0 .. n_showers - 1`` (any order).
        n_showers: number of showers (showers without steps get no points).
        pitch_mm: sub-cell pitch; grid edges at multiples of it.

    Returns:
        ``(points, counts)``: (P, 4) float32 ``x_mm, y_mm, layer, e_MeV`` at the sub-cell centres,
        ordered by shower, layer, x index, y index; (n_showers,) int64 points per shower.
        Energies are summed in float64, so each shower keeps its step energy to float32 precision.
    """
    ix = np.floor(np.asarray(x_mm, np.float64) / pitch_mm).astype(np.int64)
    iy = np.floor(np.asarray(y_mm, np.float64) / pitch_mm).astype(np.int64)
    layer = np.asarray(layer).astype(np.int64)
    shower = np.asarray(shower_index, np.int64)
    order = np.lexsort((iy, ix, layer, shower))
    keys = np.stack([shower[order], layer[order], ix[order], iy[order]])
    new_group = np.ones(len(order), dtype=bool)
    if len(order):
        new_group[1:] = np.any(keys[:, 1:] != keys[:, :-1], axis=0)
    starts = np.flatnonzero(new_group)
    energy = np.add.reduceat(np.asarray(e_mev, np.float64)[order], starts) if len(starts) else np.zeros(0)
    s, lay, gx, gy = keys[:, starts]
    points = np.stack([(gx + 0.5) * pitch_mm, (gy + 0.5) * pitch_mm, lay.astype(np.float64), energy], axis=1).astype(
        np.float32
    )
    counts = np.bincount(s, minlength=n_showers).astype(np.int64)
    return points, counts


def is_steps_hdf5(path: str | Path) -> bool:
    """True if ``path`` is an HDF5 file of our schema whose points hold raw steps (a ``z_mm`` column)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "points" not in f:
                return False
            columns = f["points"].attrs.get("columns", f.attrs.get("columns", ""))
            columns = columns.decode() if isinstance(columns, bytes) else str(columns)
            return "z_mm" in columns.split(",")
    except OSError:
        return False


def read_steps_hdf5(
    path: str | Path,
    *,
    detector: DetectorConfig | None = None,
    start: int = 0,
    stop: int | None = None,
) -> Showers:
    """Read raw steps (``x_mm, y_mm, z_mm, e_MeV`` rows) and cluster them onto the sub-cell grid.

    Args:
        path: HDF5 file with our ragged schema and step columns (``g4_raw_steps_sample.h5``).
        detector: silicon layers and grid pitch (default: the ILD-like detector).
        start, stop: range of showers to read.

    Returns:
        The clustered showers; per-shower datasets of the file (``raw_visible_mev``, ``raw_steps``)
        are kept as conditions.
    """
    from caloclouds.io.hdf5 import ShowerFile

    detector = detector or ILD_LIKE_DETECTOR
    with ShowerFile(path, check_values=True) as f:
        columns = tuple(f.columns.split(","))
        if columns not in (STEP_COLUMNS, (*STEP_COLUMNS[:3], "e_mev")):
            msg = f"expected step columns {','.join(STEP_COLUMNS)}, found {f.columns!r}"
            raise InputFileError(path, msg, where="points")
        steps = f.read(start, stop)
    x, y, z, e = steps.points.T
    layer, inside = layer_from_z(z, detector)
    if not np.all(inside):
        row = int(np.argmax(~inside))
        msg = (
            f"step {row} at z = {z[row]:.4f} mm is not in any silicon layer of detector "
            f"{detector.name!r} (silicon fronts {detector.silicon_front_mm[0]}..{detector.silicon_front_mm[-1]} mm, "
            f"thickness {detector.silicon_thickness_mm} mm)"
        )
        raise InputFileError(path, msg, where="points")
    points, counts = cluster_steps(x, y, layer, e, steps.shower_index, len(steps), pitch_mm=detector.subcell_pitch_mm)
    return Showers.from_counts(points, counts, steps.incident_energy_gev, steps.conditions)
