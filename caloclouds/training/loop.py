"""The step loop every training shares (Shower Flow, PointWise Net, CM, voxel).

:func:`run_steps` runs optimiser steps with a progress bar, keeps the loss of every step in a
:class:`RunLog`, adds a metrics row (mean loss since the previous row, validation loss, training
time, learning rate) and calls the run's ``save_fn`` every ``checkpoint_every`` steps and at the end.
It stops early, after a checkpoint, when the next step would overrun the time budget or on SIGTERM /
SIGINT (:class:`caloclouds.runcontrol.StopRequest`). The run's own code writes exact checkpoints
(weights, optimiser, random stream, the log), so ``--resume`` continues as if nothing had happened.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from caloclouds.runcontrol import StopRequest

__all__ = [
    "DistInfo",
    "RunLog",
    "StepsRun",
    "TimeBudget",
    "TrainResult",
    "make_result",
    "optimiser_step",
    "run_steps",
]


@dataclass(frozen=True)
class TimeBudget:
    """A time budget of ``seconds`` as read from ``clock`` (default the wall clock).

    Every training function's ``time_budget_s`` takes seconds or one of these. A clock that advances
    by one per reading (the loop reads it once before each step) makes the budget a step count: how
    tests stop a run mid-way whatever the speed of the machine that day.
    """

    seconds: float
    clock: Callable[[], float] = time.perf_counter


@dataclass(frozen=True)
class TrainResult:
    """What a training run did: final step, steps and time of this call, throughput, last loss."""

    out_dir: Path
    step: int
    steps_run: int
    seconds: float
    iterations_per_s: float
    points_per_s: float
    last_loss: float
    stopped: str = ""  # why it stopped early: "" (finished), "time budget", "SIGTERM", "SIGINT"
    elapsed_s: float = 0.0  # training time of the run over all its slices


@dataclass
class DistInfo:
    """This process's place under ``torchrun`` (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1


@dataclass
class RunLog:
    """What a run records over its whole life (carried in the checkpoint across resumed slices).

    Attributes:
        loss: training loss of every step.
        metrics: one row per checkpoint: ``step``, ``loss`` (mean since the previous row),
            ``val_loss`` (NaN without validation data), ``elapsed_s`` (training time of all
            slices), ``lr``.
        elapsed_s: training time of all slices so far.
    """

    loss: list[float]
    metrics: list[dict[str, float]]
    elapsed_s: float = 0.0

    @classmethod
    def from_checkpoint(cls, ck: dict[str, Any]) -> RunLog:
        return cls(
            list(ck.get("loss_log", [])), [dict(r) for r in ck.get("metrics", [])], float(ck.get("elapsed_s", 0.0))
        )


@dataclass(frozen=True)
class StepsRun:
    """What one call of :func:`run_steps` did."""

    steps_run: int
    seconds: float
    points: int
    stopped: str = ""  # "" (all steps done), "time budget" or the signal's name


