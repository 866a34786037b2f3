"""The machinery both diffusion training loops share (:mod:`caloclouds.diffusion.training`).

:class:`RunOptions` (how a run is carried out), :func:`run_training_loop` (the step loop with
checkpoints, validation and the time budget), and its parts: the ragged training batch
(:func:`make_batch`), the validation loss on fixed noise (:func:`validation_loss`), resuming
(:func:`resume_training`) and the checkpoint writer (:func:`checkpoint_writer`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from caloclouds.config import DiffusionConfig, DistillationConfig, RunConfig
from caloclouds.diffusion.checkpoint import (
    CHECKPOINT_NAME,
    MODEL_NAME,
    load_checkpoint,
    save_checkpoint,
)
from caloclouds.diffusion.data import Batch, TrainingData
from caloclouds.diffusion.edm import EDMDenoiser, per_shower_mean
from caloclouds.diffusion.loop import (
    DistInfo,
    RunLog,
    TrainResult,
    barrier,
    gather_rng,
    make_result,
    optimiser_step,
    run_steps,
    scheduled_lr,
    write_curves,
)
from caloclouds.diffusion.preprocessing import PointNormaliser
from caloclouds.errors import CaloCloudsError
from caloclouds.runcontrol import set_lr

__all__ = [
    "DataSource",
    "RunOptions",
    "checkpoint_writer",
    "load_training_data",
    "make_batch",
    "resume_training",
    "run_training_loop",
    "validation_loss",
]


DataSource = TrainingData | str | Path | Sequence[str | Path]
CURVE_EVERY_S = 300.0  # Seconds between redraws of curve.png during a run.
VAL_SEED = 20251129  # Fixed stream of the validation batch and noise.
VAL_SIGMAS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)  # Noise levels of the validation loss.


def layer_z_of(config: RunConfig) -> tuple[float, ...] | None:
    """The depths that move angled training showers into their axis frame, for direction-aware
    models (``diffusion.direction``); None otherwise."""
    return config.detector.layer_centre_z_mm if config.diffusion.direction else None


def load_training_data(data: DataSource, limit: int | None = None, *, config: RunConfig | None = None) -> TrainingData:
    """Training showers from a path, several paths or :class:`TrainingData` (as it is); with the
    run's ``config``, angled showers go into their axis frame when the model is direction-aware."""
    if isinstance(data, TrainingData):
        return data
    layer_z = None if config is None else layer_z_of(config)
    paths = [data] if isinstance(data, (str, Path)) else list(data)
    return TrainingData.from_files(paths, limit=limit, layer_z_mm=layer_z)


def warm_start(inner: nn.Module, state_dict: dict[str, Tensor]) -> None:
    """Load a trained network's weights into ``inner`` whose condition vector has more columns at its
    end (e.g. tan θ added to a normal-incidence model): the weights of the new columns start at zero,
    so the network starts as the trained one at normal incidence."""
    own = inner.state_dict()
    for name, value in state_dict.items():
        if name not in own:
            raise CaloCloudsError(f"warm start: the trained network has {name!r}, which this one lacks")
        target = own[name]
        if target.shape == value.shape:
            target.copy_(value)
        elif (
            target.dim() == 2
            and value.dim() == 2
            and target.shape[0] == value.shape[0]
            and target.shape[1] > value.shape[1]
        ):
            target.zero_()
            target[:, : value.shape[1]] = value
        else:
            msg = f"warm start: {name!r} is {tuple(value.shape)} in the trained network, {tuple(target.shape)} here"
            raise CaloCloudsError(msg)
    inner.load_state_dict(own)


def make_batch(
    data: TrainingData, idx: Tensor, normaliser: PointNormaliser, cfg: DiffusionConfig, gen: torch.Generator
) -> Batch:
    """A training batch of showers ``idx``: per (shower, layer) rows for per-layer models."""
    if cfg.per_layer:
        return data.layer_batch(
            idx, normaliser, rotate=cfg.rotate, jitter=True, points_per_shower=cfg.points_per_shower, generator=gen
        )
    return data.batch(
        idx,
        normaliser,
        rotate=cfg.rotate,
        jitter=True,
        groups=cfg.noise_groups,
        points_per_shower=cfg.points_per_shower,
        generator=gen,
    )


