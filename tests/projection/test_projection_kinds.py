"""The geometry-kind table (issue 16): each kind maps to its own cell rule, and blocking is safe where allowed."""

from __future__ import annotations

import numpy as np
import pytest

import projection
from caloclouds.errors import InputFileError
from caloclouds.showers import Showers
from projection.errors import ProjectionError
from projection.kinds import KINDS, cell_kind


def _geometry(spec: str) -> projection.Geometry:
    if spec == "voronoi":  # centres on a jittered grid, two layers
        g = np.random.default_rng(0)
        x, y = (np.mgrid[-40:41:8, -40:41:8].reshape(2, -1) + g.uniform(-2, 2, (2, 121))).astype(np.float32)
        layer = np.repeat([0, 1], 121)
        return projection.voronoi_cells(layer=layer, x_mm=np.tile(x, 2), y_mm=np.tile(y, 2), layer_z_mm=[0.0, 5.0])
    return projection.get_geometry(spec)


@pytest.mark.parametrize("spec", ["ild", "ild-real", "hex:10", "square:8", "hgcal", "voronoi"])
def test_each_kind_puts_every_cell_centre_in_its_own_cell(spec: str) -> None:
    """The table's rule for the geometry's kind is that kind's rule: a centre lands in its own cell."""
    geometry = _geometry(spec)
    kind = cell_kind(geometry.kind)
    assert KINDS[geometry.kind] is kind and set(kind.required_tables) <= set(geometry.tables)
    cells = np.unique(np.linspace(0, geometry.n_cells - 1, 3000).astype(np.int64))
    x, y = geometry.cell_x_mm[cells].astype(np.float32), geometry.cell_y_mm[cells].astype(np.float32)
    got = kind.assign(geometry.numpy_tables(), geometry.cell_layer[cells], x, y)
    assert np.array_equal(got, cells)


@pytest.mark.parametrize("spec", ["ild", "ild-real", "hex:10", "hgcal", "voronoi"])
def test_blocks_of_points_give_the_same_cells(spec: str) -> None:
    """``blockable`` kinds may run on blocks of points (voronoi is not: it assigns all at once)."""
    geometry = _geometry(spec)
    g = np.random.default_rng(1)
    n = 5000
    layer = g.integers(0, min(geometry.n_layers, 30), n).astype(np.float32)
    points = np.stack([g.normal(0, 30, n), g.normal(0, 30, n), layer, g.uniform(0, 1, n)], 1).astype(np.float32)
    showers = Showers(points, np.array([0, 1000, n]), np.array([50.0, 60.0]))
    options = {"layer_map": "identity", "n_shower_layers": 30}
    whole, blocked = (projection.project(showers, geometry, block_points=b, **options) for b in (0, 7))
    for field in ("offsets", "cell_id", "e_mev", "lost_mev"):
        assert np.array_equal(getattr(whole, field), getattr(blocked, field))
    assert KINDS["voronoi"].blockable is False and KINDS["square_grid"].blockable is True


def test_unknown_kinds_are_named() -> None:
    with pytest.raises(ProjectionError, match=r"unknown geometry kind 'nope'; valid kinds: \['hex_lattice'"):
        cell_kind("nope")


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
