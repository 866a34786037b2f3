"""End-to-end evaluation on the shared Geant4 files: consistency checks and the CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from caloclouds.config import EvaluationConfig
from caloclouds.evaluation import FLOOR_LABEL, ScoringOptions, evaluate
from caloclouds.io import read_showers

FAST = EvaluationConfig(classifier_epochs=15)
NO_LOW_LEVEL = ScoringOptions(low_level=None)


def _judged(sample: dict) -> list[tuple[str, dict]]:
    """Every judged distance of a sample: W1 per observable and per bin, the bin groups, FPD, KPD."""
    out = [(f"w1 {k}", s) for k, s in sample["w1"].items()]
    out += [(f"w1 {k}", s) for k, s in sample["w1_groups"].items()]
    return out + [("fpd", sample["fpd"]), ("kpd", sample["kpd"])]


def test_independent_geant4_scores_one_times_the_floor(shared) -> None:
    """The issue's check: 1000 showers of train against val_uniform (floor: val_uniform halves)."""
    reference = read_showers(shared("g4_photons_val_uniform.h5"))
    independent = read_showers(shared("g4_photons_train.h5"), 0, 1000)
    result = evaluate(reference, {"train": independent}, config=FAST, options=NO_LOW_LEVEL, out_dir=None)
    model, floor = result["samples"]["train"], result["samples"][FLOOR_LABEL]
    assert result["floor_from"] == "reference halves" and model["n_showers"] == [500, 500]
    for name, entry in _judged(model):
        assert 0.6 <= entry["ratio"] <= 1.6, (name, entry)
        assert entry["pass"] is True and {"value", "floor", "ratio"} <= set(entry)
    for name, entry in _judged(floor):
        assert entry["ratio"] == 1.0 and entry["pass"] is None, name
    assert model["auc"]["value"] <= 0.56 and floor["auc"]["value"] <= 0.6
    assert set(model["auc_groups"]) == {"radial bins only", "without radial bins"}
    for group in model["auc_groups"].values():
        assert 0.40 <= group["value"] <= 0.60
    assert model["verdict"]["pass"] and model["spectrum"]["p_value"] > 1e-3
    # broken down by energy: equal-size samples in each range, scored against that range's floor
    assert list(model["energy_bins"]) == ["10-30 GeV", "30-60 GeV", "60-90 GeV"]
    for key, entry in model["energy_bins"].items():
        assert 100 <= entry["n_showers"] <= 250, key
        assert entry["n_showers"] == floor["energy_bins"][key]["n_showers"]
        assert 0.3 <= entry["w1"]["radial_profile"]["ratio"] <= 2.5
    assert len(result["features"]) == 25 and len(result["bin_edges"]["layer"]) == 11
    assert "fpd_extrapolated" in model and "kpd_unbiased" in model


def test_a_sample_identical_to_the_floor_scores_exactly_one(shared) -> None:
    showers = read_showers(shared("g4_photons_val_uniform.h5"), 0, 200)
    config = replace(FAST, classifier_folds=4, classifier_epochs=3)
    options = replace(NO_LOW_LEVEL, energy_bins_gev=(), impact="corner")  # random: each sample its own positions
    result = evaluate(showers, {"copy": showers}, config=config, options=options, floor_reference=showers, out_dir=None)
    copy = result["samples"]["copy"]
    assert result["floor_from"] == "floor reference" and copy["n_showers"] == [200, 200]
    for name, entry in _judged(copy):
        assert entry["ratio"] == 1.0, name  # same showers, same batches as the floor
    assert copy["auc"]["value"] == result["samples"][FLOOR_LABEL]["auc"]["value"]
    assert copy["fpd_extrapolated"]["value"] == pytest.approx(0.0, abs=1e-6)


