"""End-to-end evaluation on the shared Geant4 files: consistency checks and the CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from caloclouds.config import EvaluationConfig
from caloclouds.evaluation import FLOOR_LABEL, evaluate
from caloclouds.io import read_showers

FAST = EvaluationConfig(classifier_epochs=15)


def test_geant4_halves_are_indistinguishable(shared) -> None:
    showers = read_showers(shared("g4_photons_val_uniform.h5"))
    rng = np.random.default_rng(7)
    perm = rng.permutation(len(showers))
    half = len(showers) // 2
    reference, independent = showers[np.sort(perm[:half])], showers[np.sort(perm[half:])]
    result = evaluate(reference, {"independent G4": independent}, config=FAST, out_dir=None)
    model = result["samples"]["independent G4"]
    floor = result["samples"][FLOOR_LABEL]
    assert 0.45 <= model["auc"]["value"] <= 0.55
    assert 0.40 <= floor["auc"]["value"] <= 0.60
    # the same classifier on feature subsets: also blind for an independent Geant4 sample
    assert set(model["auc_groups"]) == {"radial bins only", "without radial bins"}
    for group in model["auc_groups"].values():
        assert 0.40 <= group["value"] <= 0.60
    assert model["n_showers"] == [half, len(showers) - half]
    # W1 of an independent Geant4 sample is at the floor: within 3 sigma for every observable
    for name, w in model["w1"].items():
        f = floor["w1"][name]
        assert w["value"] <= f["value"] + 3 * np.hypot(w["error"], f["error"]) + 1e-12, name
    assert model["fpd"]["value"] < 0.01 and abs(model["kpd"]["value"]) < 0.01
    assert len(result["features"]) == 25 and len(result["bin_edges"]["layer"]) == 11


def test_reference_against_itself_is_exact(shared) -> None:
    showers = read_showers(shared("g4_photons_val_uniform.h5"), 0, 200)
    config = replace(FAST, classifier_folds=4, classifier_epochs=3)
    result = evaluate(showers, {"copy": showers}, config=config, out_dir=None)
    copy = result["samples"]["copy"]
    assert copy["fpd"]["value"] == pytest.approx(0.0, abs=1e-6)
    # same batches are compared when the generated sample is the reference itself in another order
    assert all(np.isfinite(v["value"]) for v in copy["w1"].values())


def test_evaluate_rejects_bad_inputs(shared) -> None:
    showers = read_showers(shared("g4_photons_val_uniform.h5"), 0, 30)
    with pytest.raises(ValueError, match="at least one"):
        evaluate(showers, {}, out_dir=None)
    with pytest.raises(ValueError, match="each half"):
        evaluate(showers[:10], {"m": showers}, out_dir=None)
    with pytest.raises(ValueError, match="must differ"):
        evaluate(showers, {"Geant4": showers}, out_dir=None)


def test_cli_writes_scores_plots_and_report(shared, tmp_path, capsys) -> None:
    from caloclouds.cli import main

    out = tmp_path / "eval"
    config = tmp_path / "fast.yaml"
    config.write_text("evaluation:\n  classifier_epochs: 5\n  classifier_folds: 5\n")
    code = main([
        "evaluate", "--reference", str(shared("g4_photons_val_uniform.h5")),
        "--generated", str(shared("g4_photons_val_fixed.h5")), "--label", "fixed",
        "--out", str(out), "--max-showers", "300", "--config", str(config),
    ])
    assert code == 0
    printed = capsys.readouterr().out
    assert "classifier AUC" in printed and "AUC, radial bins only" in printed and "report.html" in printed
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores["samples"]) == {FLOOR_LABEL, "fixed"}
    assert scores["samples"]["fixed"]["n_showers"] == [300, 300]
    assert scores["config"]["classifier_epochs"] == 5
    html = (out / "report.html").read_text()
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == 5
    for name in pngs:
        assert f'src="{name}"' in html
        assert (out / name).stat().st_size > 10_000


def test_cli_errors_are_one_line(shared, tmp_path, capsys) -> None:
    from caloclouds.cli import main

    ref = str(shared("g4_photons_val_uniform.h5"))
    assert main(["evaluate", "--reference", ref, "--out", str(tmp_path)]) == 2
    assert "--generated" in capsys.readouterr().err
    assert main(["evaluate", "--reference", ref, "--generated", ref, "--generated", ref,
                 "--label", "a", "--out", str(tmp_path)]) == 2
    assert "--label" in capsys.readouterr().err
    assert main(["evaluate", "--reference", str(tmp_path / "missing.h5"), "--generated", ref,
                 "--out", str(tmp_path)]) == 2
    assert "missing.h5" in capsys.readouterr().err


def test_cli_reads_generated_root_files(shared, tmp_path, capsys) -> None:
    from caloclouds.cli import main
    from caloclouds.io.root import write_root

    generated = tmp_path / "gen.root"
    write_root(generated, read_showers(shared("g4_photons_val_fixed.h5"), 0, 120))
    config = tmp_path / "fast.yaml"
    config.write_text("evaluation:\n  classifier_epochs: 2\n  classifier_folds: 3\n  n_batches: 3\n")
    out = tmp_path / "eval"
    code = main([
        "evaluate", "--reference", str(shared("g4_photons_val_uniform.h5")), "--generated", str(generated),
        "--out", str(out), "--max-showers", "120", "--config", str(config), "--no-plots",
    ])
    assert code == 0, capsys.readouterr().err
    scores = json.loads((out / "scores.json").read_text())
    assert scores["samples"]["gen"]["n_showers"] == [120, 120]
    assert not list(out.glob("*.png")) and (out / "report.html").is_file()


def test_cli_voxel_space_scores(shared, tmp_path, capsys) -> None:
    from caloclouds.cli import main

    config = tmp_path / "fast.yaml"
    config.write_text("evaluation:\n  classifier_epochs: 2\n  classifier_folds: 3\n  n_batches: 3\n")
    out = tmp_path / "eval"
    code = main([
        "evaluate", "--reference", str(shared("g4_photons_val_uniform.h5")),
        "--generated", str(shared("g4_photons_val_fixed.h5")), "--label", "fixed",
        "--out", str(out), "--max-showers", "100", "--config", str(config), "--no-plots", "--voxel-mesh", "ds2",
    ])
    assert code == 0, capsys.readouterr().err
    assert "voxel FPD x10^3 (ds2)" in capsys.readouterr().out
    samples = json.loads((out / "scores.json").read_text())["samples"]
    floor, fixed = samples[FLOOR_LABEL]["voxel_space"], samples["fixed"]["voxel_space"]
    assert floor["mesh"] == fixed["mesh"] == "ds2" and fixed["n_features"] == 242
    # fixed energies (10/50/90 GeV) against a uniform spectrum: far above the floor
    assert fixed["kpd_x1e3"] > floor["kpd_x1e3"] + 3 * np.hypot(fixed["kpd_err_x1e3"], floor["kpd_err_x1e3"])
    assert main(["evaluate", "--reference", str(shared("g4_photons_val_uniform.h5")),
                 "--generated", str(shared("g4_photons_val_fixed.h5")), "--out", str(out),
                 "--voxel-mesh", "no-such-mesh"]) == 2
    assert "no-such-mesh" in capsys.readouterr().err
