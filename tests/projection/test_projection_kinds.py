"""The geometry-kind registry is a plain table (issue 16): len, keys and get tell the truth."""

from __future__ import annotations

import numpy as np
import pytest

import projection
from caloclouds.errors import InputFileError
from projection.errors import ProjectionError
from projection.kinds import KINDS, CellKind, cell_kind

ALL_KINDS = {"square_grid", "square_cells", "hex_lattice", "hgcal", "voronoi"}


def test_kinds_is_a_plain_dict() -> None:
    assert type(KINDS) is dict
    assert len(KINDS) == len(ALL_KINDS) and set(KINDS) == ALL_KINDS and set(KINDS.keys()) == ALL_KINDS
    assert all(isinstance(KINDS.get(k), CellKind) for k in ALL_KINDS)
    assert KINDS.get("nope") is None and "nope" not in KINDS
    assert KINDS["voronoi"].blockable is False and KINDS["square_grid"].blockable is True
    with pytest.raises(ProjectionError, match=r"unknown geometry kind 'nope'; valid kinds: \['hex_lattice'"):
        cell_kind("nope")


@pytest.mark.parametrize("spec", ["ild", "hex:10", "square:8"])
def test_every_built_geometry_has_its_tables(spec: str) -> None:
    geometry = projection.get_geometry(spec)
    assert set(cell_kind(geometry.kind).required_tables) <= set(geometry.tables)


def test_load_geometry_names_unknown_kinds_and_round_trips(tmp_path) -> None:
    geometry = projection.get_geometry("hex:12")
    path = tmp_path / "g.npz"
    projection.save_geometry(geometry, path)
    back = projection.get_geometry(path)
    assert back.kind == "hex_lattice" and np.array_equal(back.cell_x_mm, geometry.cell_x_mm)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["kind"] = np.str_("triangles")
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(InputFileError, match=r"unknown geometry kind 'triangles'; valid kinds: \["):
        projection.load_geometry(bad)
