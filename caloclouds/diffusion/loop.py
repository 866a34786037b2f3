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

__all__ = [
    "RANK_SEED_STRIDE",
    "TrainResult",
    "DistInfo",
    "setup_distributed",
    "prepare_out_dir",
    "write_config",
    "check_steps",
    "run_steps",
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
    """The checkpoint to resume from (or None); refuses to overwrite a run without --resume."""
    ckpt = out_dir / CHECKPOINT_NAME
    if ckpt.is_file():
        if not resume:
            raise CaloCloudsError(f"{ckpt} exists; pass --resume to continue it or choose another --out")
        return ckpt
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


def run_steps(
    *,
    step_fn: Callable[[int], tuple[Tensor, int]],
    save_fn: Callable[[int], None],
    start: int,
    steps: int,
    checkpoint_every: int,
    loss_log: list[float],
    dist_info: DistInfo,
    progress: bool,
    desc: str,
) -> tuple[int, float, int]:
    """Run steps ``start..steps-1``; returns (steps run, seconds, points seen on all ranks)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=steps, initial=start, desc=desc, disable=not progress or dist_info.rank != 0, unit="it")
    points = 0
    smooth = None
    t0 = time.perf_counter()
    for step in range(start, steps):
        loss, n_points = step_fn(step)
        if dist_info.active:
            import torch.distributed as dist

            stats = torch.stack([loss.detach().float().cpu(), torch.tensor(float(n_points))])
            dist.all_reduce(stats)
            value, n_points = float(stats[0]) / dist_info.world, int(stats[1])
        else:
            value = float(loss)
        loss_log.append(value)
        points += n_points
        smooth = value if smooth is None else 0.98 * smooth + 0.02 * value
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{smooth:.4f}")
        if (step + 1) % checkpoint_every == 0 or step + 1 == steps:
            save_fn(step + 1)
    bar.close()
    return steps - start, time.perf_counter() - t0, points


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager[Any]:
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def make_result(out_dir: Path, step: int, run: tuple[int, float, int], loss_log: list[float]) -> TrainResult:
    n, seconds, points = run
    return TrainResult(
        out_dir=out_dir,
        step=step,
        steps_run=n,
        seconds=seconds,
        iterations_per_s=n / seconds if seconds > 0 else float("nan"),
        points_per_s=points / seconds if seconds > 0 else float("nan"),
        last_loss=loss_log[-1] if loss_log else float("nan"),
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
