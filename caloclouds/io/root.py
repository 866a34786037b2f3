"""ROOT output via uproot: one TTree ``events``, one entry per shower, flat jagged branches.

Schema version 2 (written now):

| branch                    | type              | meaning                                      |
|---------------------------|-------------------|----------------------------------------------|
| ``incident_energy_gev``   | float32           | incident energy (per shower)                 |
| ``n_points``              | int32             | number of points (counter of ``points_*``)   |
| ``points_x_mm``, ``points_y_mm`` | float32[n_points] | point position, local frame (axis +z) |
| ``points_layer``          | int32[n_points]   | layer index, 0-based                         |
| ``points_e_mev``          | float32[n_points] | point energy                                 |
| ``n_cells``               | int32             | number of cell hits (only with cells)        |
| ``cells_cell_id``         | int64[n_cells]    | cell identifier of the geometry              |
| ``cells_x_mm``, ``cells_y_mm``, ``cells_z_mm`` | float32[n_cells] | cell centre                |
| ``cells_layer``           | int32[n_cells]    | detector layer                               |
| ``cells_e_mev``           | float32[n_cells]  | cell energy                                  |
| ``lost_mev``, ``below_threshold_mev`` | float64 | per shower: energy outside cells / below threshold |
| any condition             | its dtype (and fixed shape) | per shower, e.g. ``raw_visible_mev`` |

Every branch without a ``points_``/``cells_`` prefix holds one value per shower. The tree's title says
so. A one-entry TTree ``metadata`` holds typed metadata: ``format`` (``"caloclouds-root"``),
``schema_version`` (2), ``conditions`` (comma-separated condition branches), ``cells`` (bool) and the
writer's attributes (numbers as double/int64, strings as char*, lists as fixed-size arrays).

Version 1 files (``npoints``, ``points_e_MeV``, float ``points_layer``, ``cells_lost_mev``, JSON
metadata in the TObjString ``caloclouds_meta``) are read as well.

:class:`RootWriter` buffers chunks and writes them in blocks (each block is one basket per branch,
so memory stays bounded) to a temporary file renamed to its final name on success. Its baskets are
ZSTD-compressed (level 1; ROOT reads ZSTD since 6.20), which is 3-4 times faster than uproot's
default ZLIB level 1 on these showers and makes no larger files; ZLIB where uproot cannot write ZSTD.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from caloclouds.errors import InputFileError
from caloclouds.io.atomic import AtomicWriter, check_output_path, rename_unless_signalled, temp_path_for
from caloclouds.io.checks import direction_problem
from caloclouds.io.metadata import SCHEMA_VERSION, typed_metadata
from caloclouds.showers import COLUMNS, Showers

__all__ = [
    "RootWriter",
    "write_root",
    "read_root",
    "iter_root",
    "count_root",
    "is_caloclouds_root",
    "required_branches",
    "read_root_metadata",
    "TREE",
    "META_TREE",
    "META_KEY",
]

TREE = "events"
META_TREE = "metadata"
META_KEY = "caloclouds_meta"  # schema version 1: JSON in a TObjString
FORMAT_NAME = "caloclouds-root"
TREE_TITLE = (
    "caloclouds showers (schema 2): one entry per shower; points_* per point, cells_* per cell hit, "
    "every other branch per shower; energies in MeV, lengths in mm, incident energy in GeV"
)
_POINT_TYPES = {"x_mm": np.float32, "y_mm": np.float32, "layer": np.int32, "e_mev": np.float32}
_CELL_FIELDS = {  # CellHits attribute -> (branch field, dtype)
    "cell_id": ("cell_id", np.int64),
    "x_mm": ("x_mm", np.float32),
    "y_mm": ("y_mm", np.float32),
    "z_mm": ("z_mm", np.float32),
    "layer": ("layer", np.int32),
    "e_mev": ("e_mev", np.float32),
}
_CELL_SUMMARIES = ("lost_mev", "below_threshold_mev")
_V1 = {"counter": "npoints", "cells_counter": "ncells", "e": "e_MeV", "cell_e": "e_MeV", "summary": "cells_{}"}
_V2 = {"counter": "n_points", "cells_counter": "n_cells", "e": "e_mev", "cell_e": "e_mev", "summary": "{}"}
_DEFAULT_CHUNK_SHOWERS = 10000
_STEP_BYTES = 16 * 1024 * 1024  # bound on the uncompressed bytes read per step
_FLUSH_POINTS = 262144
_FLUSH_SHOWERS = 4096


def _basket_compression() -> Any:
    """The compression of the written baskets: ZSTD level 1 where uproot can write it (its cramjam
    backend), else uproot's default ZLIB level 1 (the same files, only slower to write)."""
    import uproot

    try:
        zstd = uproot.ZSTD(1)
        zstd.compress(b"caloclouds")
    except Exception:  # an uproot without a ZSTD backend
        return uproot.ZLIB(1)
    return zstd


