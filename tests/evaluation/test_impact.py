"""Impact positions (--impact random|corner|centre|all), error-aware verdicts and the exit status."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

import projection
from caloclouds.config import EvaluationConfig
from caloclouds.evaluation import FLOOR_LABEL, ScoringOptions, Thresholds, evaluate, with_floor
from caloclouds.evaluation.impact import (
    cell_vertices_mm,
    impact_offsets,
    impact_rng,
    inside_cell,
    reference_cell,
    shifted,
)
from caloclouds.evaluation.pipeline import _verdict
from caloclouds.evaluation.selftest import Perturbation, perturb
from caloclouds.io import read_showers
from caloclouds.showers import Showers

PITCH = 5.088333  # the ILD-like detector's cell pitch
FAST = EvaluationConfig(classifier_epochs=3, classifier_folds=4, n_batches=4)
NO_LOW_LEVEL = ScoringOptions(low_level=None)


def _one_point_per_shower(offsets_mm: np.ndarray) -> Showers:
    """A shower per offset: one point on its axis in layer 0, moved to the offset."""
    n = len(offsets_mm)
    points = np.zeros((n, 4), dtype=np.float32)
    points[:, 3] = 1.0
    axis = Showers(points, np.arange(n + 1, dtype=np.int64), np.full(n, 50.0, dtype=np.float32))
    return shifted(axis, offsets_mm)


def test_ild_corner_is_the_origin_and_centre_the_cell_centre() -> None:
    cell = reference_cell(projection.get_geometry("ild"))
    assert cell.shape == "square" and cell.size_mm == pytest.approx(PITCH)
    corner = impact_offsets(cell, "corner", 3, rng=impact_rng(42, 0))
    assert np.array_equal(corner, np.zeros((3, 2))) and not np.signbit(corner).any()  # as before: x = y = 0
    centre = impact_offsets(cell, "centre", 2, rng=impact_rng(42, 0))
    assert np.allclose(centre, -PITCH / 2, atol=1e-5)  # the cell with its corner at the origin
    with pytest.raises(ValueError, match="impact mode"):
        impact_offsets(cell, "edge", 2, rng=impact_rng(42, 0))


def test_ild_random_is_uniform_in_one_cell_and_reproducible() -> None:
    geometry = projection.get_geometry("ild")
    cell = reference_cell(geometry)
    xy = impact_offsets(cell, "random", 20000, rng=impact_rng(42, 0))
    assert (xy >= -PITCH).all() and (xy <= 0.0).all()
    assert np.allclose(xy.mean(0), -PITCH / 2, atol=0.05) and np.allclose(xy.std(0), PITCH / np.sqrt(12), atol=0.03)
    counts = np.histogram2d(xy[:, 0], xy[:, 1], bins=4)[0]  # 16 sub-squares of 1250 expected each
    assert counts.min() > 1100 and counts.max() < 1400
    assert np.array_equal(xy, impact_offsets(cell, "random", 20000, rng=impact_rng(42, 0)))
    assert not np.array_equal(xy, impact_offsets(cell, "random", 20000, rng=impact_rng(42, 1)))  # another sample
    # the axes really land in the reference cell of the projection (one cell for all showers)
    hits = projection.project(_one_point_per_shower(xy[:500]), geometry, n_shower_layers=30)
    assert np.allclose(hits.x_mm, cell.centre_mm[0], atol=1e-4) and np.allclose(hits.y_mm, cell.centre_mm[1], atol=1e-4)


@pytest.mark.parametrize("spec", ["hex:5.0", "hex:5.0:pointy", "hgcal"])
def test_hexagonal_random_fills_one_hexagon_uniformly(spec: str) -> None:
    geometry = projection.get_geometry(spec)
    cell = reference_cell(geometry)
    assert cell.shape == ("hex_pointy" if spec.endswith("pointy") else "hex_flat")
    xy = impact_offsets(cell, "random", 20000, rng=impact_rng(7, 3))
    dx, dy = xy[:, 0] - cell.centre_mm[0], xy[:, 1] - cell.centre_mm[1]
    assert inside_cell(cell, dx, dy).all()
    # uniform: the inscribed circle holds pi / (2 sqrt 3) = 0.907 of a hexagon's area
    inscribed = np.mean(np.hypot(dx, dy) < cell.size_mm / 2)
    assert inscribed == pytest.approx(np.pi / (2 * np.sqrt(3)), abs=0.01)
    assert np.allclose(xy.mean(0), cell.centre_mm, atol=0.03 * cell.size_mm)
    hits = projection.project(_one_point_per_shower(xy[:500]), geometry, n_shower_layers=30)
    assert len(hits.e_mev) == 500 and np.unique(hits.cell_id).size == 1  # every axis in the reference cell
    corner = impact_offsets(cell, "corner", 1, rng=impact_rng(7, 3))[0]
    assert np.hypot(*(corner - cell.centre_mm)) == pytest.approx(cell.size_mm / np.sqrt(3), rel=1e-5)
    assert len(cell_vertices_mm(cell)) == 6


def test_observables_are_measured_from_each_shower_axis(shared) -> None:
    """The same showers at random positions: radii and CoG about the axis, not about x = y = 0."""
    from caloclouds.evaluation import cell_observables

    showers = read_showers(shared("g4_photons_val_uniform.h5"), 0, 40)
    corner = cell_observables(showers, config=FAST, impact="corner")
    moved = cell_observables(showers, config=FAST, impact="random")
    assert np.allclose(moved.e_vis_mev.sum(), corner.e_vis_mev.sum(), rtol=0.01)
    assert abs(moved.cog_mm[:, :2].mean()) < 1.0  # not the mean offset of -2.5 mm
    assert np.median(moved.hit_r_mm) == pytest.approx(np.median(corner.hit_r_mm), rel=0.2)


def test_random_evaluation_records_the_mode_and_judges_small_ranges_not(shared) -> None:
    showers = read_showers(shared("g4_photons_val_uniform.h5"), 0, 160)
    other = read_showers(shared("g4_photons_train.h5"), 0, 160)
    options = replace(NO_LOW_LEVEL, energy_bins_gev=((10.0, 50.0), (50.0, 90.0)))
    result = evaluate(showers, {"train": other}, config=FAST, options=options, out_dir=None)
    assert result["impact"] == "random" and result["options"]["impact"] == "random"
    model = result["samples"]["train"]
    for key, energy_bin in model["energy_bins"].items():  # about 40 showers a side: shown, not judged
        assert energy_bin["n_showers"] < 200
        assert energy_bin["auc"]["pass"] is None and "fewer than 200" in energy_bin["auc"]["not_judged"]
        assert f"{key}: auc" in model["verdict"]["not_judged"]
        assert energy_bin["w1"]["n_hits"]["pass"] in (True, False)  # W1 still judged, with its error
    assert "auc" not in model["verdict"]["not_judged"]  # the whole sample's AUC is judged
    for name in ("n_hits", "radial_profile", "cog_x_mm"):
        assert 0.4 <= model["w1"][name]["ratio"] <= 2.0, name  # Geant4 vs Geant4, each at its own positions
    assert result["samples"][FLOOR_LABEL]["auc"]["value"] < 0.7


def test_a_score_passes_when_within_its_limit_by_its_error() -> None:
    limits = Thresholds(max_ratio=1.6, max_auc=0.6, max_auc_low_level=0.75)
    floor = {"value": 1.0, "error": 0.0}
    assert with_floor({"value": 0.62, "error": 0.03}, floor, kind="auc", thresholds=limits)["pass"] is True
    assert with_floor({"value": 0.64, "error": 0.03}, floor, kind="auc", thresholds=limits)["pass"] is False
    assert with_floor({"value": 0.74, "error": 0.0}, floor, kind="auc_low_level", thresholds=limits)["pass"] is True
    low = with_floor({"value": 0.76, "error": 0.0}, floor, kind="auc_low_level", thresholds=limits)
    assert low["pass"] is False and low["limit"] == 0.75
    assert with_floor({"value": 1.7, "error": 0.2}, floor, kind="distance", thresholds=limits)["pass"] is True
    assert with_floor({"value": 2.0, "error": 0.2}, floor, kind="distance", thresholds=limits)["pass"] is False
    with pytest.raises(ValueError, match="max_auc_low_level"):
        Thresholds(max_auc_low_level=0.3)


def test_the_verdict_counts_the_energy_ranges() -> None:
    ok = {"pass": True}
    sample = {"w1": {"n_hits": ok}, "w1_groups": {"e_long_bins": ok}, "auc": ok}
    entry = {**sample, "energy_bins": {"10-30 GeV": {**sample, "auc": {"pass": False}}, "30-60 GeV": {"skipped": "x"}}}
    verdict = _verdict(entry)
    assert verdict["pass"] is False and verdict["failed"] == ["10-30 GeV: auc"] and verdict["n_judged"] == 6


def test_core_perturbation_moves_the_core_outward_by_the_amount() -> None:
    points = np.array([[0, 0, 0, 1], [1, 0, 0, 1], [0, -2.5, 3, 1], [6, 0, 0, 1]], dtype=np.float32)
    showers = Showers(points, np.array([0, 4]), np.array([50.0], dtype=np.float32))
    moved = perturb(showers, Perturbation("core", 0.5)).points
    r = np.hypot(moved[:, 0], moved[:, 1])
    assert r == pytest.approx([0.5, 1.4, 2.75, 6.0], abs=1e-6)  # r + 0.5 (1 - r / 5 mm) within 5 mm
    assert abs(moved[1, 1]) < 1e-6 and abs(moved[2, 0]) < 1e-6 and np.array_equal(moved[:, 2:], points[:, 2:])
    assert Perturbation("core", 0.5).label == "core +0.5 mm"
    with pytest.raises(ValueError, match="core"):
        perturb(showers, Perturbation("core", 6.0))


def test_cli_impact_all_and_the_exit_status(tmp_path, capsys, evaluate_args) -> None:
    from caloclouds.cli import main

    out = tmp_path / "eval"
    args = evaluate_args("g4_photons_train.h5", 100, "--no-plots", "--no-low-level", "--impact", "all", label="g4")
    code = main([*args, "--max-ratio", "0.01", "--no-fail-exit"])  # everything fails, exit 0 anyway
    assert code == 0, capsys.readouterr().err
    scores = json.loads((out / "scores.json").read_text())
    assert scores["impact"] == "all" and scores["modes"] == ["random", "corner", "centre"]
    for mode in scores["modes"]:
        assert scores["by_impact"][mode]["impact"] == mode and (out / mode / "report.html").is_file()
        assert scores["by_impact"][mode]["samples"]["g4"]["verdict"]["pass"] is False
    page = (out / "report.html").read_text()
    assert all(f"{mode}: g4 / floor" in page for mode in scores["modes"])
    assert main([*args, "--max-ratio", "0.01"]) == 1
    assert "FAIL: g4 (exit 1" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # argparse: a bad choice
        main([*args[:-2], "--impact", "edge"])
    assert main([*args[:-2], "--geometry", "hex:-1"]) == 2
    assert "hex:-1" in capsys.readouterr().err


def test_a_wider_core_changes_no_cell_at_the_corner_but_many_at_random(shared) -> None:
    """The self-test's core +0.5 mm: radial moves inside 5 mm never cross x = 0, y = 0 or the next
    ILD cell edge, so the corner alignment cannot see it; random impact positions can."""
    from caloclouds.evaluation import cell_observables

    showers = read_showers(shared("g4_photons_train.h5"), 0, 30)
    wider = perturb(showers, Perturbation("core", 0.5))
    for impact, same in (("corner", True), ("random", False)):
        a = cell_observables(showers, config=FAST, impact=impact)
        b = cell_observables(wider, config=FAST, impact=impact)  # same stream: same positions
        identical = np.array_equal(a.hit_offsets, b.hit_offsets) and np.array_equal(a.hit_e_mev, b.hit_e_mev)
        assert identical is same, impact
