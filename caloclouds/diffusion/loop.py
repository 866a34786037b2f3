"""Machinery of the PointWise Net and CM training loops: distributed setup, schedules, run folders.

* ``setup_distributed``: DistributedDataParallel under ``torchrun`` (``WORLD_SIZE`` > 1), gloo on
  the CPU and nccl on CUDA; each rank uses ``cuda:LOCAL_RANK``.
* ``scheduled_lr``, ``override_schedule``, ``check_steps``: the step schedule of a config section.
* The step loop (``run_steps``, ``RunLog``, ``TrainResult``) and the run folder (``prepare_out_dir``,
  ``write_curves``) are shared with the Shower Flow and the voxel models: they live in
  :mod:`caloclouds.training` and are re-exported here under their names.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from caloclouds.config import RunConfig, config_to_dict
from caloclouds.errors import ConfigError
from caloclouds.runcontrol import StopRequest, cosine_lr, parse_duration
from caloclouds.training.loop import (
    DistInfo,
    RunLog,
    StepsRun,
    TrainResult,
    make_result,
    optimiser_step,
    run_steps,
)
from caloclouds.training.rundir import METRIC_COLUMNS, prepare_run_dir, write_curves, write_run_config

__all__ = [
    "RANK_SEED_STRIDE",
    "METRIC_COLUMNS",
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
    "scheduled_lr",
    "wrap_for_training",
]

RANK_SEED_STRIDE = 1000003  # Seed offset between ranks, so shards draw independent streams.


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


prepare_out_dir = prepare_run_dir  # the name this module had for it


def write_config(out_dir: Path, config: RunConfig) -> None:
    """``config.yaml`` of a PointWise Net or CM run: the whole run config."""
    write_run_config(out_dir, config_to_dict(config))


def check_steps(steps: int, batch_size: int, world: int) -> None:
    if steps < 0:
        raise ConfigError(f"steps must be >= 0, got {steps}")
    if batch_size < world or batch_size % world:
        raise ConfigError(f"batch size {batch_size} must be a positive multiple of the {world} ranks")


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager[Any]:
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


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
