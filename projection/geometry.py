"""The readout geometry model: layers at a depth, each with a table of cells.

A :class:`Geometry` is plain data:

* a list of layers with their depth ``layer_z_mm``;
* the cell table: for cell ``c`` (its ``cell_id``), ``cell_layer[c]``, the centre
  ``cell_x_mm[c], cell_y_mm[c]`` in the local frame of the geometry and the cell size
  ``cell_size_mm[c]`` (side of a square, flat-to-flat pitch of a hexagon). Cell ids are
  layer-major: ``cell_layer`` never decreases;
* ``cell_shape``: ``"square"``, ``"hex_flat"`` (flat-top, vertices on +-x), ``"hex_pointy"`` or
  ``"point"`` (Voronoi cells of arbitrary centres);
* ``kind`` and ``tables``: the description that the exact cell-assignment rule of that kind needs
  (pitches, origins, dense lookup tables), all as numpy arrays.

Geometries are saved to and loaded from one ``.npz`` file (see :func:`save_geometry`; :func:`projection.registry.load_geometry` reads it), holding the
arrays above under their names plus ``format_version``, ``name``, ``kind``, ``cell_shape``,
``default_layer_map`` and ``table/<key>`` for each kind-specific table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from caloclouds.errors import InputFileError
from caloclouds.io.atomic import atomic_path

__all__ = ["Geometry", "save_geometry", "read_npz", "GEOMETRY_FORMAT_VERSION", "CELL_SHAPES", "CELL_ARRAYS"]

GEOMETRY_FORMAT_VERSION = 1
CELL_SHAPES = ("square", "hex_flat", "hex_pointy", "point")
CELL_ARRAYS = ("cell_layer", "cell_x_mm", "cell_y_mm", "cell_size_mm")


@dataclass(eq=False)
class Geometry:
    """A readout geometry (see the module docstring).

    Args:
        name: short name, written to outputs.
        kind: assignment rule: ``"square_grid"``, ``"square_cells"``, ``"hex_lattice"``,
            ``"hgcal"`` or ``"voronoi"``.
        layer_z_mm: (L,) depth of each detector layer (mm).
        cell_layer: (C,) int64 layer of each cell, non-decreasing.
        cell_x_mm: (C,) float32 cell centre x (mm, local frame).
        cell_y_mm: (C,) float32 cell centre y (mm, local frame).
        cell_size_mm: (C,) float32 square side or hexagon flat-to-flat pitch (mm).
        cell_shape: one of :data:`CELL_SHAPES`.
        tables: kind-specific arrays used by the assignment rule.
        default_layer_map: layer map used when :func:`projection.project` gets ``layer_map=None``:
            ``"identity"`` or ``"linear"`` (see :mod:`projection.placement`).
        extras: optional per-cell arrays kept for the user (e.g. ``detid`` for HGCal).
    """

    name: str
    kind: str
    layer_z_mm: np.ndarray
    cell_layer: np.ndarray
    cell_x_mm: np.ndarray
    cell_y_mm: np.ndarray
    cell_size_mm: np.ndarray
    cell_shape: str
    tables: dict[str, np.ndarray]
    default_layer_map: str = "identity"
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    _device_cache: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False, init=False)

    def __post_init__(self) -> None:
        self.layer_z_mm = np.asarray(self.layer_z_mm, dtype=np.float64).reshape(-1)
        self.cell_layer = np.asarray(self.cell_layer, dtype=np.int64).reshape(-1)
        self.cell_x_mm = np.asarray(self.cell_x_mm, dtype=np.float32).reshape(-1)
        self.cell_y_mm = np.asarray(self.cell_y_mm, dtype=np.float32).reshape(-1)
        self.cell_size_mm = np.asarray(self.cell_size_mm, dtype=np.float32).reshape(-1)
        self.tables = {k: np.asarray(v) for k, v in self.tables.items()}
        self.extras = {k: np.asarray(v) for k, v in self.extras.items()}
        problem = self.check()
        if problem:
            msg = f"inconsistent geometry {self.name!r}: {problem}"
            raise ValueError(msg)

    def check(self) -> str | None:
        """A description of the first structural problem, or None."""
        c = len(self.cell_layer)
        for key in CELL_ARRAYS[1:]:
            if len(getattr(self, key)) != c:
                return f"{key} has {len(getattr(self, key))} entries, expected {c} (cells)"
        for key, value in self.extras.items():
            if len(value) != c:
                return f"extras[{key!r}] has {len(value)} entries, expected {c} (cells)"
        if self.cell_shape not in CELL_SHAPES:
            return f"cell_shape {self.cell_shape!r} is not one of {CELL_SHAPES}"
        if self.default_layer_map not in ("identity", "linear"):
            return f"default_layer_map {self.default_layer_map!r} is not 'identity' or 'linear'"
        if len(self.layer_z_mm) == 0:
            return "no layers"
        if c and (self.cell_layer.min() < 0 or self.cell_layer.max() >= self.n_layers):
            return f"cell_layer outside 0..{self.n_layers - 1}"
        if c and np.any(np.diff(self.cell_layer) < 0):
            return "cell_layer must be non-decreasing (cell ids are layer-major)"
        if not (np.all(np.isfinite(self.cell_x_mm)) and np.all(np.isfinite(self.cell_y_mm))):
            return "cell centres contain NaN or inf"
        return None

    @property
    def n_layers(self) -> int:
        return len(self.layer_z_mm)

    @property
    def n_cells(self) -> int:
        return len(self.cell_layer)

    def cells_per_layer(self) -> np.ndarray:
        """(L,) number of cells of each layer."""
        return np.bincount(self.cell_layer, minlength=self.n_layers)

    def numpy_tables(self) -> dict[str, np.ndarray]:
        """The kind-specific tables plus the cell arrays (no copies)."""
        arrays = dict(self.tables)
        arrays.update(cell_layer=self.cell_layer, cell_x_mm=self.cell_x_mm, cell_y_mm=self.cell_y_mm)
        return arrays

    def torch_tables(self, device: Any) -> dict[str, Any]:
        """The kind-specific tables plus the cell arrays as tensors on ``device`` (cached)."""
        import torch

        key = str(torch.device(device))
        if key not in self._device_cache:
            arrays = dict(self.tables)
            arrays.update(
                cell_layer=self.cell_layer,
                cell_x_mm=self.cell_x_mm,
                cell_y_mm=self.cell_y_mm,
                layer_z_mm=self.layer_z_mm.astype(np.float32),
            )
            self._device_cache[key] = {
                k: torch.as_tensor(v if v.flags.c_contiguous else np.ascontiguousarray(v), device=device)
                for k, v in arrays.items()
            }
        return self._device_cache[key]

    def __repr__(self) -> str:
        return (
            f"Geometry(name={self.name!r}, kind={self.kind!r}, layers={self.n_layers}, "
            f"cells={self.n_cells}, shape={self.cell_shape!r})"
        )


def save_geometry(geometry: Geometry, path: str | Path) -> None:
    """Write ``geometry`` to one ``.npz`` file (atomically); :func:`projection.registry.load_geometry` reads it back."""
    arrays: dict[str, np.ndarray] = {
        "format_version": np.int64(GEOMETRY_FORMAT_VERSION),
        "name": np.str_(geometry.name),
        "kind": np.str_(geometry.kind),
        "cell_shape": np.str_(geometry.cell_shape),
        "default_layer_map": np.str_(geometry.default_layer_map),
        "layer_z_mm": geometry.layer_z_mm,
    }
    for key in CELL_ARRAYS:
        arrays[key] = getattr(geometry, key)
    for key, value in geometry.tables.items():
        arrays[f"table/{key}"] = value
    for key, value in geometry.extras.items():
        arrays[f"extra/{key}"] = value
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def read_npz(path: Path, required: tuple[str, ...], what: str) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file, with one clear error if it is missing, unreadable or incomplete.

    Args:
        path: the file.
        required: array names that must be present.
        what: what the file is, for the messages ("geometry file", "HGCal geometry file", ...).
    """
    if not path.is_file():
        raise InputFileError(path, f"{what} not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            content = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise InputFileError(path, f"not a readable .npz {what}: {exc}") from None
    missing = [k for k in required if k not in content]
    if missing:
        raise InputFileError(path, f"missing arrays {missing}; a {what} needs {list(required)}")
    return content