def _counter(name: str) -> str:
    return f"n_{name}"


def _field(outer: str, inner: str) -> str:
    return f"{outer}_{inner}"


def _concat_cells(parts: list[Any]) -> Any:
    """One CellHits-like namespace from consecutive blocks."""
    offsets = [np.asarray(parts[0].offsets, np.int64) - int(parts[0].offsets[0])]
    for p in parts[1:]:
        o = np.asarray(p.offsets, np.int64)
        offsets.append(o[1:] - o[0] + offsets[-1][-1])
    out = {"offsets": np.concatenate(offsets)}
    for attr in (*_CELL_FIELDS, *_CELL_SUMMARIES):
        out[attr] = np.concatenate(
            [
                np.asarray(getattr(p, attr))[int(p.offsets[0]) : int(p.offsets[-1])]
                if attr in _CELL_FIELDS
                else np.asarray(getattr(p, attr))
                for p in parts
            ]
        )
    return SimpleNamespace(**out)


def _slice_cells(cells: Any, start: int, stop: int) -> Any:
    """Showers ``start:stop`` of a CellHits-like namespace (offsets from 0)."""
    offsets = np.asarray(cells.offsets, np.int64)
    lo, hi = int(offsets[start]), int(offsets[stop])
    out = {"offsets": offsets[start : stop + 1] - lo}
    out.update({attr: np.asarray(getattr(cells, attr))[lo:hi] for attr in _CELL_FIELDS})
    out.update({attr: np.asarray(getattr(cells, attr))[start:stop] for attr in _CELL_SUMMARIES})
    return SimpleNamespace(**out)


