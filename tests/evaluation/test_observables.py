"""Observables on hand-built cell hits with known answers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from caloclouds.evaluation import (
    FEATURE_NAMES,
    binned_energies,
    compute_observables,
    decile_edges,
    high_level_features,
)

PITCH = 5.088333
N_LAYERS = 30


def cell_hits(showers: list[list[tuple[float, float, int, float]]]) -> SimpleNamespace:
    """CellHits-like object from per-shower lists of (x_mm, y_mm, layer, e_mev); z = 10 mm * layer."""
    counts = [len(s) for s in showers]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    flat = np.array([h for s in showers for h in s], dtype=np.float64).reshape(-1, 4)
    layer = flat[:, 2].astype(np.int64)
    return SimpleNamespace(
        offsets=offsets,
        cell_id=np.arange(len(flat)),
        layer=layer,
        x_mm=flat[:, 0].astype(np.float32),
        y_mm=flat[:, 1].astype(np.float32),
        z_mm=(10.0 * layer).astype(np.float32),
        e_mev=flat[:, 3].astype(np.float32),
        lost_mev=np.zeros(len(showers)),
        below_threshold_mev=np.zeros(len(showers)),
    )


def centre(i: int) -> float:
    """Centre of ILD cell i along one axis (edges at multiples of the pitch from 0)."""
    return (i + 0.5) * PITCH


def test_single_point() -> None:
    hits = cell_hits([[(centre(0), centre(-1), 4, 2.0)]])
    obs = compute_observables(hits, [10.0], n_layers=N_LAYERS)
    assert obs.n_hits.tolist() == [1]
    assert obs.e_vis_mev[0] == pytest.approx(2.0)
    assert obs.e_ratio[0] == pytest.approx(2.0 / 10_000.0)
    assert obs.cog_mm[0] == pytest.approx([centre(0), centre(-1), 40.0], rel=1e-6)
    expected_profile = np.zeros(N_LAYERS)
    expected_profile[4] = 2.0
    np.testing.assert_allclose(obs.layer_e_mev[0], expected_profile)
    assert obs.hit_r_mm[0] == pytest.approx(np.hypot(centre(0), centre(-1)), rel=1e-6)
    assert obs.hit_r_mm[0] == pytest.approx(PITCH / np.sqrt(2), rel=1e-6)


def test_two_points_in_known_cells() -> None:
    hits = cell_hits([[(centre(-1), centre(0), 0, 1.0), (centre(1), centre(0), 5, 3.0)]])
    obs = compute_observables(hits, [50.0], n_layers=N_LAYERS)
    assert obs.n_hits[0] == 2
    assert obs.e_vis_mev[0] == pytest.approx(4.0)
    # CoG x = (-0.5 p * 1 + 1.5 p * 3) / 4 = p; y = 0.5 p; z = (0 * 1 + 50 * 3) / 4
    assert obs.cog_mm[0] == pytest.approx([PITCH, 0.5 * PITCH, 37.5], rel=1e-6)
    assert obs.layer_e_mev[0, 0] == pytest.approx(1.0)
    assert obs.layer_e_mev[0, 5] == pytest.approx(3.0)
    np.testing.assert_allclose(np.sort(obs.hit_e_mev), [1.0, 3.0])
    np.testing.assert_allclose(obs.hit_r_mm, [np.hypot(0.5, 0.5) * PITCH, np.hypot(1.5, 0.5) * PITCH], rtol=1e-6)


def test_known_cog_and_cog_axis() -> None:
    # four equal hits on a square around (10, -20) mm: CoG is the square's centre
    pts = [(10 + dx, -20 + dy, 7, 1.5) for dx in (-3, 3) for dy in (-4, 4)]
    obs = compute_observables(cell_hits([pts]), [20.0], n_layers=N_LAYERS, axis="cog")
    assert obs.cog_mm[0] == pytest.approx([10.0, -20.0, 70.0], rel=1e-6)
    np.testing.assert_allclose(obs.hit_r_mm, 5.0, rtol=1e-6)  # 3-4-5 triangle about the CoG
    nominal = compute_observables(cell_hits([pts]), [20.0], n_layers=N_LAYERS)
    assert nominal.hit_r_mm.min() > 10.0


def test_threshold_empty_showers_and_take() -> None:
    hits = cell_hits([[(0.0, 0.0, 1, 0.05), (5.0, 0.0, 1, 0.2)], [], [(0.0, 5.0, 2, 0.01)]])
    obs = compute_observables(hits, [10.0, 20.0, 30.0], n_layers=N_LAYERS, threshold_mev=0.0735)
    assert obs.n_hits.tolist() == [1, 0, 0]
    assert obs.e_vis_mev.tolist() == pytest.approx([0.2, 0.0, 0.0])
    assert np.all(obs.cog_mm[1:] == 0.0) and np.isfinite(obs.cog_mm).all()
    sub = obs.take(np.array([2, 0]))
    assert sub.n_hits.tolist() == [0, 1]
    assert sub.hit_e_mev.tolist() == pytest.approx([0.2])
    assert sub.hit_offsets.tolist() == [0, 0, 1]


def test_bad_inputs() -> None:
    hits = cell_hits([[(0.0, 0.0, 31, 1.0)]])
    with pytest.raises(ValueError, match="outside"):
        compute_observables(hits, [10.0], n_layers=N_LAYERS)
    with pytest.raises(ValueError, match="incident_energy_gev"):
        compute_observables(cell_hits([[(0.0, 0.0, 1, 1.0)]]), [10.0, 20.0], n_layers=N_LAYERS)
    with pytest.raises(ValueError, match="axis"):
        compute_observables(cell_hits([[(0.0, 0.0, 1, 1.0)]]), [10.0], n_layers=N_LAYERS, axis="x")


def test_decile_edges_and_bins() -> None:
    # one hit in each of the 30 layers at 10 distinct radii (3 hits each): even deciles
    radii = np.repeat(np.arange(1, 11) * 7.0, 3)
    pts = [(float(r), 0.0, layer, 1.0 + layer) for layer, r in enumerate(radii)]
    obs = compute_observables(cell_hits([pts, pts]), [10.0, 90.0], n_layers=N_LAYERS)
    edges = decile_edges(obs)
    assert edges.layer.tolist() == list(range(0, 31, 3))
    np.testing.assert_allclose(edges.radius_mm[1:-1], np.arange(1, 10) * 7.0 + 3.5)
    assert edges.radius_mm[0] == 0.0 and np.isinf(edges.radius_mm[-1])
    longitudinal, radial = binned_energies(obs, edges)
    # layers 3k..3k+2 are also the hits at radius 7 (k+1): both groupings give the same sums
    expected = [sum(1.0 + layer for layer in range(3 * k, 3 * k + 3)) for k in range(10)]
    np.testing.assert_allclose(longitudinal, [expected, expected])
    np.testing.assert_allclose(radial, [expected, expected])
    features, names = high_level_features(obs, edges)
    assert features.shape == (2, 25) and names == FEATURE_NAMES
    np.testing.assert_allclose(features[:, 3], 30)
    np.testing.assert_allclose(features[:, 5:15].sum(1), obs.e_vis_mev)
    np.testing.assert_allclose(features[:, 15:].sum(1), obs.e_vis_mev)


def test_decile_edges_are_distinct_when_hits_pile_up() -> None:
    # almost all hits in layer 0: edges must still increase strictly and end at n_layers
    pts = [(1.0 + i, 0.0, 0, 1.0) for i in range(50)] + [(1.0, 0.0, 20, 1.0)]
    obs = compute_observables(cell_hits([pts]), [10.0], n_layers=N_LAYERS)
    edges = decile_edges(obs)
    assert edges.layer[0] == 0 and edges.layer[-1] == N_LAYERS
    assert np.all(np.diff(edges.layer) > 0) and np.all(np.diff(edges.radius_mm) > 0)
