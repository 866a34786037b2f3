"""Machinery shared by the training loops: distributed setup, the step loop, run folders.

* ``setup_distributed``: DistributedDataParallel under ``torchrun`` (``WORLD_SIZE`` > 1), gloo on
  the CPU and nccl on CUDA; each rank uses ``cuda:LOCAL_RANK``.
* ``run_steps``: the loop with progress bar, loss log (averaged over ranks) and checkpoints
  every ``checkpoint_every`` steps and at the end.
* ``prepare_out_dir``: refuses to overwrite a run unless resuming.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from caloclouds.config import RunConfig, config_to_dict
from caloclouds.diffusion.checkpoint import CHECKPOINT_NAME
from caloclouds.errors import CaloCloudsError, ConfigError
from caloclouds.runcontrol import StopRequest, cosine_lr, parse_duration, write_curve_png, write_metrics_csv

__all__ = [
    "RANK_SEED_STRIDE",
    "TrainResult",
    "DistInfo",
    "setup_distributed",
    "prepare_out_dir",
    "write_config",
    "check_steps",
    "run_steps",
    "RunLog",
    "StepsRun",
    "StopRequest",
    "parse_duration",
    "write_curves",
    "autocast",
    "make_result",
    "barrier",
    "gather_rng",
    "optimiser_step",
    "override_schedule",
    "wrap_for_training",
]

RANK_SEED_STRIDE = 1000003  # Seed offset between ranks, so shards draw independent streams.


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
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1


def setup_distributed(device: str) -> tuple[DistInfo, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    info = DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    dev = torch.device(device)
    if info.active:
        import torch.distributed as dist

        if dev.type == "cuda":
            dev = torch.device("cuda", info.local_rank)
            torch.cuda.set_device(dev)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return info, dev


def prepare_out_dir(out_dir: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from (or None); refuses to overwrite a run without --resume, and
    refuses --resume when there is nothing to resume (a typo in --out must not restart at step 0)."""
    ckpt = out_dir / CHECKPOINT_NAME
    if ckpt.is_file():
        if not resume:
            raise CaloCloudsError(f"{ckpt} exists; pass --resume to continue it or choose another --out")
        return ckpt
    if resume:
        raise CaloCloudsError(f"{ckpt}: no checkpoint to resume; drop --resume to start a new run")
    return None


def write_config(out_dir: Path, config: RunConfig) -> None:
    import yaml

    from caloclouds.io.atomic import atomic_path

    with atomic_path(out_dir / "config.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))


def check_steps(steps: int, batch_size: int, world: int) -> None:
    if steps < 0:
        raise ConfigError(f"steps must be >= 0, got {steps}")
    if batch_size < world or batch_size % world:
        raise ConfigError(f"batch size {batch_size} must be a positive multiple of the {world} ranks")


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


METRIC_COLUMNS = ("step", "loss", "val_loss", "elapsed_s", "lr")


def write_curves(out_dir: Path, metrics: list[dict[str, float]], title: str, *, png: bool = True) -> None:
    """``metrics.csv`` and (if ``png``) ``curve.png`` of a PointWise Net run, both atomic."""
    write_metrics_csv(out_dir / "metrics.csv", metrics, METRIC_COLUMNS)
    if png:
        write_curve_png(
            out_dir / "curve.png",
            metrics,
            title,
            {"loss": "training loss (mean over interval)", "val_loss": "validation loss (EMA weights, fixed noise)"},
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
    dist_info: DistInfo,
    progress: bool,
    desc: str,
    val_fn: Callable[[], float] | None = None,
    lr_fn: Callable[[], float] | None = None,
    time_budget_s: float | None = None,
) -> StepsRun:
    """Run steps ``start..steps-1``, checkpointing every ``checkpoint_every`` steps and at the end.

    Before each checkpoint a metrics row is added to ``log`` (mean loss since the previous row,
    validation loss from ``val_fn``, cumulative time). The loop stops early, after a checkpoint,
    when the next step would overrun ``time_budget_s`` or on SIGTERM / SIGINT; the checkpoint
    holds the exact state, so ``--resume`` continues as if nothing had happened.
    """
    from tqdm.auto import tqdm

    bar = tqdm(total=steps, initial=start, desc=desc, disable=not progress or dist_info.rank != 0, unit="it")
    points = 0
    smooth = None
    t0 = time.perf_counter()
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
            ran = time.perf_counter() - t0
            if time_budget_s is not None and step > start and ran + ran / (step - start) > time_budget_s:
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
            if stopped:
                break
        if stopped == "time budget" and done > start:
            if last_row != done:
                checkpoint(done, final=True)
            else:
                save_fn(done, True)  # saved at this step already: again, with the final curve
    bar.close()
    return StepsRun(done - start, time.perf_counter() - t0, points, stopped)


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager[Any]:
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def make_result(out_dir: Path, start: int, run: StepsRun, log: RunLog) -> TrainResult:
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


def barrier(dist_info: DistInfo) -> None:
    if dist_info.active:
        import torch.distributed as dist

        dist.barrier()


def gather_rng(gen: torch.Generator, dist_info: DistInfo) -> list[Tensor]:
    """The generator states of all ranks (collective under DDP), indexed by rank."""
    state = gen.get_state()
    if not dist_info.active:
        return [state]
    import torch.distributed as dist

    states: list[Any] = [None] * dist_info.world
    dist.all_gather_object(states, state)
    return states


def optimiser_step(loss: Tensor, optimiser: torch.optim.Optimizer, parameters: Any, grad_clip: float) -> None:
    """Backpropagate ``loss`` and step, clipping the gradient norm at ``grad_clip`` (0: off)."""
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
    optimiser.step()


def scheduled_lr(step: int, section: Any) -> float:
    """The learning rate of optimiser step ``step`` (0-based) for a diffusion or distillation section:
    constant, then a cosine down to ``learning_rate * final_lr_factor`` over the last ``lr_decay_steps``.

    A pure function of the step, so a resumed run follows the same schedule as an uninterrupted one.
    """
    start = max(section.steps - section.lr_decay_steps, 0)
    if section.lr_decay_steps == 0 or step < start:
        return float(section.learning_rate)
    progress = (step - start) / max(section.steps - start, 1)
    return float(cosine_lr(progress, section.learning_rate, section.final_lr_factor))


def override_schedule(section: Any, *, steps: int | None, batch_size: int | None, learning_rate: float | None) -> Any:
    """A config section with ``steps``, ``batch_size`` and ``learning_rate`` replaced where given."""
    return replace(
        section,
        steps=section.steps if steps is None else steps,
        batch_size=section.batch_size if batch_size is None else batch_size,
        learning_rate=section.learning_rate if learning_rate is None else learning_rate,
    )


def wrap_for_training(module: torch.nn.Module, dist_info: DistInfo, compile: bool) -> torch.nn.Module:
    """``module`` wrapped in DistributedDataParallel under torchrun, then ``torch.compile``-d if asked."""
    if dist_info.active:
        from torch.nn.parallel import DistributedDataParallel

        module = DistributedDataParallel(module)
    return torch.compile(module) if compile else module
