"""ROOT output via uproot: one TTree ``events``, one entry per shower, flat jagged branches.

| branch                    | type              | meaning                                      |
|---------------------------|-------------------|----------------------------------------------|
| ``incident_energy_gev``   | float32           | incident energy                              |
| ``npoints``               | int32             | number of points (counter of ``points_*``)   |
| ``points_x_mm``, ``points_y_mm`` | float32[npoints] | point position, local frame (axis +z)  |
| ``points_layer``          | float32[npoints]  | layer index (0-based) or depth in layer units |
| ``points_e_MeV``          | float32[npoints]  | point energy                                 |
| ``ncells``                | int32             | number of cell hits (only with ``cells``)    |
| ``cells_cell_id``         | int64[ncells]     | cell identifier of the geometry              |
| ``cells_x_mm``, ``cells_y_mm``, ``cells_z_mm`` | float32[ncells] | cell centre                |
| ``cells_layer``           | int64[ncells]     | detector layer                               |
| ``cells_e_MeV``           | float32[ncells]   | cell energy                                  |
| ``cells_lost_mev``, ``cells_below_threshold_mev`` | float64 | energy lost outside cells / below threshold |
| any condition             | its dtype (and fixed shape) | per-shower conditions, e.g. ``raw_visible_mev`` |

A TObjString ``caloclouds_meta`` holds JSON: ``format`` (``"caloclouds-root"``), ``format_version``,
``conditions`` (the condition branch names) and ``attrs`` (free metadata). :class:`RootWriter` appends
chunk by chunk (each chunk becomes one basket per branch, so memory stays constant) to a temporary
file that is renamed to its final name on success.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from caloclouds.io.atomic import AtomicWriter
from caloclouds.errors import InputFileError
from caloclouds.showers import COLUMNS, Showers

__all__ = [
    "RootWriter", "write_root", "read_root", "iter_root", "count_root", "is_caloclouds_root", "required_branches",
    "TREE", "META_KEY",
]

TREE = "events"
META_KEY = "caloclouds_meta"
FORMAT_NAME = "caloclouds-root"
FORMAT_VERSION = 1
_CELL_FIELDS = {  # CellHits attribute -> (branch field, dtype)
    "cell_id": ("cell_id", np.int64),
    "x_mm": ("x_mm", np.float32),
    "y_mm": ("y_mm", np.float32),
    "z_mm": ("z_mm", np.float32),
    "layer": ("layer", np.int64),
    "e_mev": ("e_MeV", np.float32),
}
_CELL_SUMMARIES = ("lost_mev", "below_threshold_mev")
_DEFAULT_CHUNK_SHOWERS = 10000


def _counter(name: str) -> str:
    return f"n{name}"


def _field(outer: str, inner: str) -> str:
    return f"{outer}_{inner}"


class RootWriter(AtomicWriter):
    """Append showers (and optionally their cell hits) chunk by chunk to a ROOT file.

    Example::

        with RootWriter("out.root", attrs={"model": "cm"}) as w:
            for showers, cells in batches:
                w.write(showers, cells=cells)

    Args:
        path: final file name; the data goes to a hidden temporary file next to it until :meth:`close`.
        attrs: JSON-serialisable metadata stored in ``caloclouds_meta``.
    """

    def __init__(self, path: str | Path, *, attrs: dict[str, Any] | None = None) -> None:
        import uproot

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._attrs = dict(attrs or {})
        self._file = uproot.recreate(self._tmp)
        self._tree: Any = None
        self._conditions: list[str] = []
        self._with_cells = False
        self._open = True
        self.n_showers = 0

    def _chunk(self, showers: Showers, cells: Any | None) -> dict[str, Any]:
        import awkward as ak

        counts = showers.n_points
        data: dict[str, Any] = {
            "incident_energy_gev": showers.incident_energy_gev,
            "points": ak.zip(
                {c: ak.unflatten(np.ascontiguousarray(showers.points[:, i]), counts) for i, c in enumerate(COLUMNS)}
            ),
        }
        if cells is not None:
            offsets = np.asarray(cells.offsets, np.int64)
            if len(offsets) != len(showers) + 1:
                raise ValueError(f"cells has {len(offsets) - 1} showers but showers has {len(showers)}")
            cell_counts = np.diff(offsets)
            data["cells"] = ak.zip(
                {
                    name: ak.unflatten(np.asarray(getattr(cells, attr), dtype)[offsets[0] : offsets[-1]], cell_counts)
                    for attr, (name, dtype) in _CELL_FIELDS.items()
                }
            )
            for attr in _CELL_SUMMARIES:
                data[_field("cells", attr)] = np.asarray(getattr(cells, attr), np.float64)
        for k, v in showers.conditions.items():
            data[k] = np.asarray(v)
        return data

    def _make_tree(self, showers: Showers, data: dict[str, Any], *, with_cells: bool) -> None:
        self._conditions = sorted(showers.conditions)
        self._with_cells = with_cells
        reserved = {"incident_energy_gev", _counter("points"), _counter("cells")}
        clash = [k for k in self._conditions if k in reserved or k.startswith(("points_", "cells_"))]
        if clash:
            raise ValueError(f"condition names {clash} clash with the branch names of the ROOT layout")
        types = {}
        for key, value in data.items():
            if key in ("points", "cells"):
                types[key] = value.type.content  # record of jagged lists
            else:
                value = np.asarray(value)
                types[key] = value.dtype if value.ndim == 1 else np.dtype((value.dtype, value.shape[1:]))
        self._tree = self._file.mktree(TREE, types, counter_name=_counter, field_name=_field)

    def write(self, showers: Showers, cells: Any | None = None) -> None:
        """Append a chunk of showers; ``cells`` (CellHits-like) must be given for all chunks or none."""
        if not self._open:
            raise ValueError(f"RootWriter for {self.path} is closed")
        if len(showers) == 0:
            return
        data = self._chunk(showers, cells)
        if self._tree is None:
            self._make_tree(showers, data, with_cells=cells is not None)
        else:
            if sorted(showers.conditions) != self._conditions:
                msg = f"conditions changed between chunks: {sorted(showers.conditions)} vs {self._conditions}"
                raise ValueError(msg)
            if (cells is not None) != self._with_cells:
                raise ValueError("cells must be given for every chunk or for none")
        self._tree.extend(data)
        self.n_showers += len(showers)

    def close(self) -> None:
        """Write the metadata, close the file and move it to its final name."""
        if not self._open:
            return
        if self._tree is None:  # nothing written: still a valid file with an empty tree
            empty = Showers.empty()
            self._make_tree(empty, self._chunk(empty, None), with_cells=False)
        meta = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "conditions": self._conditions,
            "cells": self._with_cells,
            "attrs": self._attrs,
        }
        self._file[META_KEY] = json.dumps(meta, default=str)
        self._file.close()
        self._open = False
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the temporary file; the final name is left untouched."""
        if self._open:
            self._file.close()
            self._open = False
        self._tmp.unlink(missing_ok=True)



