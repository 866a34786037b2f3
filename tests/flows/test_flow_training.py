"""Training: the run folder (model.pt = best, checkpoint.pt = last), exact resume after a kill, a
SIGTERM or the time budget, old run folders, and the CLI verbs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from caloclouds.cli import main
from caloclouds.errors import ConfigError
from flows.training import train_shower_flow
from tests.training_resume import assert_same_run, assert_same_weights, step_budget


def _rows(path):
    """The loss log without its wall-clock column (which differs between runs)."""
    with open(path) as f:
        return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in csv.DictReader(f)]


def test_tiny_training_learns(tiny_run) -> None:
    rows = _rows(tiny_run / "metrics.csv")
    assert [int(float(r["step"])) for r in rows] == [100, 200]
    for name in ("model.pt", "checkpoint.pt", "config.yaml", "curve.png"):
        assert (tiny_run / name).is_file(), name
    assert float(rows[-1]["val_loss"]) < float(rows[0]["val_loss"]) + 5  # trained, not diverged
    assert list(tiny_run.glob("features-*.npz"))  # features cached in the run folder
    best = torch.load(tiny_run / "model.pt", weights_only=True)
    assert "train_state" not in best and best["step"] == best["training"]["step"]
    assert best["training"]["val_loss"] == min(float(r["val_loss"]) for r in rows)
    assert best["training"]["calibrated"]  # the mean layer profile was calibrated on the training set
    assert not torch.equal(best["preprocessing"]["energy_frac_scale"], torch.ones(30))


def test_calibration_matches_training_profile(tiny_flow, shared) -> None:
    import numpy as np

    from flows.features import file_features
    from flows.quality import flow_sample_features

    train = file_features(shared("g4_photons_val_fixed.h5"), n_layers=30)
    sampled = flow_sample_features(tiny_flow, np.repeat(train.incident_energy_gev, 4), seed=1)
    target = train.energy_per_layer_mev.mean(0)
    got = sampled.energy_per_layer_mev.mean(0)
    core = target > 0.05 * target.max()
    assert np.all(np.abs(got[core] / target[core] - 1) < 0.1)


def test_resume_after_a_kill_continues_exactly(shared, tmp_path, make_tiny_config) -> None:
    """Killed at step 30 (no chance to save), the run resumes from its checkpoint at step 20."""
    data = shared("g4_photons_val_fixed.h5")
    cfg = make_tiny_config(eval_every=20)
    steps = 60
    torch.set_num_threads(1)
    straight = train_shower_flow(cfg, data=data, out=tmp_path / "straight", steps=steps, progress=False)

    def kill_at_30(info):
        if info["step"] == 30:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_shower_flow(cfg, data=data, out=tmp_path / "cut", steps=steps, progress=False, callback=kill_at_30)
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["step"] == 20
    with pytest.raises(ConfigError, match="--resume"):
        train_shower_flow(cfg, data=data, out=tmp_path / "cut", steps=steps, progress=False)
    resumed = train_shower_flow(cfg, data=data, out=tmp_path / "cut", steps=steps, progress=False, resume=True)
    assert resumed["step"] == straight["step"] == steps
    assert_same_run(tmp_path / "straight", tmp_path / "cut", steps)
    assert _rows(straight["log"]) == _rows(resumed["log"])  # the loss log continued without a gap
    assert_same_weights(straight["best"], resumed["best"])  # the same flow became model.pt


def test_time_budget_stops_after_a_checkpoint_and_resumes_exactly(shared, tmp_path, make_tiny_config) -> None:
    data = shared("g4_photons_val_fixed.h5")
    cfg = make_tiny_config(eval_every=20)
    steps = 60
    torch.set_num_threads(1)
    straight = train_shower_flow(cfg, data=data, out=tmp_path / "straight", steps=steps, progress=False, val=data)
    budget = step_budget(25)
    cut = train_shower_flow(
        cfg, data=data, out=tmp_path / "cut", steps=steps, progress=False, val=data, time_budget_s=budget
    )
    assert cut["stopped"] == "time budget" and 0 < cut["step"] < steps
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["step"] == cut["step"]
    resumed = train_shower_flow(
        cfg, data=data, out=tmp_path / "cut", steps=steps, progress=False, val=data, resume=True
    )
    assert resumed["step"] == steps and not resumed["stopped"]
    assert resumed["best_val_loss"] == straight["best_val_loss"]
    assert_same_run(tmp_path / "straight", tmp_path / "cut", steps)
    assert_same_weights(straight["best"], resumed["best"])


def test_a_flow_run_folder_of_the_earlier_layout_loads_and_is_not_overwritten(
    tmp_path, tiny_run, shared, make_tiny_config
) -> None:
    """best.pt / last.pt (before the shared run folder): load_shower_flow takes it, training refuses it."""
    import shutil

    from flows import load_shower_flow

    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(tiny_run / "model.pt", old / "best.pt")
    shutil.copy(tiny_run / "checkpoint.pt", old / "last.pt")
    assert load_shower_flow(old).preprocessing.n_layers == 30
    with pytest.raises(ConfigError, match="earlier version"):
        train_shower_flow(make_tiny_config(), data=shared("g4_photons_val_fixed.h5"), out=old, steps=1, progress=False)


def test_sigterm_during_validation_resumes_exactly(shared, tmp_path, make_tiny_config, monkeypatch) -> None:
    """SIGTERM while the validation loss is computed: the run finishes that validation, saves, stops;
    resumed, it ends identical to an uninterrupted run (it used to lose the row and differ)."""
    import os
    import signal

    import flows.training as training

    data = shared("g4_photons_val_fixed.h5")
    cfg = make_tiny_config(eval_every=20)
    steps = 60
    torch.set_num_threads(1)
    straight = train_shower_flow(cfg, data=data, out=tmp_path / "straight", steps=steps, progress=False, val=data)
    mean_loss = training._mean_loss
    calls = []

    def terminated_during_validation(flow, features):  # noqa: ANN001, ANN202
        calls.append(1)
        if len(calls) == 2:  # the validation at step 40
            os.kill(os.getpid(), signal.SIGTERM)
        return mean_loss(flow, features)

    monkeypatch.setattr(training, "_mean_loss", terminated_during_validation)
    cut = train_shower_flow(cfg, data=data, out=tmp_path / "cut", steps=steps, progress=False, val=data)
    assert cut["stopped"] == "SIGTERM" and cut["step"] == 40
    monkeypatch.setattr(training, "_mean_loss", mean_loss)
    resumed = train_shower_flow(
        cfg, data=data, out=tmp_path / "cut", steps=steps, progress=False, resume=True, val=data
    )
    assert resumed["best_val_loss"] == straight["best_val_loss"]
    assert_same_run(tmp_path / "straight", tmp_path / "cut", steps)
    assert _rows(straight["log"]) == _rows(resumed["log"])
    assert_same_weights(straight["best"], resumed["best"])


def test_cli_train_check_bench(shared, tmp_path, capsys) -> None:
    data = shared("g4_photons_val_fixed.h5")
    yaml = tmp_path / "tiny.yaml"
    yaml.write_text(
        "flow:\n  n_blocks: 1\n  couplings_per_block: 1\n  coupling_hidden: [16]\n"
        "  spline_hidden: [8]\n  spline_bins: 4\n  batch_size: 32\n  eval_every: 20\n"
    )
    out = tmp_path / "run"
    assert (
        main(
            [
                "train-flow",
                "--config",
                str(yaml),
                "--data",
                str(data),
                "--out",
                str(out),
                "--steps",
                "20",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "best checkpoint" in capsys.readouterr().out
    assert (
        main(
            [
                "check-flow",
                "--flow",
                str(out),
                "--reference",
                str(data),
                "--samples-per-shower",
                "1",
                "--json",
                str(tmp_path / "check.json"),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "W1 floor" in text and "E_vis/E_inc" in text and "E_layer_29" in text and "cog_y" in text
    assert "spread at fixed E_inc" in text and "depth (mean layer)" in text
    report = json.loads((tmp_path / "check.json").read_text())
    assert len(report["spread_ratio"]) == 3 and all(r > 0 for r in report["spread_ratio"])
    assert main(["bench-flow", "--flow", str(out), "--repeats", "20", "--warmup", "2"]) == 0
    assert "median" in capsys.readouterr().out
    assert main(["train-flow", "--data", str(data), "--out", str(out), "--steps", "0"]) == 2


def test_spread_at_fixed_energy_removes_the_energy_trend():
    from flows.quality import spread_at_fixed_energy

    rng = np.random.default_rng(0)
    energy = rng.uniform(10, 90, 20000)
    values = 0.03 * energy - 1e-4 * energy**2 + rng.normal(0.0, 0.5, energy.size)
    assert spread_at_fixed_energy(values, energy) == pytest.approx(0.5, rel=0.03)


def test_flow_training_command_from_new_and_old_run_folders(tiny_run, tmp_path) -> None:
    """What bundle records as the flow's training command: from model.pt's training record, or from
    the config.json of a run folder of an earlier version."""
    import shutil

    from flows import default_flow_path
    from flows.checkpoint import flow_training_command

    command = flow_training_command(tiny_run)
    assert command.startswith("caloclouds train-flow --data ") and "--val " in command and "(steps 200)" in command
    old = tmp_path / "old"
    old.mkdir()
    # an earlier version's flow, which recorded no training files: the normal-incidence model's
    shutil.copy(default_flow_path().parents[1] / "ild_normal_incidence" / "flow.pt", old / "best.pt")
    assert flow_training_command(old) is None
    (old / "config.json").write_text(json.dumps({"data": "train.h5", "val": "val.h5", "steps": 1200}))
    assert flow_training_command(old) == f"caloclouds train-flow --data train.h5 --val val.h5 --out {old} (steps 1200)"
