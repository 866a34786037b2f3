"""Exact resume of PointWise Net training: killed (SIGKILL), stopped (SIGTERM) or out of time, a run
resumed with the same seed ends identical to an uninterrupted one (weights, EMA, optimiser, RNG,
loss log). The interrupted runs are real processes of the CLI, killed by real signals."""

from __future__ import annotations

import csv
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from caloclouds.cli import main
from caloclouds.config import RunConfig, config_to_dict
from caloclouds.diffusion.training import distill, train_diffusion
from caloclouds.errors import CaloCloudsError
from tests.training_resume import step_budget

from .conftest import TINY_HIDDEN

STEPS = 30


def _layer_config():  # noqa: ANN202
    """The tiny network, per layer, on random subsets of points, checkpointing every 5 steps, with the
    learning rate decaying over the last 20 steps (so a resume must follow the schedule too)."""
    cfg = RunConfig()
    d = dataclasses.replace(
        cfg.diffusion,
        hidden=TINY_HIDDEN,
        fourier_features=16,
        time_features=16,
        batch_size=4,
        learning_rate=3e-3,
        lr_decay_steps=20,
        per_layer=True,
        points_per_shower=40,
        checkpoint_every=5,
        val_showers=4,
    )
    return dataclasses.replace(cfg, diffusion=d)


@pytest.fixture
def layer_config():  # noqa: ANN201
    return _layer_config()


@pytest.fixture(scope="module")
def straight(tmp_path_factory, toy_file) -> Path:  # noqa: ANN001
    """An uninterrupted CLI run of STEPS steps (the reference of the interrupted ones)."""
    out = tmp_path_factory.mktemp("straight") / "run"
    assert main(_cli(_layer_config(), toy_file, out, "--steps", str(STEPS))) == 0
    return out


def _cli(config, toy_file: Path, out: Path, *extra: str) -> list[str]:  # noqa: ANN001
    cfg_path = out.parent / f"{out.name}.yaml"
    cfg_path.write_text(yaml.safe_dump(config_to_dict(config)))
    return [
        "train-diffusion",
        "--config",
        str(cfg_path),
        "--data",
        str(toy_file),
        "--val",
        str(toy_file),
        "--out",
        str(out),
        "--seed",
        "5",
        "--threads",
        "1",
        "--no-progress",
        *extra,
    ]


def _start(args: list[str]) -> subprocess.Popen:
    code = "import sys; from caloclouds.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for_rows(out: Path, rows: int, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    """Wait until the run has written ``rows`` metrics rows (so it is mid-run, past a checkpoint)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        path = out / "metrics.csv"
        if path.is_file() and len(path.read_text().splitlines()) > rows:
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it was interrupted: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the run wrote no checkpoint in time")


def _assert_same_run(a_dir: Path, b_dir: Path) -> None:
    a = torch.load(a_dir / "checkpoint.pt", weights_only=True)
    b = torch.load(b_dir / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == STEPS
    assert a["loss_log"] == b["loss_log"]
    for part in ("state_dict",):
        for k, v in a[part].items():
            torch.testing.assert_close(b[part][k], v, rtol=0, atol=0)
    for k, v in a["train_state"]["model"].items():
        torch.testing.assert_close(b["train_state"]["model"][k], v, rtol=0, atol=0)
    for k, v in a["train_state"]["optimizer"]["state"].items():
        for name, t in v.items():
            torch.testing.assert_close(b["train_state"]["optimizer"]["state"][k][name], t, rtol=0, atol=0)
    assert torch.equal(a["train_state"]["rng"][0], b["train_state"]["rng"][0])
    # the validation loss is a function of the weights: the rows at common steps agree
    val_a = {r["step"]: r["val_loss"] for r in a["metrics"]}
    val_b = {r["step"]: r["val_loss"] for r in b["metrics"]}
    assert all(val_b[s] == v or (v != v and val_b[s] != val_b[s]) for s, v in val_a.items() if s in val_b)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path, toy_file, layer_config, straight, how) -> None:  # noqa: ANN001
    cut = tmp_path / "cut"
    # a run much longer than STEPS, interrupted a few checkpoints in
    proc = _start(_cli(layer_config, toy_file, cut, "--steps", str(STEPS)))
    _wait_for_rows(cut, 2, proc)
    os.kill(proc.pid, getattr(signal, how))
    out, err = proc.communicate(timeout=60)
    if how == "SIGTERM":
        assert proc.returncode == 128 + signal.SIGTERM, err
        assert "stopped by SIGTERM" in out and "--resume" in out
    else:
        assert proc.returncode == -signal.SIGKILL
    step = torch.load(cut / "checkpoint.pt", weights_only=True)["step"]
    assert 0 < step < STEPS, "interrupt the run mid-way (make STEPS larger if the machine is fast)"
    if how == "SIGTERM":
        assert not list(cut.glob("*.tmp*")), "no temp file may be left behind"
    # a SIGKILL that lands inside a checkpoint write leaves that write's temp file (nothing can catch
    # it); the next run of the folder removes it, as it removes every dead writer's temp file

    assert main(_cli(layer_config, toy_file, cut, "--steps", str(STEPS), "--resume")) == 0
    assert not list(cut.glob("*.tmp*")), "the resumed run must remove a killed writer's temp file"
    _assert_same_run(straight, cut)
    with open(cut / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["step"]) for r in rows][-1] == STEPS and all(float(r["val_loss"]) > 0 for r in rows)
    assert (cut / "curve.png").stat().st_size > 1000