def run_steps(
    *,
    step_fn: Callable[[int], tuple[Tensor, int]],
    save_fn: Callable[[int, bool], None],
    start: int,
    steps: int,
    checkpoint_every: int,
    log: RunLog,
    dist_info: DistInfo | None = None,
    progress: bool,
    desc: str,
    val_fn: Callable[[], float] | None = None,
    lr_fn: Callable[[], float] | None = None,
    time_budget_s: float | TimeBudget | None = None,
) -> StepsRun:
    """Run steps ``start..steps-1``, checkpointing every ``checkpoint_every`` steps and at the end.

    Args:
        step_fn: one optimiser step of 0-based index ``step``; returns (loss, points or showers in it).
        save_fn: ``save_fn(step, final)`` writes the checkpoint after ``step`` steps (``final``: the
            last of this call, e.g. to redraw the curve).
        start: steps already done (0, or the step of the resumed checkpoint).
        steps: total steps of the run.
        checkpoint_every: steps between checkpoints.
        log: the run's log; a row is added to ``log.metrics`` before each checkpoint.
        dist_info: rank and world under ``torchrun`` (losses are averaged over ranks); default one process.
        progress: show a progress bar (rank 0 only).
        desc: label of the progress bar.
        val_fn: validation loss of the current weights (NaN in the row without it).
        lr_fn: current learning rate (NaN in the row without it).
        time_budget_s: stop, after a checkpoint, before the next step would overrun this many seconds
            (or this :class:`TimeBudget`).

    Returns:
        :class:`StepsRun`.
    """
    from tqdm.auto import tqdm

    dist_info = dist_info or DistInfo()
    bar = tqdm(total=steps, initial=start, desc=desc, disable=not progress or dist_info.rank != 0, unit="it")
    points = 0
    smooth = None
    budget = TimeBudget(float(time_budget_s)) if isinstance(time_budget_s, (int, float)) else time_budget_s
    t0 = time.perf_counter()
    c0 = budget.clock() if budget is not None else 0.0
    elapsed0 = log.elapsed_s
    last_row = log.metrics[-1]["step"] if log.metrics else 0
    stopped = ""
    done = start

    def checkpoint(step: int, final: bool = False) -> None:
        nonlocal last_row
        recent = log.loss[int(last_row) : step] if step > last_row else log.loss[-1:]
        log.elapsed_s = elapsed0 + time.perf_counter() - t0
        log.metrics.append(
            {
                "step": float(step),
                "loss": float(sum(recent) / len(recent)) if recent else float("nan"),
                "val_loss": val_fn() if val_fn is not None else float("nan"),
                "elapsed_s": log.elapsed_s,
                "lr": lr_fn() if lr_fn is not None else float("nan"),
            }
        )
        last_row = step
        save_fn(step, final)

    with StopRequest() as stop:
        for step in range(start, steps):
            ran = budget.clock() - c0 if budget is not None else 0.0
            if budget is not None and step > start and ran + ran / (step - start) > budget.seconds:
                stopped = "time budget"
                break
            loss, n_points = step_fn(step)
            if dist_info.active:
                import torch.distributed as dist

                stats = torch.stack([loss.detach().float().cpu(), torch.tensor(float(n_points))])
                dist.all_reduce(stats)
                value, n_points = float(stats[0]) / dist_info.world, int(stats[1])
            else:
                value = float(loss)
            log.loss.append(value)
            points += n_points
            done = step + 1
            smooth = value if smooth is None else 0.98 * smooth + 0.02 * value
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{smooth:.4f}")
            if stop.requested:
                stopped = signal.Signals(stop.signum).name
            if done % checkpoint_every == 0 or done == steps or stopped:
                checkpoint(done, final=done == steps or bool(stopped))
                if stop.requested and not stopped:  # came during this checkpoint (e.g. its validation)
                    stopped = signal.Signals(stop.signum).name
            if stopped:
                break
        if stopped == "time budget" and done > start:
            if last_row != done:
                checkpoint(done, final=True)
            else:
                save_fn(done, True)  # saved at this step already: again, with the final curve
    bar.close()
    return StepsRun(done - start, time.perf_counter() - t0, points, stopped)


def make_result(out_dir: Path, start: int, run: StepsRun, log: RunLog) -> TrainResult:
    """The :class:`TrainResult` of a run that started at ``start`` and did ``run``."""
    n, seconds = run.steps_run, run.seconds
    return TrainResult(
        out_dir=out_dir,
        step=start + n,
        steps_run=n,
        seconds=seconds,
        iterations_per_s=n / seconds if seconds > 0 else float("nan"),
        points_per_s=run.points / seconds if seconds > 0 else float("nan"),
        last_loss=log.loss[-1] if log.loss else float("nan"),
        stopped=run.stopped,
        elapsed_s=log.elapsed_s,
    )


def optimiser_step(loss: Tensor, optimiser: torch.optim.Optimizer, parameters: Any, grad_clip: float) -> None:
    """Backpropagate ``loss`` and step, clipping the gradient norm at ``grad_clip`` (0: off)."""
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
    optimiser.step()