def validation_loss(
    val: DataSource | None, normaliser: PointNormaliser, config: RunConfig, denoiser: EDMDenoiser, dev: torch.device
) -> Callable[[], float] | None:
    """The validation loss of a run: the EDM-weighted denoising error of ``denoiser`` (the EMA or
    target weights) on the first ``cfg.val_showers`` showers of ``val``, averaged over a fixed grid
    of noise levels with fixed noise, so that its values are comparable across steps and runs."""
    if val is None:
        return None
    cfg = config.diffusion
    data = load_training_data(val, limit=cfg.val_showers, config=config)
    gen = torch.Generator().manual_seed(VAL_SEED)
    batch = make_batch(data, torch.arange(len(data)), normaliser, cfg, gen)
    noise = torch.randn(batch.x.shape, generator=gen)
    batch, noise = batch.to(dev), noise.to(dev)
    sd2 = cfg.sigma_data**2

    def val_fn() -> float:
        total = 0.0
        with torch.no_grad():
            for sigma in VAL_SIGMAS:
                denoised = denoiser(batch.x + sigma * noise, torch.tensor(sigma, device=dev), cond=batch.cond)
                weight = (sigma**2 + sd2) / (sigma**2 * sd2)
                per_point = weight * (denoised.float() - batch.x).pow(2).mean(-1)
                total += float(per_shower_mean(per_point, batch.showers).mean())
        return total / len(VAL_SIGMAS)

    return val_fn


_KIND_NAMES = {"edm": "an EDM", "cm": "a consistency"}


def resume_training(
    ckpt_path: Path,
    kind: str,
    model: nn.Module,
    ema: nn.Module,
    optimiser: torch.optim.Optimizer,
    gen: torch.Generator,
    dist_info: DistInfo,
    dev: torch.device,
) -> dict:
    """Load a training checkpoint of ``kind`` into the model, its EMA, the optimiser and this rank's
    random stream. Returns the checkpoint."""
    ck = load_checkpoint(ckpt_path, map_location=dev)
    if ck["kind"] != kind or "train_state" not in ck:
        raise CaloCloudsError(f"{ckpt_path}: not {_KIND_NAMES[kind]} training checkpoint, cannot resume")
    model.load_state_dict(ck["train_state"]["model"])
    ema.load_state_dict(ck["state_dict"])
    optimiser.load_state_dict(ck["train_state"]["optimizer"])  # the step loop sets each step's learning rate
    gen.set_state(ck["train_state"]["rng"][dist_info.rank].cpu())
    return ck


