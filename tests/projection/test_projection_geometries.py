"""Every geometry: centres map to their own cell, hexagon edges, HGCal rules, conservation, numpy == torch."""

from __future__ import annotations

import math

import numpy as np
import pytest

import projection
from caloclouds.showers import Showers
from projection.hexgrid import hex_lattice
from projection.square import square_grid
from projection.voronoi import voronoi_cells

SMALL_LAYERS = (0.0, 10.0, 20.0)


def _gapped() -> projection.Geometry:
    stagger = np.array([[0.0, 0.0], [1.3, -0.7], [2.5, 2.5]])
    return square_grid(
        pitch_mm=5.0,
        layer_z_mm=SMALL_LAYERS,
        n_cells=(40, 30),
        gap_every=6,
        gap_mm=1.0,
        stagger_mm=stagger,
        name="gapped",
    )


def _voronoi(rng_seed: int = 3) -> projection.Geometry:
    rng = np.random.default_rng(rng_seed)
    n = 600
    return voronoi_cells(
        layer=rng.integers(0, 3, n),
        x_mm=rng.uniform(-100, 100, n),
        y_mm=rng.uniform(-100, 100, n),
        layer_z_mm=SMALL_LAYERS,
        max_distance_mm=15.0,
    )


def _geometries(request: pytest.FixtureRequest) -> dict[str, projection.Geometry]:
    return {
        "ild": projection.get_geometry("ild"),
        "gapped": _gapped(),
        "hex-flat": projection.get_geometry("hex:6.5"),
        "hex-pointy": hex_lattice(pitch_mm=4.0, pointy=True, layer_z_mm=SMALL_LAYERS, half_extent_mm=60.0),
        "voronoi": _voronoi(),
        "ild-real": request.getfixturevalue("ild_real"),
        "hgcal": request.getfixturevalue("hgcal"),
    }


NAMES = ("ild", "gapped", "hex-flat", "hex-pointy", "voronoi", "ild-real", "hgcal")


@pytest.fixture(params=NAMES)
def geometry(request: pytest.FixtureRequest) -> projection.Geometry:
    return _geometries(request)[request.param]


def _one_shower(x: np.ndarray, y: np.ndarray, layer: np.ndarray, e: np.ndarray | None = None) -> Showers:
    e = np.ones(len(x)) if e is None else e
    points = np.column_stack([x, y, layer, e]).astype(np.float32)
    return Showers.from_counts(points, np.array([len(x)]), np.array([1.0]))


def _identity(g: projection.Geometry) -> dict:
    return {"layer_map": "identity", "n_shower_layers": g.n_layers}


def _random_showers(rng: np.random.Generator, n_layers: int, half_mm: float, n: int = 12) -> Showers:
    counts = rng.integers(0, 400, n)
    p = int(counts.sum())
    pts = np.column_stack(
        [
            rng.normal(0, half_mm / 3, p),
            rng.normal(0, half_mm / 3, p),
            rng.integers(0, n_layers, p),
            rng.exponential(0.2, p),
        ]
    ).astype(np.float32)
    return Showers.from_counts(pts, counts, np.full(n, 50.0))


# -- every cell centre maps to its own cell ----------------------------------------------------------


def test_every_cell_centre_maps_to_itself(geometry: projection.Geometry) -> None:
    g = geometry
    showers = _one_shower(g.cell_x_mm, g.cell_y_mm, g.cell_layer)
    hits = projection.project(showers, g, **_identity(g))
    np.testing.assert_array_equal(hits.cell_id, np.arange(g.n_cells))
    np.testing.assert_array_equal(hits.e_mev, 1.0)
    assert hits.lost_mev[0] == 0


# -- hexagon edges: 0.49 pitch stays, 0.51 pitch moves to the neighbour --------------------------------