def test_reference_against_itself_is_exact(shared) -> None:
    """Every distance of a sample against itself, batch for batch, is exactly 0; one mm of shift is not."""
    from caloclouds.evaluation.observables import decile_edges, high_level_features
    from caloclouds.evaluation.pipeline import cell_observables, observable_table
    from caloclouds.evaluation.scores import batched_fpd, batched_kpd, batched_w1, standardisation
    from caloclouds.showers import Showers

    showers = read_showers(shared("g4_photons_val_uniform.h5"), 0, 200)
    obs = cell_observables(showers, config=FAST)
    edges = decile_edges(obs)
    table = observable_table(obs, edges)
    scale = {name: standardisation(o) for name, o in table.items()}
    batches = [np.arange(k * 20, (k + 1) * 20) for k in range(10)]
    same = batched_w1(table, table, reference_batches=batches, other_batches=batches, scale=scale)
    assert len(same) == 28
    for name, score in same.items():
        assert score.value == 0.0 and score.error == 0.0, name
    features = high_level_features(obs, edges)[0]
    pd = {"reference_batches": batches, "other_batches": batches, "pool_size": 200}
    assert batched_kpd(features, features, **pd).value == pytest.approx(0.0, abs=1e-12)
    assert batched_fpd(features, features, **pd).value == pytest.approx(0.0, abs=1e-6)

    # the same showers moved by 1 mm in x: the radial profile and CoG x see it, the depth does not
    points = showers.points.copy()
    points[:, 0] += 1.0
    moved = Showers(points, showers.offsets, showers.incident_energy_gev, showers.conditions)
    moved_table = observable_table(cell_observables(moved, config=FAST), edges)
    shifted = batched_w1(table, moved_table, reference_batches=batches, other_batches=batches, scale=scale)
    assert shifted["cog_x_mm"].value > 1.0 and shifted["radial_profile"].value > 0.0
    assert shifted["cog_z_mm"].value < shifted["cog_x_mm"].value / 10


def test_evaluate_rejects_bad_inputs(shared) -> None:
    from caloclouds.evaluation import SpectrumMismatchError

    showers = read_showers(shared("g4_photons_val_uniform.h5"), 0, 30)
    with pytest.raises(ValueError, match="at least one"):
        evaluate(showers, {}, out_dir=None)
    with pytest.raises(ValueError, match="each half"):
        evaluate(showers[:10], {"m": showers}, out_dir=None)
    with pytest.raises(ValueError, match="must differ"):
        evaluate(showers, {"Geant4": showers}, out_dir=None)
    fixed = read_showers(shared("g4_photons_val_fixed.h5"), 0, 600)[::3]
    with pytest.raises(SpectrumMismatchError, match="allow-spectrum-mismatch") as info:
        evaluate(
            read_showers(shared("g4_photons_val_uniform.h5"), 0, 200),
            {"fixed": fixed},
            options=NO_LOW_LEVEL,
            out_dir=None,
        )
    assert info.value.label == "fixed"


def test_cli_writes_scores_plots_and_report(shared, tmp_path, capsys, evaluate_args) -> None:
    from caloclouds.cli import main

    out = tmp_path / "eval"
    config = "evaluation:\n  classifier_epochs: 5\n  classifier_folds: 5\n"
    floor = ["--floor-reference", str(shared("g4_photons_train2.h5"))]
    extra = [*floor, "--low-level-epochs", "1", "--max-ratio", "1.9"]
    code = main(evaluate_args("g4_photons_train.h5", 150, *extra, label="train", config=config))
    assert code == 0
    printed = capsys.readouterr().out
    for text in (
        "AUC high-level",
        "AUC, radial bins only",
        "AUC low-level (cells)",
        "train / floor",
        "ratio to floor by energy",
        "10-30 GeV",
        "report.html",
    ):
        assert text in printed, text
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores["samples"]) == {FLOOR_LABEL, "train"}
    train = scores["samples"]["train"]
    assert train["n_showers"] == [150, 150] and scores["floor_from"] == "floor reference"
    assert {"value", "error", "floor", "floor_error", "ratio", "ratio_error", "pass"} <= set(train["w1"]["n_hits"])
    assert {"value", "floor", "ratio", "pass", "folds"} <= set(train["auc_low_level"])
    assert scores["config"]["classifier_epochs"] == 5 and scores["options"]["thresholds"]["max_ratio"] == 1.9
    assert scores["options"]["low_level"]["epochs"] == 1
    html = (out / "report.html").read_text()
    assert "train / floor" in html and "By incident energy" in html
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == 6 and "eval_incident_energy.png" in pngs
    for name in pngs:
        assert f'src="{name}"' in html
        assert (out / name).stat().st_size > 10_000


def test_cli_refuses_a_different_spectrum_unless_allowed(tmp_path, capsys, evaluate_args) -> None:
    from caloclouds.cli import main

    args = evaluate_args("g4_photons_val_fixed.h5", 300, "--no-low-level", "--no-plots", label="fixed")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "g4_photons_val_fixed.h5" in err and "KS" in err
    assert "--energies-from" in err and not (tmp_path / "eval" / "scores.json").exists()
    assert main([*args, "--allow-spectrum-mismatch"]) == 1  # scored, and it fails
    assert "FAIL: fixed (exit 1" in capsys.readouterr().out
    fixed = json.loads((tmp_path / "eval" / "scores.json").read_text())["samples"]["fixed"]
    assert fixed["spectrum"]["p_value"] < 1e-10 and fixed["n_showers"] == [150, 150]


