"""The default ILD square grid: cell edges, energy conservation, threshold, placement, layer maps."""

from __future__ import annotations

import numpy as np
import pytest

import projection
from caloclouds.config import DetectorConfig
from caloclouds.io import read_showers
from caloclouds.showers import Showers

PITCH = DetectorConfig().cell_pitch_mm


def _random_showers(rng: np.random.Generator, n: int = 20, half_mm: float = 150.0) -> Showers:
    counts = rng.integers(0, 300, n)
    p = counts.sum()
    points = np.column_stack(
        [
            rng.uniform(-half_mm, half_mm, p),
            rng.uniform(-half_mm, half_mm, p),
            rng.integers(0, 30, p),
            rng.exponential(0.3, p),
        ]
    ).astype(np.float32)
    return Showers.from_counts(points, counts, rng.uniform(10, 90, n))


def test_ild_grid_layout() -> None:
    g = projection.get_geometry("ild")
    det = DetectorConfig()
    assert g.n_layers == 30
    np.testing.assert_allclose(g.layer_z_mm, det.layer_centre_z_mm)
    # edges at multiples of the pitch from 0: centres at (k + 0.5) * pitch
    k = g.cell_x_mm / np.float32(PITCH) - 0.5
    np.testing.assert_allclose(k, np.round(k), atol=1e-4)


def test_ild_cells_match_floor_rule(rng: np.random.Generator) -> None:
    g = projection.get_geometry("ild")
    showers = _random_showers(rng)
    hits = projection.project(showers, g)
    # brute force: one point at a time through floor(x / pitch)
    p = showers.points
    ix = np.floor(p[:, 0] / np.float32(PITCH)).astype(np.int64)
    iy = np.floor(p[:, 1] / np.float32(PITCH)).astype(np.int64)
    shower = showers.shower_index
    expected: dict[tuple[int, int, int, int], float] = {}
    for s, l, i, j, e in zip(shower, p[:, 2].astype(int), ix, iy, p[:, 3].astype(np.float64)):
        expected[(s, l, i, j)] = expected.get((s, l, i, j), 0.0) + e
    got = {}
    for s, l, x, y, e in zip(hits.shower_index, hits.layer, hits.x_mm, hits.y_mm, hits.e_mev):
        key = (int(s), int(l), int(np.floor(x / PITCH)), int(np.floor(y / PITCH)))
        got[key] = float(e)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-6)
    assert np.all(hits.lost_mev == 0)


def test_ild_energy_conservation_and_threshold(shared) -> None:
    showers = read_showers(shared("g4_photons_val_fixed.h5"), 0, 50)
    g = projection.get_geometry("ild")
    for kwargs in (
        {},
        {"threshold_mev": 0.08},
        {"threshold_mip": 0.5, "mip_mev": 0.16},
        {"impact_mm": (150.0, -30.0), "rotation_rad": 0.3},
    ):
        hits = projection.project(showers, g, **kwargs)
        total = hits.energy_mev() + hits.lost_mev + hits.below_threshold_mev
        np.testing.assert_allclose(total, showers.visible_energy_mev(), rtol=1e-6)
        assert np.all(np.diff(hits.offsets) >= 0) and hits.offsets[-1] == len(hits.e_mev)
    hits = projection.project(showers, g, threshold_mev=0.08)
    assert hits.e_mev.min() >= 0.08
    assert hits.below_threshold_mev.sum() > 0
    # far off the grid: everything is lost
    hits = projection.project(showers, g, impact_mm=(1000.0, 0.0))
    assert len(hits.e_mev) == 0
    np.testing.assert_allclose(hits.lost_mev, showers.visible_energy_mev(), rtol=1e-6)


def test_ild_cell_ids_sorted_and_unique_per_shower(rng: np.random.Generator) -> None:
    hits = projection.project(_random_showers(rng), projection.get_geometry("ild"))
    for i in range(len(hits)):
        ids = hits.cell_id[hits.offsets[i] : hits.offsets[i + 1]]
        assert np.all(np.diff(ids) > 0)
