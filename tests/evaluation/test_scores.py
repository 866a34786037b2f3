"""W1, FPD, KPD, AUC and the MIP fit on samples with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from caloclouds.evaluation import classifier_auc, fit_mip_peak, fpd, kpd, mmd_poly_unbiased, roc_auc
from caloclouds.evaluation.scores import Observable, batched_w1, standardisation


def test_batched_w1_standardised_shift() -> None:
    rng = np.random.default_rng(0)
    ref = {"a": Observable(rng.normal(0.0, 2.0, 4000))}
    same = {"a": Observable(ref["a"].values.copy())}
    shifted = {"a": Observable(ref["a"].values + 2.0)}  # one reference std
    scale = {"a": standardisation(ref["a"])}
    assert scale["a"][1] == pytest.approx(2.0, rel=0.05)
    batches = [np.arange(k * 400, (k + 1) * 400) for k in range(10)]
    zero = batched_w1(ref, same, reference_batches=batches, other_batches=batches, scale=scale)["a"]
    assert zero.value == 0.0 and zero.error == 0.0
    one = batched_w1(ref, shifted, reference_batches=batches, other_batches=batches, scale=scale)["a"]
    assert one.value == pytest.approx(1.0, rel=0.06)


def test_batched_w1_per_hit_weighted() -> None:
    # two showers; hits at layer 0 and 1, weights are energies
    ref = {"p": Observable(np.array([0.0, 1.0, 0.0, 1.0]), np.array([0, 2, 4]), np.array([1.0, 1.0, 1.0, 1.0]))}
    gen = {"p": Observable(np.array([0.0, 1.0, 0.0, 1.0]), np.array([0, 2, 4]), np.array([1.0, 3.0, 1.0, 3.0]))}
    scale = {"p": standardisation(ref["p"])}
    assert scale["p"] == pytest.approx((0.5, 0.5))
    w = batched_w1(
        ref,
        gen,
        reference_batches=[np.array([0]), np.array([1])],
        other_batches=[np.array([1]), np.array([0])],
        scale=scale,
    )["p"]
    # weighted means 0.5 vs 0.75 on two points: W1 = 0.25, in units of std 0.5
    assert w.value == pytest.approx(0.5) and w.error == pytest.approx(0.0)


def test_mmd_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(6, 3)), rng.normal(0.5, 1.0, size=(5, 3))

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return (a @ b / 3 + 1) ** 4

    xx = sum(k(x[i], x[j]) for i in range(6) for j in range(6) if i != j) / 30
    yy = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / 20
    xy = sum(k(x[i], y[j]) for i in range(6) for j in range(5)) / 30
    assert mmd_poly_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy)


def test_fpd_and_kpd_detect_a_shift() -> None:
    rng = np.random.default_rng(2)
    real = rng.normal(size=(3000, 5)) + 5.0
    same = rng.normal(size=(3000, 5)) + 5.0
    moved = same.copy()
    moved[:, 0] += 0.5
    f_same = fpd(real, same, min_samples=500, max_samples=2000, num_batches=5)
    f_moved = fpd(real, moved, min_samples=500, max_samples=2000, num_batches=5)
    assert f_same.value < 1e-3 < f_moved.value
    # FPD of a mean shift d after division by max|real| is about (d / max)^2
    scale = np.abs(real[:, 0]).max()
    assert f_moved.value == pytest.approx((0.5 / scale) ** 2, rel=0.3)
    k_same = kpd(real, same, batch_size=1000, num_batches=5)
    k_moved = kpd(real, moved, batch_size=1000, num_batches=5)
    assert abs(k_same.value) < k_moved.value
    with pytest.raises(ValueError, match="min_samples"):
        fpd(real, same, min_samples=10, max_samples=5)


def test_roc_auc_known_values() -> None:
    labels = np.array([0, 0, 1, 1])
    assert roc_auc(labels, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert roc_auc(labels, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert roc_auc(labels, np.zeros(4)) == 0.5
    assert roc_auc(labels, np.array([0.1, 0.8, 0.2, 0.9])) == 0.75
    with pytest.raises(ValueError, match="both classes"):
        roc_auc(np.ones(3), np.arange(3.0))


def test_classifier_separates_and_is_deterministic() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=(600, 25))
    b = rng.normal(size=(600, 25))
    b[:, :3] += 1.5
    far = classifier_auc(a, b, folds=5, epochs=10)
    assert far.mean > 0.8 and len(far.fold_auc) == 5
    same = classifier_auc(a, rng.normal(size=(600, 25)), folds=5, epochs=10)
    assert 0.4 < same.mean < 0.6
    again = classifier_auc(a, b, folds=5, epochs=10)
    assert again.fold_auc == far.fold_auc
    with pytest.raises(ValueError, match="folds"):
        classifier_auc(a, b, folds=2)


def test_mip_fit_recovers_a_moyal_peak() -> None:
    from scipy.stats import moyal

    rng = np.random.default_rng(4)
    peak = moyal.rvs(loc=0.15, scale=0.015, size=40000, random_state=rng)
    background = rng.uniform(0.0, 0.6, 40000)
    fit = fit_mip_peak(np.concatenate([peak, background]))
    assert fit.mpv_mev == pytest.approx(0.15, abs=0.003)
    assert fit.width_mev == pytest.approx(0.015, rel=0.2)
    with pytest.raises(ValueError, match="too few"):
        fit_mip_peak(np.array([0.15, 0.16]))
