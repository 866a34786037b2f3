"""The equal-size floor: sample plans, random batches, ratios, and fixed-size FPD/KPD."""

from __future__ import annotations

import numpy as np
import pytest

from caloclouds.evaluation import Thresholds, batched_fpd, batched_kpd, plan_samples, random_batches, with_floor
from caloclouds.evaluation.scores import _normalise, frechet_distance


def test_plan_without_floor_reference_uses_disjoint_halves() -> None:
    plan = plan_samples(1000, {"a": 700, "b": 300}, seed=1)
    assert plan.n == 300 and plan.floor_from == "reference halves"
    assert len(plan.reference) == len(plan.floor) == 300
    assert not set(plan.reference) & set(plan.floor)  # A and B are disjoint halves
    assert len(plan.generated["a"]) == 300 and len(set(plan.generated["a"])) == 300
    assert np.array_equal(plan.generated["b"], np.arange(300))
    big = plan_samples(1000, {"a": 5000})
    assert big.n == 500  # a model is scored on a half, like the floor


def test_plan_with_floor_reference_cuts_everything_to_one_size() -> None:
    plan = plan_samples(1000, {"m": 1200}, n_floor_reference=800, seed=2)
    assert plan.n == 800 and plan.floor_from == "floor reference"
    assert len(plan.reference) == len(plan.floor) == len(plan.generated["m"]) == 800
    assert np.array_equal(plan.floor, np.arange(800))
    assert plan_samples(1000, {"m": 1200}, n_floor_reference=800, seed=2).reference.tolist() == plan.reference.tolist()


def test_random_batches() -> None:
    batches = random_batches(100, size=10, draws=7, seed=3)
    assert len(batches) == 7
    for b in batches:
        assert len(np.unique(b)) == 10 and b.min() >= 0 and b.max() < 100 and np.all(np.diff(b) > 0)
    again = random_batches(100, size=10, draws=7, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    with pytest.raises(ValueError, match="batch size"):
        random_batches(5, size=6, draws=1, seed=0)


def test_with_floor_ratio_and_verdict() -> None:
    limits = Thresholds(max_ratio=1.5, max_auc=0.6)
    ok = with_floor({"value": 1.2, "error": 0.1}, {"value": 1.0, "error": 0.1}, kind="distance", thresholds=limits)
    assert ok["ratio"] == pytest.approx(1.2) and ok["floor"] == 1.0 and ok["pass"] is True
    assert ok["ratio_error"] == pytest.approx(1.2 * np.hypot(0.1 / 1.2, 0.1))
    bad = with_floor({"value": 2.0, "error": 0.1}, {"value": 1.0, "error": 0.1}, kind="distance", thresholds=limits)
    assert bad["pass"] is False
    auc = with_floor(
        {"value": 0.65, "error": 0.01, "folds": [0.65]}, {"value": 0.5, "error": 0.01}, kind="auc", thresholds=limits
    )
    assert auc["pass"] is False and auc["ratio"] == pytest.approx(1.3) and auc["folds"] == [0.65]
    none = with_floor({"value": 1.0, "error": 0.0}, {"value": 0.0, "error": 0.0}, kind="distance", thresholds=None)
    assert np.isnan(none["ratio"]) and none["pass"] is None
    with pytest.raises(ValueError, match="max_auc"):
        Thresholds(max_auc=0.4)


def test_batched_fpd_matches_the_frechet_distance_per_batch() -> None:
    rng = np.random.default_rng(4)
    real, gen = rng.normal(3.0, 1.0, (300, 4)), rng.normal(3.2, 1.0, (300, 4))
    ref_b, oth_b = random_batches(300, size=40, draws=5, seed=5), random_batches(300, size=40, draws=5, seed=6)
    got = batched_fpd(real, gen, reference_batches=ref_b, other_batches=oth_b, pool_size=300)
    r, g = _normalise(real, gen)
    per_batch = [
        frechet_distance(r[a].mean(0), np.cov(r[a], rowvar=False), g[b].mean(0), np.cov(g[b], rowvar=False))
        for a, b in zip(ref_b, oth_b, strict=True)
    ]
    assert got.value == pytest.approx(np.mean(per_batch), rel=1e-9)
    assert got.error == pytest.approx(np.std(per_batch) / np.sqrt(300 / 40), rel=1e-9)


def test_batched_kpd_has_a_positive_floor_that_a_shift_exceeds() -> None:
    rng = np.random.default_rng(7)
    real, same = rng.normal(5.0, 1.0, (1000, 5)), rng.normal(5.0, 1.0, (1000, 5))
    shifted = same + np.array([0.5, 0, 0, 0, 0])
    ref_b, oth_b = random_batches(1000, size=50, draws=200, seed=8), random_batches(1000, size=50, draws=200, seed=9)
    kw = {"reference_batches": ref_b, "other_batches": oth_b, "pool_size": 1000}
    floor, moved = batched_kpd(real, same, **kw), batched_kpd(real, shifted, **kw)
    assert floor.value > 0 and moved.value > 1.5 * floor.value
    # the V-statistic equals the brute-force double sum on one batch
    x, y = _normalise(real, same)
    a, b = x[ref_b[0]], y[oth_b[0]]
    k = lambda u, v: (u @ v.T / 5 + 1.0) ** 4  # noqa: E731
    one = batched_kpd(real, same, reference_batches=ref_b[:1], other_batches=oth_b[:1], pool_size=50)
    assert one.value == pytest.approx(k(a, a).mean() + k(b, b).mean() - 2 * k(a, b).mean())