def test_time_budget_stops_after_a_checkpoint_and_resumes_exactly(tmp_path, toy_file, layer_config) -> None:  # noqa: ANN001
    from caloclouds.diffusion.data import TrainingData

    data = TrainingData.from_file(toy_file)
    train_diffusion(layer_config, data, tmp_path / "straight", steps=STEPS, seed=5, progress=False)
    cut = train_diffusion(
        layer_config, data, tmp_path / "cut", steps=STEPS, seed=5, progress=False, time_budget_s=step_budget(STEPS // 2)
    )
    assert cut.stopped == "time budget" and 0 < cut.step < STEPS
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["step"] == cut.step
    done = train_diffusion(layer_config, data, tmp_path / "cut", steps=STEPS, seed=5, progress=False, resume=True)
    assert done.step == STEPS and not done.stopped and done.elapsed_s >= cut.elapsed_s
    _assert_same_run(tmp_path / "straight", tmp_path / "cut")


def test_resume_without_a_checkpoint_is_an_error(tmp_path, toy_file, tiny_config, capsys) -> None:  # noqa: ANN001
    with pytest.raises(CaloCloudsError, match="no checkpoint to resume"):
        train_diffusion(tiny_config, toy_file, tmp_path / "typo", steps=1, resume=True, progress=False)
    train_diffusion(tiny_config, toy_file, tmp_path / "teacher", steps=1, progress=False)
    with pytest.raises(CaloCloudsError, match="no checkpoint to resume"):
        distill(tmp_path / "teacher", toy_file, tmp_path / "cm", steps=1, resume=True, progress=False)
    assert main(_cli(tiny_config, toy_file, tmp_path / "t", "--steps", "1", "--time-budget", "soon")) == 2
    assert "cannot read the duration 'soon'" in capsys.readouterr().err


def test_distill_time_budget_and_resume(tmp_path, toy_file, layer_config) -> None:  # noqa: ANN001
    from caloclouds.diffusion.data import TrainingData

    data = TrainingData.from_file(toy_file)
    train_diffusion(layer_config, data, tmp_path / "t", steps=5, progress=False)
    cfg = dataclasses.replace(
        layer_config, distillation=dataclasses.replace(layer_config.distillation, checkpoint_every=5)
    )
    distill(tmp_path / "t", data, tmp_path / "a", config=cfg, steps=20, progress=False, val=data)
    cut = distill(
        tmp_path / "t",
        data,
        tmp_path / "b",
        config=cfg,
        steps=20,
        progress=False,
        val=data,
        time_budget_s=step_budget(8),
    )
    assert cut.stopped == "time budget"
    distill(tmp_path / "t", data, tmp_path / "b", config=cfg, steps=20, progress=False, val=data, resume=True)
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert a["loss_log"] == b["loss_log"] and b["step"] == 20
    for k, v in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][k], v, rtol=0, atol=0)
    assert (tmp_path / "b" / "metrics.csv").is_file() and (tmp_path / "b" / "curve.png").is_file()


def test_learning_rate_schedule_is_constant_then_cosine(layer_config) -> None:  # noqa: ANN001
    from caloclouds.diffusion.loop import scheduled_lr

    d = dataclasses.replace(
        layer_config.diffusion, steps=100, lr_decay_steps=40, learning_rate=1e-3, final_lr_factor=0.1
    )
    lrs = [scheduled_lr(s, d) for s in range(101)]
    assert lrs[0] == lrs[60] == 1e-3 and lrs[100] == pytest.approx(1e-4)
    assert lrs[80] == pytest.approx(0.55e-3) and all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert scheduled_lr(99, dataclasses.replace(d, lr_decay_steps=0)) == 1e-3


@pytest.mark.parametrize("bad", [["--lr", "-1"], ["--lr", "nan"], ["--steps", "0"], ["--batch-size", "0"]])
def test_bad_training_settings_are_one_line_errors(tmp_path, toy_file, tiny_config, capsys, bad) -> None:  # noqa: ANN001
    assert main(_cli(tiny_config, toy_file, tmp_path / "t", *bad)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "must be" in err, err
    assert not (tmp_path / "t").exists()
    assert main(_cli(tiny_config, toy_file, tmp_path / "teacher", "--steps", "1")) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "distill",
                "--teacher",
                str(tmp_path / "teacher"),
                "--data",
                str(toy_file),
                "--out",
                str(tmp_path / "cm"),
                "--no-progress",
                *bad,
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "Traceback" not in err and "must be" in err, err
