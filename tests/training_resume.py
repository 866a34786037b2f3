"""Checks shared by the exact-resume tests of every training (Shower Flow, PointWise Net, CM, voxel):
two run folders, one interrupted and resumed, one not, hold the same run."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from caloclouds.training.loop import TimeBudget


def _assert_same_tensors(a: Mapping[str, Any], b: Mapping[str, Any], fitted: tuple[str, ...]) -> None:
    assert a.keys() == b.keys()
    for k, v in a.items():
        # a least-squares fit before the first step (LAPACK) may differ in the last bit between two
        # fresh runs; it is fitted once and loaded on resume, so this is not a resume difference
        tol = 1e-12 if k.startswith(fitted) else 0.0
        torch.testing.assert_close(b[k], v, rtol=tol, atol=tol, msg=lambda m, k=k: f"{k}: {m}")


def assert_same_weights(a_path: Path, b_path: Path, *, fitted: tuple[str, ...] = ()) -> None:
    """The ``state_dict`` of two checkpoint files are bit-identical (the keys starting with one of
    ``fitted`` to 1e-12: fitted by LAPACK before training, not trained)."""
    a = torch.load(a_path, weights_only=True)["state_dict"]
    b = torch.load(b_path, weights_only=True)["state_dict"]
    _assert_same_tensors(a, b, fitted)


def assert_same_run(a_dir: Path, b_dir: Path, steps: int, *, fitted: tuple[str, ...] = ()) -> None:
    """``checkpoint.pt`` of two run folders: same step, loss log, saved and trained weights, optimiser
    state and random stream (the header and ``train_state`` every training writes)."""
    a = torch.load(a_dir / "checkpoint.pt", weights_only=True)
    b = torch.load(b_dir / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == steps
    assert a["loss_log"] == b["loss_log"] and len(a["loss_log"]) == steps
    _assert_same_tensors(a["state_dict"], b["state_dict"], fitted)
    ta, tb = a["train_state"], b["train_state"]
    _assert_same_tensors(ta.get("model", {}), tb.get("model", {}), fitted)
    assert ta["optimizer"]["state"].keys() == tb["optimizer"]["state"].keys()
    for k, v in ta["optimizer"]["state"].items():
        for name, t in v.items():
            torch.testing.assert_close(tb["optimizer"]["state"][k][name], t, rtol=0, atol=0)
    assert all(torch.equal(x, y) for x, y in zip(ta["rng"], tb["rng"], strict=True))


def step_budget(steps: int) -> TimeBudget:
    """A time budget read from a clock that advances by one at every step: the run stops, after a
    checkpoint, a few steps short of ``steps``, however fast or loaded the machine is."""
    ticks = itertools.count()
    return TimeBudget(float(steps), clock=lambda: float(next(ticks)))