def write_root(
    path: str | Path, showers: Showers, *, cells: Any | None = None, attrs: dict[str, Any] | None = None
) -> None:
    """Write showers (and optionally their CellHits-like ``cells``) to a ROOT file, atomically."""
    with RootWriter(path, attrs=attrs) as w:
        w.write(showers, cells=cells)


# -- reading --------------------------------------------------------------------------------------

def required_branches() -> list[str]:
    """Branches every file of this layout has."""
    return ["incident_energy_gev", _counter("points"), *(_field("points", c) for c in COLUMNS)]


def _open_tree(path: Path) -> tuple[Any, Any, dict[str, Any]]:
    from caloclouds.io.edm4hep import open_root_file

    f = open_root_file(path)
    try:
        if TREE not in f:
            raise InputFileError(path, f"no TTree {TREE!r}; found {f.keys()}")
        tree = f[TREE]
        meta: dict[str, Any] = json.loads(str(f[META_KEY])) if META_KEY in f else {}
        missing = [b for b in required_branches() if b not in tree.keys()]
        if missing:
            raise InputFileError(path, f"missing branches {missing}; found {tree.keys()}", where=TREE)
    except InputFileError:
        f.close()
        raise
    except Exception as exc:  # uproot raises many types for corrupt files
        f.close()
        raise InputFileError(path, f"cannot read TTree {TREE!r} (truncated or corrupt?): {exc}") from None
    return f, tree, meta


def is_caloclouds_root(path: str | Path) -> bool:
    """True if ``path`` is a ROOT file written by :class:`RootWriter` (or with its branch layout)."""
    try:
        f, _, _ = _open_tree(Path(path))
    except (InputFileError, OSError, ValueError):
        return False
    f.close()
    return True


def count_root(path: str | Path) -> int:
    """Number of showers in one of our ROOT files."""
    f, tree, _ = _open_tree(Path(path))
    with f:
        return int(tree.num_entries)


def iter_root(path: str | Path, *, chunk_showers: int = _DEFAULT_CHUNK_SHOWERS) -> Iterator[Showers]:
    """Read one of our ROOT files chunk by chunk (conditions listed in ``caloclouds_meta`` are kept)."""
    path = Path(path)
    f, tree, meta = _open_tree(path)
    with f:
        conditions = [c for c in meta.get("conditions", []) if c in tree.keys()]
        names = [*required_branches(), *conditions]
        try:
            for chunk in tree.iterate(names, step_size=chunk_showers, library="ak"):
                yield _chunk_to_showers(path, chunk, conditions)
        except InputFileError:
            raise
        except Exception as exc:  # uproot raises many types for corrupt baskets
            msg = f"cannot read branches (truncated or corrupt file?): {exc}"
            raise InputFileError(path, msg, where=TREE) from None


def _chunk_to_showers(path: Path, chunk: Any, conditions: list[str]) -> Showers:
    import awkward as ak

    counts = ak.to_numpy(chunk[_counter("points")]).astype(np.int64)
    points = np.stack([ak.to_numpy(ak.flatten(chunk[_field("points", c)])) for c in COLUMNS], axis=1)
    if len(points) != counts.sum():
        msg = f"npoints sums to {counts.sum()} but there are {len(points)} points"
        raise InputFileError(path, msg, where="npoints")
    showers = Showers.from_counts(
        points, counts, ak.to_numpy(chunk["incident_energy_gev"]), {k: ak.to_numpy(chunk[k]) for k in conditions}
    )
    problem = showers.check_values()
    if problem:
        raise InputFileError(path, problem, where=TREE)
    return showers


def read_root(path: str | Path) -> Showers:
    """Read back the showers of a file written by :func:`write_root` (cells are not read)."""
    parts = list(iter_root(path))
    return Showers.concatenate(parts) if parts else Showers.empty()