def _edge_check(g: projection.Geometry, cells: np.ndarray, pitch: np.ndarray, angles_deg: np.ndarray) -> None:
    for frac, expect_same in ((0.49, True), (0.51, False)):
        for angle in np.deg2rad(angles_deg):
            dx, dy = math.cos(angle), math.sin(angle)
            x = g.cell_x_mm[cells] + frac * pitch * dx
            y = g.cell_y_mm[cells] + frac * pitch * dy
            showers = Showers.from_counts(
                np.column_stack([x, y, g.cell_layer[cells], np.ones(len(cells))]).astype(np.float32),
                np.ones(len(cells), np.int64),
                np.ones(len(cells)),
            )
            got = projection.project(showers, g, **_identity(g)).cell_id
            if expect_same:
                np.testing.assert_array_equal(got, cells)
            else:
                # the neighbour's centre is one pitch away in that direction
                nx = g.cell_x_mm[cells] + pitch * dx
                ny = g.cell_y_mm[cells] + pitch * dy
                np.testing.assert_allclose(g.cell_x_mm[got], nx, atol=1e-3)
                np.testing.assert_allclose(g.cell_y_mm[got], ny, atol=1e-3)
                assert np.all(g.cell_layer[got] == g.cell_layer[cells])


@pytest.mark.parametrize("pointy", [False, True])
def test_hexagon_049_stays_051_moves(pointy: bool) -> None:
    g = hex_lattice(pitch_mm=5.0, pointy=pointy, layer_z_mm=SMALL_LAYERS, half_extent_mm=40.0)
    inner = np.flatnonzero((np.abs(g.cell_x_mm) < 30) & (np.abs(g.cell_y_mm) < 30))
    start = 0.0 if pointy else 30.0
    _edge_check(g, inner, np.full(len(inner), 5.0, np.float32), start + 60.0 * np.arange(6))


def test_hgcal_hexagon_049_stays_051_moves(hgcal: projection.Geometry) -> None:
    from scipy.spatial import cKDTree

    g = hgcal
    lattice = g.extras["lattice"]
    chosen = []
    for layer in (0, 12, 25):
        sel = np.flatnonzero(g.cell_layer == layer)
        pts = np.column_stack([g.cell_x_mm[sel], g.cell_y_mm[sel]]).astype(np.float64)
        dist, idx = cKDTree(pts).query(pts, k=7)
        pitch = g.cell_size_mm[sel].astype(np.float64)
        # all six neighbours present, one pitch away and on the same lattice
        full = np.all(np.abs(dist[:, 1:] - pitch[:, None]) < 1e-2, axis=1) & np.all(
            lattice[sel][idx] == lattice[sel][:, None], axis=1
        )
        chosen.append(sel[full][::7])
    cells = np.concatenate(chosen)
    assert len(cells) > 300 and {0, 1, 2} <= set(g.extras["celltype"][cells].tolist())
    _edge_check(g, cells, g.cell_size_mm[cells], 30.0 + 60.0 * np.arange(6))


# -- HGCal: exact rule == nearest centre inside one lattice; physical wafer edge elsewhere ------------


def test_hgcal_matches_nearest_centre_within_one_density(hgcal: projection.Geometry) -> None:
    from scipy.spatial import cKDTree

    g = hgcal
    rng = np.random.default_rng(7)
    n = 60000
    layer = rng.integers(0, g.n_layers, n)
    x = rng.uniform(-200, 200, n).astype(np.float32)
    y = rng.uniform(-200, 200, n).astype(np.float32)
    hits = projection.project(_one_shower_per_point(x, y, layer), g, **_identity(g))
    cell = np.full(n, -1)
    cell[np.repeat(np.arange(n), np.diff(hits.offsets))] = hits.cell_id
    near = np.zeros((n, 7), np.int64)
    dist = np.zeros((n, 7))
    for lay in range(g.n_layers):
        sel = np.flatnonzero(g.cell_layer == lay)
        rows = np.flatnonzero(layer == lay)
        d, i = cKDTree(np.column_stack([g.cell_x_mm[sel], g.cell_y_mm[sel]]).astype(np.float64)).query(
            np.column_stack([x[rows], y[rows]]).astype(np.float64), k=7
        )
        near[rows], dist[rows] = sel[i], d
    centre = np.stack([g.cell_x_mm, g.cell_y_mm], axis=1).astype(np.float64)
    gap = np.linalg.norm(centre[near[:, 1]] - centre[near[:, 0]], axis=1)
    to_boundary = (dist[:, 1] ** 2 - dist[:, 0] ** 2) / (2 * gap)  # distance to the Voronoi edge
    lattice = g.extras["lattice"]
    one_lattice = np.all(lattice[near] == lattice[near[:, :1]], axis=1)
    check = (cell >= 0) & one_lattice & (to_boundary > 0.01) & (dist[:, 0] < g.cell_size_mm[near[:, 0]])
    assert check.sum() > 30000
    np.testing.assert_array_equal(cell[check], near[check, 0])