def checkpoint_writer(
    out_dir: Path,
    kind: str,
    config: RunConfig,
    normaliser: object,
    ema: nn.Module,
    model: nn.Module,
    optimiser: torch.optim.Optimizer,
    gen: torch.Generator,
    log: RunLog,
    dist_info: DistInfo,
    train_extra: dict[str, Any] | None = None,
) -> Callable[[int], None]:
    """The checkpoint writer of a run: ``model.pt`` (the EMA weights), ``checkpoint.pt`` (plus the
    training state and ``train_extra``), ``metrics.csv`` and ``curve.png``, written by rank 0 while
    the other ranks wait."""

    last_png = [0.0]

    def save_fn(step: int, final: bool = False) -> None:
        rng = gather_rng(gen, dist_info)
        if dist_info.rank != 0:
            barrier(dist_info)  # wait until rank 0 has written the files
            return
        common = dict(
            kind=kind,
            config=config,
            normaliser=normaliser,
            state_dict=ema.state_dict(),
            step=step,
            loss_log=log.loss,
            metrics=log.metrics,
            elapsed_s=log.elapsed_s,
        )
        train_state = {"model": model.state_dict(), "optimizer": optimiser.state_dict(), "rng": rng}
        train_state.update(train_extra or {})
        save_checkpoint(out_dir / CHECKPOINT_NAME, train_state=train_state, **common)
        save_checkpoint(out_dir / MODEL_NAME, **common)
        # the PNG costs a second or more: at most every few minutes, and at the end of the call
        png = final or time.monotonic() - last_png[0] > CURVE_EVERY_S
        write_curves(out_dir, log.metrics, "EDM teacher" if kind == "edm" else "consistency model", png=png)
        if png:
            last_png[0] = time.monotonic()
        barrier(dist_info)

    return save_fn


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a run is carried out: the keyword options :func:`train_diffusion` and :func:`distill` share."""

    val: DataSource | None = None  # Validation showers for the validation loss in metrics.csv.
    time_budget_s: float | None = None  # Stop cleanly, after a checkpoint, before this much time has passed.
    steps: int | None = None  # Total optimiser steps (overrides the config's).
    batch_size: int | None = None  # Showers per step over all ranks (overrides the config's).
    learning_rate: float | None = None  # Adam learning rate (overrides the config's, also on resume).
    device: str = "cpu"  # Torch device (each rank uses cuda:LOCAL_RANK under torchrun).
    seed: int = 0  # Seed of the initialisation and of the batch / noise stream.
    resume: bool = False  # Continue out_dir/checkpoint.pt (step count, loss log, random stream).
    bf16: bool = False  # bf16 autocast of the network.
    compile: bool = False  # torch.compile the loss module.
    progress: bool = True  # Show a progress bar.
    init_from: str | Path | None = (
        None  # Warm start (a fresh run only): the weights and normaliser of this EDM / CM model.pt.
    )


def run_training_loop(
    kind: str,
    *,
    opts: RunOptions,
    out_dir: Path,
    config: RunConfig,
    schedule: DiffusionConfig | DistillationConfig,
    data: TrainingData,
    normaliser: PointNormaliser,
    trained: EDMDenoiser,
    ema_inner: nn.Module,
    optimiser: torch.optim.Optimizer,
    gen: torch.Generator,
    log: RunLog,
    start: int,
    dist_info: DistInfo,
    dev: torch.device,
    loss_fn: Callable[[Batch], tuple[Tensor, Batch]],
    ema_fn: Callable[[int], None],
    val_denoiser: EDMDenoiser,
    train_extra: dict[str, Any] | None = None,
) -> TrainResult:
    """The loop both runs share, from ``start`` to ``schedule.steps``.

    Each step sets the scheduled learning rate, draws this rank's showers and their batch from
    ``gen``, takes ``loss_fn(batch)`` (per-point losses and the batch on the device; it draws its
    noise levels and noise from ``gen``), averages per shower then over showers, clips, steps and
    calls ``ema_fn(step)``. ``trained`` is the optimised denoiser, ``ema_inner`` the network saved.
    """
    shard = torch.arange(dist_info.rank, len(data), dist_info.world)
    local_batch = schedule.batch_size // dist_info.world
    cfg = config.diffusion

    def step_fn(step: int) -> tuple[Tensor, int]:
        set_lr(optimiser, scheduled_lr(step, schedule))
        idx = shard[torch.randint(len(shard), (local_batch,), generator=gen)]
        per_point, batch = loss_fn(make_batch(data, idx, normaliser, cfg, gen))
        loss = per_shower_mean(per_point.float(), batch.showers).mean()
        optimiser_step(loss, optimiser, trained.parameters(), schedule.grad_clip)
        ema_fn(step)
        return loss.detach(), batch.x.shape[0]

    save_fn = checkpoint_writer(
        out_dir, kind, config, normaliser, ema_inner, trained.inner, optimiser, gen, log, dist_info, train_extra
    )
    val_fn = validation_loss(opts.val, normaliser, config, val_denoiser, dev) if dist_info.rank == 0 else None
    run = run_steps(
        step_fn=step_fn,
        save_fn=save_fn,
        start=start,
        steps=schedule.steps,
        checkpoint_every=schedule.checkpoint_every,
        log=log,
        dist_info=dist_info,
        progress=opts.progress,
        desc="train-diffusion" if kind == "edm" else "distill",
        val_fn=val_fn,
        lr_fn=lambda: optimiser.param_groups[0]["lr"],
        time_budget_s=opts.time_budget_s,
    )
    return make_result(out_dir, start, run, log)