class RootWriter(AtomicWriter):
    """Append showers (and optionally their cell hits) chunk by chunk to a ROOT file.

    Example::

        with RootWriter("out.root", attrs={"model": "cm"}) as w:
            for showers, cells in batches:
                w.write(showers, cells=cells)

    Args:
        path: final file name; the data goes to a hidden temporary file next to it until :meth:`close`.
        attrs: metadata stored with its types in the TTree ``metadata`` (None values are dropped).
    """

    def __init__(self, path: str | Path, *, attrs: dict[str, Any] | None = None) -> None:
        import uproot

        self.path = check_output_path(path)
        self._attrs = typed_metadata(attrs)
        self._tmp = temp_path_for(self.path)
        self._file = uproot.recreate(self._tmp, compression=_basket_compression())
        self._tree: Any = None
        self._conditions: list[str] = []
        self._with_cells: bool | None = None
        self._open = True
        self._pending: list[tuple[Showers, Any]] = []
        self._pending_points = 0
        self._pending_showers = 0
        self.n_showers = 0

    def _chunk(self, showers: Showers, cells: Any | None) -> dict[str, Any]:
        import awkward as ak

        counts = showers.n_points
        layer = showers.layer
        if not np.all(layer == np.floor(layer)):
            raise ValueError("ROOT output needs integer layers (points_layer is int32); found fractional depths")
        data: dict[str, Any] = {
            "incident_energy_gev": showers.incident_energy_gev,
            "points": ak.zip(
                {
                    c: ak.unflatten(np.ascontiguousarray(showers.points[:, i]).astype(_POINT_TYPES[c]), counts)
                    for i, c in enumerate(COLUMNS)
                }
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
                data[attr] = np.asarray(getattr(cells, attr), np.float64)
        for k, v in showers.conditions.items():
            data[k] = np.asarray(v)
        return data

    def _make_tree(self, showers: Showers, data: dict[str, Any], *, with_cells: bool) -> None:
        self._conditions = sorted(showers.conditions)
        self._with_cells = with_cells
        reserved = {"incident_energy_gev", _counter("points"), _counter("cells"), *_CELL_SUMMARIES}
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
        self._tree = self._file.mktree(TREE, types, TREE_TITLE, counter_name=_counter, field_name=_field)

    def write(self, showers: Showers, cells: Any | None = None) -> None:
        """Append a chunk of showers; ``cells`` (CellHits-like) must be given for all chunks or none."""
        if not self._open:
            raise ValueError(f"RootWriter for {self.path} is closed")
        if len(showers) == 0:
            return
        if self._with_cells is None:
            self._with_cells = cells is not None
            self._conditions = sorted(showers.conditions)
        elif sorted(showers.conditions) != self._conditions:
            msg = f"conditions changed between chunks: {sorted(showers.conditions)} vs {self._conditions}"
            raise ValueError(msg)
        elif (cells is not None) != self._with_cells:
            raise ValueError("cells must be given for every chunk or for none")
        if cells is not None and hasattr(cells, "numpy"):
            cells = cells.numpy()
        if cells is not None and len(cells.offsets) != len(showers) + 1:
            raise ValueError(f"cells has {len(cells.offsets) - 1} showers but showers has {len(showers)}")
        self._pending.append((showers, cells))
        self._pending_points += len(showers.points)
        self._pending_showers += len(showers)
        self.n_showers += len(showers)
        if self._pending_points >= _FLUSH_POINTS or self._pending_showers >= _FLUSH_SHOWERS:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        showers = Showers.concatenate([s for s, _ in self._pending])
        cells = _concat_cells([c for _, c in self._pending]) if self._with_cells else None
        self._pending.clear()
        self._pending_points = self._pending_showers = 0
        # one basket per block of about _FLUSH_POINTS points, so that readers never need more memory
        start = 0
        while start < len(showers):
            stop = int(np.searchsorted(showers.offsets, showers.offsets[start] + _FLUSH_POINTS, side="right")) - 1
            stop = min(len(showers), max(stop, start + 1))
            part = showers[start:stop]
            part_cells = None if cells is None else _slice_cells(cells, start, stop)
            data = self._chunk(part, part_cells)
            if self._tree is None:
                self._make_tree(part, data, with_cells=cells is not None)
            self._tree.extend(data)
            start = stop

    def _write_metadata(self) -> None:
        import awkward as ak

        meta = {
            **self._attrs,
            "format": FORMAT_NAME,
            "schema_version": SCHEMA_VERSION,
            "conditions": ",".join(self._conditions),
        }
        if not isinstance(self._attrs.get("cells"), str):  # always a string: the cells' geometry, or 'none'
            meta["cells"] = str(self._attrs.get("geometry", "cells")) if self._with_cells else "none"
        data: dict[str, Any] = {}
        for key, value in meta.items():
            if isinstance(value, str):
                data[key] = ak.Array([value])
            else:
                data[key] = np.asarray([value])
        types = {
            k: (
                v.type.content
                if isinstance(v, ak.Array)
                else v.dtype
                if v.ndim == 1
                else np.dtype((v.dtype, v.shape[1:]))
            )
            for k, v in data.items()
        }
        tree = self._file.mktree(META_TREE, types, "caloclouds metadata (one entry)")
        tree.extend(data)

    def update_attrs(self, attrs: dict[str, Any]) -> None:
        """Add or replace entries of the ``metadata`` tree (written when the file closes)."""
        self._attrs.update(typed_metadata(attrs))

    def close(self) -> None:
        """Write the metadata, close the file and move it to its final name."""
        if not self._open:
            return
        self._flush()
        if self._tree is None:  # nothing written: still a valid file with an empty tree
            empty = Showers.empty()
            self._make_tree(empty, self._chunk(empty, None), with_cells=False)
        self._write_metadata()
        self._file.close()
        self._open = False
        rename_unless_signalled(self._tmp, self.path)

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


def required_branches(version: int = SCHEMA_VERSION) -> list[str]:
    """Branches every file of this layout (schema ``version``) has."""
    names = _V2 if version >= 2 else _V1
    columns = (*COLUMNS[:3], names["e"])
    return ["incident_energy_gev", names["counter"], *(_field("points", c) for c in columns)]


def _schema_of(keys: set[str]) -> int | None:
    """2 or 1 if ``keys`` hold the branches of that schema version, else None."""
    for version in (2, 1):
        if set(required_branches(version)) <= keys:
            return version
    return None


def read_root_metadata(f: Any) -> dict[str, Any]:
    """The metadata of an open file: the ``metadata`` tree (v2) or the JSON ``caloclouds_meta`` (v1)."""
    if META_TREE in f:
        record = f[META_TREE].arrays(library="np")
        out = {}
        for key, value in record.items():
            item = value[0]
            out[key] = (
                item.tolist()
                if isinstance(item, np.ndarray)
                else (item.item() if isinstance(item, np.generic) else item)
            )
            if isinstance(out[key], bytes):
                out[key] = out[key].decode(errors="replace")
        conditions = out.get("conditions", "")
        out["conditions"] = [c for c in str(conditions).split(",") if c]
        return out
    if META_KEY in f:
        meta = json.loads(str(f[META_KEY]))
        meta.setdefault("schema_version", 1)
        return meta
    return {"conditions": []}


def _open_tree(path: Path) -> tuple[Any, Any, dict[str, Any], int]:
    from caloclouds.io.edm4hep import open_root_file

    f = open_root_file(path)
    try:
        if TREE not in f:
            raise InputFileError(path, f"no TTree {TREE!r}; found {f.keys()}")
        tree = f[TREE]
        keys = set(tree.keys())
        version = _schema_of(keys)
        if version is None:
            missing = [b for b in required_branches() if b not in keys]
            raise InputFileError(path, f"missing branches {missing}; found {sorted(keys)}", where=TREE)
        meta = read_root_metadata(f)
    except InputFileError:
        f.close()
        raise
    except Exception as exc:  # uproot raises many types for corrupt files
        f.close()
        raise InputFileError(path, f"cannot read TTree {TREE!r} (truncated or corrupt?): {exc}") from None
    return f, tree, meta, version


def is_caloclouds_root(path: str | Path) -> bool:
    """True if ``path`` is a ROOT file written by :class:`RootWriter` (or with its branch layout)."""
    try:
        f, _, _, _ = _open_tree(Path(path))
    except (InputFileError, OSError, ValueError):
        return False
    f.close()
    return True


def count_root(path: str | Path) -> int:
    """Number of showers in one of our ROOT files."""
    f, tree, _, _ = _open_tree(Path(path))
    with f:
        return int(tree.num_entries)


def _entries_per_step(tree: Any, names: list[str], chunk_showers: int) -> int:
    """Showers per read: at most ``chunk_showers`` and about :data:`_STEP_BYTES` uncompressed."""
    n = max(int(tree.num_entries), 1)
    total = sum(int(tree[name].uncompressed_bytes) for name in names)
    per_entry = max(total / n, 1.0)
    return max(1, min(chunk_showers, int(_STEP_BYTES / per_entry)))


def iter_root(
    path: str | Path,
    *,
    chunk_showers: int = _DEFAULT_CHUNK_SHOWERS,
    with_cells: bool = False,
    n_layers: int | None = None,
) -> Iterator[Any]:
    """Read one of our ROOT files chunk by chunk, in bounded memory.

    Args:
        path: the file (schema version 1 or 2).
        chunk_showers: at most this many showers per chunk (fewer if they would exceed ~16 MB).
        with_cells: yield ``(showers, cells)`` pairs; ``cells`` is a CellHits-like namespace, or
            None for a file without cell branches.
        n_layers: layer bound of the value check (default: the file's ``n_layers`` metadata, else 30).

    Yields:
        :class:`Showers` (conditions listed in the metadata are kept), or pairs with ``with_cells``.
    """
    from caloclouds.io.hdf5 import DEFAULT_N_LAYERS

    path = Path(path)
    if chunk_showers < 1:
        raise ValueError(f"chunk_showers must be >= 1, got {chunk_showers}")
    f, tree, meta, version = _open_tree(path)
    layout = _V2 if version >= 2 else _V1
    bound = int(n_layers or meta.get("n_layers", DEFAULT_N_LAYERS))
    with f:
        keys = set(tree.keys())
        conditions = [c for c in meta.get("conditions", []) if c in keys]
        cell_names: list[str] = []
        if with_cells and layout["cells_counter"] in keys:
            cell_names = [
                layout["cells_counter"],
                *(_field("cells", c) for c in ("cell_id", "x_mm", "y_mm", "z_mm", "layer", layout["cell_e"])),
                *(layout["summary"].format(s) for s in _CELL_SUMMARIES),
            ]
        names = [*required_branches(version), *conditions, *cell_names]
        try:
            step = _entries_per_step(tree, names, chunk_showers)
            first = 0
            for chunk in tree.iterate(names, step_size=step, library="ak"):
                showers = _chunk_to_showers(path, chunk, conditions, layout, bound, first=first)
                first += len(showers)
                if with_cells:
                    yield showers, (_chunk_to_cells(chunk, layout) if cell_names else None)
                else:
                    yield showers
        except InputFileError:
            raise
        except Exception as exc:  # uproot raises many types for corrupt baskets
            msg = f"cannot read branches (truncated or corrupt file?): {exc}"
            raise InputFileError(path, msg, where=TREE) from None


def _chunk_to_showers(
    path: Path, chunk: Any, conditions: list[str], layout: dict[str, str], n_layers: int, *, first: int = 0
) -> Showers:
    import awkward as ak

    counts = ak.to_numpy(chunk[layout["counter"]]).astype(np.int64)
    columns = (*COLUMNS[:3], layout["e"])
    points = np.stack([ak.to_numpy(ak.flatten(chunk[_field("points", c)])).astype(np.float32) for c in columns], axis=1)
    if np.any(counts < 0) or len(points) != counts.sum():
        msg = f"{layout['counter']} sums to {counts.sum()} but there are {len(points)} points"
        raise InputFileError(path, msg, where=layout["counter"])
    showers = Showers.from_counts(
        points, counts, ak.to_numpy(chunk["incident_energy_gev"]), {k: ak.to_numpy(chunk[k]) for k in conditions}
    )
    problem = showers.check_values(n_layers=n_layers)
    if problem:
        raise InputFileError(path, problem, where=TREE)
    angle_problem = direction_problem(showers.conditions, len(showers), first=first)
    if angle_problem:
        raise InputFileError(path, angle_problem[1], where=f"{TREE}/{angle_problem[0]}")
    return showers


def _chunk_to_cells(chunk: Any, layout: dict[str, str]) -> Any:
    import awkward as ak

    counts = ak.to_numpy(chunk[layout["cells_counter"]]).astype(np.int64)
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    out = {"offsets": offsets}
    for attr, (name, dtype) in _CELL_FIELDS.items():
        branch = _field("cells", layout["cell_e"] if attr == "e_mev" else name)
        out[attr] = ak.to_numpy(ak.flatten(chunk[branch])).astype(dtype)
    for attr in _CELL_SUMMARIES:
        out[attr] = ak.to_numpy(chunk[layout["summary"].format(attr)]).astype(np.float64)
    return SimpleNamespace(**out)


def read_root(path: str | Path) -> Showers:
    """Read back the showers of a file written by :func:`write_root` (cells are not read)."""
    parts = list(iter_root(path))
    return Showers.concatenate(parts) if parts else Showers.empty()