def test_cli_self_test(shared, tmp_path, capsys) -> None:
    from caloclouds.cli import main

    config = tmp_path / "fast.yaml"
    config.write_text("evaluation:\n  classifier_epochs: 3\n  classifier_folds: 3\n  n_batches: 3\n")
    code = main(
        [
            "evaluate",
            "--self-test",
            str(shared("g4_photons_val_uniform.h5")),
            "--max-showers",
            "60",
            "--config",
            str(config),
            "--no-low-level",
            "--perturbation",
            "none:0",
            "--perturbation",
            "radial:0.5",
        ]
    )
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "3 disjoint samples of 60 showers" in printed
    assert "none (control)" in printed and "radial +50 %" in printed and "AUC high-level" in printed
    assert main(["evaluate", "--self-test", str(shared("g4_photons_val_uniform.h5")), "--perturbation", "twist:1"]) == 2
    assert "twist" in capsys.readouterr().err
    assert main(["evaluate", "--self-test", str(shared("g4_photons_val_fixed.h5")), "--max-showers", "300"]) == 2
    assert "3 x 300" in capsys.readouterr().err


def test_cli_errors_are_one_line(shared, tmp_path, capsys) -> None:
    from caloclouds.cli import main

    ref = str(shared("g4_photons_val_uniform.h5"))
    assert main(["evaluate", "--reference", ref, "--out", str(tmp_path)]) == 2
    assert "--generated" in capsys.readouterr().err
    assert (
        main(
            [
                "evaluate",
                "--reference",
                ref,
                "--generated",
                ref,
                "--generated",
                ref,
                "--label",
                "a",
                "--out",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "--label" in capsys.readouterr().err
    assert (
        main(["evaluate", "--reference", str(tmp_path / "missing.h5"), "--generated", ref, "--out", str(tmp_path)]) == 2
    )
    assert "missing.h5" in capsys.readouterr().err


def test_cli_reads_generated_root_files(shared, tmp_path, capsys, evaluate_args) -> None:
    from caloclouds.cli import main
    from caloclouds.io.root import write_root

    generated = tmp_path / "gen.root"
    write_root(generated, read_showers(shared("g4_photons_train.h5"), 0, 120))
    out = tmp_path / "eval"
    code = main(evaluate_args(generated, 120, "--no-plots", "--no-low-level"))
    assert code == 0, capsys.readouterr().err
    scores = json.loads((out / "scores.json").read_text())
    assert scores["samples"]["gen"]["n_showers"] == [60, 60]  # scored on a half, like the floor
    assert not list(out.glob("*.png")) and (out / "report.html").is_file()


def test_cli_voxel_space_scores(shared, tmp_path, capsys, evaluate_args) -> None:
    from caloclouds.cli import main

    out = tmp_path / "eval"
    extra = ["--no-plots", "--voxel-mesh", "ds2", "--no-low-level", "--allow-spectrum-mismatch", "--no-fail-exit"]
    code = main(evaluate_args("g4_photons_val_fixed.h5", 100, *extra, label="fixed"))
    assert code == 0, capsys.readouterr().err
    assert "voxel FPD x10^3 (ds2)" in capsys.readouterr().out
    samples = json.loads((out / "scores.json").read_text())["samples"]
    floor, fixed = samples[FLOOR_LABEL]["voxel_space"], samples["fixed"]["voxel_space"]
    assert floor["mesh"] == fixed["mesh"] == "ds2" and fixed["n_features"] == 242
    # fixed energies (10/50/90 GeV) against a uniform spectrum: far above the floor
    assert fixed["kpd_x1e3"] > floor["kpd_x1e3"] + 3 * np.hypot(fixed["kpd_err_x1e3"], floor["kpd_err_x1e3"])
    assert (
        main(
            [
                "evaluate",
                "--reference",
                str(shared("g4_photons_val_uniform.h5")),
                "--generated",
                str(shared("g4_photons_val_fixed.h5")),
                "--out",
                str(out),
                "--voxel-mesh",
                "no-such-mesh",
            ]
        )
        == 2
    )
    assert "no-such-mesh" in capsys.readouterr().err
