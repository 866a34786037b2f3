"""The low-level (per-cell, point-set) classifier and the perturbation self-test."""

from __future__ import annotations

import time

import numpy as np
import pytest

from caloclouds.config import ILD_LIKE_DETECTOR, EvaluationConfig
from caloclouds.evaluation import LowLevelConfig, cell_observables, low_level_auc
from caloclouds.evaluation.lowlevel import CELL_FEATURES, cell_sets
from caloclouds.evaluation.selftest import Perturbation, perturb
from caloclouds.io import read_showers

CONFIG = EvaluationConfig()
QUICK = LowLevelConfig(folds=3, epochs=2)


def _obs(showers):
    return cell_observables(showers, config=CONFIG)


def test_cell_sets_are_the_cells_above_threshold(shared) -> None:
    obs = _obs(read_showers(shared("g4_photons_val_uniform.h5"), 0, 20))
    sets = cell_sets(obs)
    assert len(sets) == 20 and sets.cells.shape == (obs.n_hits.sum(), len(CELL_FEATURES))
    assert np.array_equal(np.diff(sets.offsets), obs.n_hits)
    np.testing.assert_allclose(sets.cells[:, 2], np.hypot(sets.cells[:, 0], sets.cells[:, 1]), rtol=1e-5)
    assert sets.cells[:, 4].min() >= np.log(ILD_LIKE_DETECTOR.threshold_mev) - 1e-6


def test_low_level_separates_wide_showers_and_is_deterministic(shared) -> None:
    showers = read_showers(shared("g4_photons_val_uniform.h5"), 0, 200)
    reference, other = showers[:100], showers[100:]
    wide = perturb(other, Perturbation("radial", 0.5))
    ref_obs = _obs(reference)
    far = low_level_auc(ref_obs, _obs(wide), config=QUICK)
    assert far.mean > 0.8 and len(far.fold_auc) == 3
    same = low_level_auc(ref_obs, _obs(other), config=QUICK)
    assert 0.3 < same.mean < 0.7
    tiny = LowLevelConfig(folds=3, epochs=1)
    first = low_level_auc(ref_obs.take(np.arange(30)), _obs(wide[:30]), config=tiny)
    assert low_level_auc(ref_obs.take(np.arange(30)), _obs(wide[:30]), config=tiny).fold_auc == first.fold_auc
    with pytest.raises(ValueError, match="folds"):
        LowLevelConfig(folds=2)


def test_perturbations_change_only_what_they_say(shared) -> None:
    showers = read_showers(shared("g4_photons_val_uniform.h5"), 0, 50)
    energy = perturb(showers, Perturbation("energy", 0.02))
    np.testing.assert_allclose(energy.e_mev, showers.e_mev * 1.02, rtol=1e-6)
    assert np.array_equal(energy.x_mm, showers.x_mm) and np.array_equal(energy.layer, showers.layer)
    radial = perturb(showers, Perturbation("radial", 0.05))
    np.testing.assert_allclose(radial.y_mm, showers.y_mm * 1.05, rtol=1e-6)
    depth = perturb(showers, Perturbation("depth", 0.3), seed=1)
    moved = depth.layer - showers.layer
    assert set(np.unique(moved)) <= {0.0, 1.0} and depth.layer.max() <= 29
    assert 0.25 < moved[showers.layer < 29].mean() < 0.35
    assert np.array_equal(perturb(showers, Perturbation("none")).points, showers.points)
    assert Perturbation("radial", 0.05).label == "radial +5 %"
    with pytest.raises(ValueError, match="unknown perturbation"):
        perturb(showers, Perturbation("twist", 0.1))  # type: ignore[arg-type]


@pytest.mark.slow
def test_low_level_full_size_geant4_vs_geant4_within_budget(shared) -> None:
    """1000 vs 1000 independent Geant4 showers, default settings: AUC <= 0.56 in <= 5 CPU minutes."""
    reference = _obs(read_showers(shared("g4_photons_val_uniform.h5")))
    other = _obs(read_showers(shared("g4_photons_train.h5"), 0, 1000))
    start = time.process_time()
    result = low_level_auc(reference, other)
    cpu_s = time.process_time() - start
    assert result.mean <= 0.56, result
    assert cpu_s <= 300.0, cpu_s