def _one_shower_per_point(x: np.ndarray, y: np.ndarray, layer: np.ndarray) -> Showers:
    pts = np.column_stack([x, y, layer, np.ones(len(x))]).astype(np.float32)
    return Showers.from_counts(pts, np.ones(len(x), np.int64), np.ones(len(x)))


def test_hgcal_physical_wafer_edge_between_densities(hgcal: projection.Geometry) -> None:
    from projection.hexgrid import hex_centre

    g = hgcal
    t = g.tables
    wafer_w = math.sqrt(3) * 8 * float(t["pitch_mm"][1])
    side = wafer_w / math.sqrt(3)
    lay, wq, wr = np.nonzero(t["wafer_lut"] >= 0)
    wid = t["wafer_lut"][lay, wq, wr]
    cx, cy = hex_centre(wq + t["wafer_qr_min"][0], wr + t["wafer_qr_min"][1], wafer_w, pointy=True)
    cx = cx + t["wafer_origin_x_mm"][lay]
    cy = cy + t["wafer_origin_y_mm"][lay]
    wafer_density = t["lattice_density"][t["wafer_lattice"]]
    cell_wafer = g.extras["wafer"]
    xs, ys, ls, want = [], [], [], []
    for a in range(len(wid)):
        for b in range(len(wid)):
            if lay[a] != lay[b] or wafer_density[wid[a]] == wafer_density[wid[b]]:
                continue
            d = np.array([cx[b] - cx[a], cy[b] - cy[a]])
            if abs(np.linalg.norm(d) - wafer_w) > 0.1:
                continue
            normal = d / np.linalg.norm(d)
            tangent = np.array([-normal[1], normal[0]])
            mid = np.array([cx[a], cy[a]]) + d / 2
            u = np.linspace(-0.45, 0.45, 41) * side
            p = mid[None, :] + u[:, None] * tangent[None, :] - 0.01 * normal[None, :]  # 1e-3 cm inside wafer a
            xs.append(p[:, 0])
            ys.append(p[:, 1])
            ls.append(np.full(len(u), lay[a]))
            want.append(np.full(len(u), wid[a]))
    assert len(xs) > 20
    x, y, layer, want_w = map(np.concatenate, (xs, ys, ls, want))
    hits = projection.project(_one_shower_per_point(x, y, layer), g, **_identity(g))
    got = np.full(len(x), -1)
    got[np.repeat(np.arange(len(x)), np.diff(hits.offsets))] = hits.cell_id
    assigned = got >= 0
    assert assigned.mean() > 0.8  # the rest lie outside the 20-shell acceptance
    np.testing.assert_array_equal(cell_wafer[got[assigned]], want_w[assigned])


# -- energy conservation, numpy == torch, save/load ----------------------------------------------------


def test_energy_conservation(geometry: projection.Geometry, rng: np.random.Generator) -> None:
    g = geometry
    showers = _random_showers(rng, 30, 120.0)
    for kwargs in (
        {},
        {"impact_mm": (20.0, -11.0), "rotation_rad": 1.1, "threshold_mev": 0.3},
        {"layer_map": "linear"},
    ):
        hits = projection.project(showers, g, **kwargs)
        total = hits.energy_mev() + hits.lost_mev + hits.below_threshold_mev
        np.testing.assert_allclose(total, showers.visible_energy_mev(), rtol=1e-6, atol=1e-9)
        assert np.all(hits.e_mev > 0)


def test_numpy_and_torch_agree(geometry: projection.Geometry, rng: np.random.Generator, device: str) -> None:
    torch = pytest.importorskip("torch")
    g = geometry
    showers = _random_showers(rng, 30, 120.0)
    for kwargs in ({}, {"impact_mm": (7.3, 2.1), "rotation_rad": 0.4, "threshold_mip": 1.0}):
        a = projection.project(showers, g, **kwargs)
        b = projection.project_torch(
            torch.from_numpy(showers.points).to(device), torch.from_numpy(showers.offsets).to(device), g, **kwargs
        ).numpy()
        for name in ("offsets", "cell_id", "layer", "x_mm", "y_mm", "z_mm"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        for name in ("e_mev", "lost_mev", "below_threshold_mev"):
            np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-6, atol=1e-9, err_msg=name)


def test_save_and_load_round_trip(geometry: projection.Geometry, tmp_path, rng: np.random.Generator) -> None:
    path = tmp_path / "geometry.npz"
    projection.save_geometry(geometry, path)
    loaded = projection.get_geometry(path)
    assert loaded.kind == geometry.kind and loaded.n_cells == geometry.n_cells
    showers = _random_showers(rng, 30, 100.0, n=4)
    a = projection.project(showers, geometry)
    b = projection.project(showers, loaded)
    np.testing.assert_array_equal(a.cell_id, b.cell_id)
    np.testing.assert_array_equal(a.e_mev, b.e_mev)


@pytest.mark.gpu
def test_torch_on_cuda_matches_numpy(hgcal: projection.Geometry, rng: np.random.Generator) -> None:
    torch = pytest.importorskip("torch")
    for g in (projection.get_geometry("ild"), hgcal):
        showers = _random_showers(rng, 30, 120.0)
        a = projection.project(showers, g)
        b = projection.project_torch(
            torch.from_numpy(showers.points).cuda(), torch.from_numpy(showers.offsets).cuda(), g
        )
        assert b.cell_id.is_cuda
        np.testing.assert_array_equal(a.cell_id, b.numpy().cell_id)


def test_ild_real_gaps_and_dead_cells_are_lost(ild_real: projection.Geometry) -> None:
    from scipy.spatial import cKDTree

    g = ild_real
    rng = np.random.default_rng(11)
    n = 20000
    layer = rng.integers(0, g.n_layers, n)
    x = rng.uniform(-290, 290, n).astype(np.float32)
    y = rng.uniform(-340, 340, n).astype(np.float32)
    hits = projection.project(_one_shower_per_point(x, y, layer), g)
    got = np.full(n, -1)
    got[np.repeat(np.arange(n), np.diff(hits.offsets))] = hits.cell_id
    half = float(g.tables["pitch_mm"]) / 2
    expected = np.full(n, -1)
    margin = np.full(n, np.inf)
    for lay in range(g.n_layers):
        sel = np.flatnonzero(g.cell_layer == lay)
        rows = np.flatnonzero(layer == lay)
        d, i = cKDTree(np.column_stack([g.cell_x_mm[sel], g.cell_y_mm[sel]])).query(
            np.column_stack([x[rows], y[rows]]), p=np.inf
        )
        expected[rows] = np.where(d <= half, sel[i], -1)
        margin[rows] = np.abs(d - half)
    clear = margin > 1e-3  # not on a cell edge
    np.testing.assert_array_equal(got[clear], expected[clear])
    assert 0.2 < np.mean(expected < 0) < 0.8  # the region has real gaps and dead areas
    lost = np.zeros(n)
    lost[got < 0] = 1.0
    np.testing.assert_allclose(hits.lost_mev, lost)


def test_cache_blocks_do_not_change_the_result(geometry: projection.Geometry, rng: np.random.Generator) -> None:
    showers = _random_showers(rng, 30, 120.0)
    whole = projection.project(showers, geometry, block_points=0, impact_mm=(3.0, 4.0))
    blocked = projection.project(showers, geometry, block_points=257, impact_mm=(3.0, 4.0))
    np.testing.assert_array_equal(whole.cell_id, blocked.cell_id)
    np.testing.assert_array_equal(whole.e_mev, blocked.e_mev)
    np.testing.assert_array_equal(whole.lost_mev, blocked.lost_mev)
