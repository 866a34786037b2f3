"""Training loops: the EDM teacher (:func:`train_diffusion`) and the consistency model (:func:`distill`:
consistency distillation from the teacher, or consistency training initialised from it).

Both loops share the same machinery:

* ragged batches of whole showers (no padding, no truncation), augmented by a random rotation
  about the shower axis and jitter inside the sub-cell and the layer (:mod:`.data`);
* the loss is averaged over the points of each shower, then over showers; each shower's points
  are split at random into ``noise_groups`` groups with their own noise level (more noise levels
  per step, same per-point model);
* an EMA of the weights (EDM: warm-up decay; CM: the target network with constant mu);
* atomic checkpoints every ``checkpoint_every`` steps and at the end; ``resume=True`` continues
  the step count, the loss log and the random stream exactly;
* optional bf16 autocast and ``torch.compile``;
* DistributedDataParallel when started by ``torchrun`` (``WORLD_SIZE`` > 1): each rank draws its
  showers from its own shard of the file, gradients are averaged, rank 0 writes the files.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from caloclouds.config import DiffusionConfig, DistillationConfig, RunConfig
from caloclouds.diffusion.checkpoint import (
    CHECKPOINT_NAME,
    MODEL_NAME,
    build_denoiser,
    load_checkpoint,
    save_checkpoint,
)
from caloclouds.diffusion.consistency import (
    consistency_distillation_loss,
    consistency_training_loss,
    ct_level_probabilities,
    ct_num_levels,
)
from caloclouds.diffusion.data import Batch, TrainingData
from caloclouds.diffusion.edm import EDMDenoiser, RaggedCond, per_shower_mean, sample_log_normal_sigma
from caloclouds.diffusion.preprocessing import PointNormaliser
from caloclouds.diffusion.ema import ema_update, ema_warmup_decay
from caloclouds.diffusion.loop import (
    RANK_SEED_STRIDE,
    DistInfo,
    RunLog,
    TrainResult,
    autocast,
    barrier,
    check_steps,
    gather_rng,
    make_result,
    optimiser_step,
    override_schedule,
    prepare_out_dir,
    run_steps,
    scheduled_lr,
    setup_distributed,
    wrap_for_training,
    write_config,
    write_curves,
)
from caloclouds.diffusion.sampling import karras_sigmas
from caloclouds.runcontrol import set_lr
from caloclouds.errors import CaloCloudsError

__all__ = ["OBJECTIVES", "RunOptions", "TrainResult", "train_diffusion", "distill"]

OBJECTIVES = ("distillation", "training")  # What distill() optimises: CD with the teacher, or CT.


class _EDMLoss(nn.Module):
    """The EDM per-point loss as a module forward, so that DDP sees the call."""

    def __init__(self, denoiser: EDMDenoiser) -> None:
        super().__init__()
        self.denoiser = denoiser

    def forward(self, x: Tensor, noise: Tensor, sigma: Tensor, cond: RaggedCond) -> Tensor:
        return self.denoiser.loss(x, noise, sigma, cond=cond)


DataSource = TrainingData | str | Path | Sequence[str | Path]
CURVE_EVERY_S = 300.0  # Seconds between redraws of curve.png during a run.
VAL_SEED = 20251129  # Fixed stream of the validation batch and noise.
VAL_SIGMAS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)  # Noise levels of the validation loss.


def _load_data(data: DataSource, limit: int | None = None) -> TrainingData:
    if isinstance(data, TrainingData):
        return data
    if isinstance(data, (str, Path)):
        return TrainingData.from_file(data, limit=limit)
    return TrainingData.from_files(list(data), limit=limit)


def _make_batch(
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


def _validation(
    val: DataSource | None, normaliser: PointNormaliser, cfg: DiffusionConfig, denoiser: EDMDenoiser, dev: torch.device
) -> Callable[[], float] | None:
    """The validation loss of a run: the EDM-weighted denoising error of ``denoiser`` (the EMA or
    target weights) on the first ``cfg.val_showers`` showers of ``val``, averaged over a fixed grid
    of noise levels with fixed noise, so that its values are comparable across steps and runs."""
    if val is None:
        return None
    data = _load_data(val, limit=cfg.val_showers)
    gen = torch.Generator().manual_seed(VAL_SEED)
    batch = _make_batch(data, torch.arange(len(data)), normaliser, cfg, gen)
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


def _resume(
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


def _saver(
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


def _run(
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
        per_point, batch = loss_fn(_make_batch(data, idx, normaliser, cfg, gen))
        loss = per_shower_mean(per_point.float(), batch.showers).mean()
        optimiser_step(loss, optimiser, trained.parameters(), schedule.grad_clip)
        ema_fn(step)
        return loss.detach(), batch.x.shape[0]

    save_fn = _saver(
        out_dir, kind, config, normaliser, ema_inner, trained.inner, optimiser, gen, log, dist_info, train_extra
    )
    val_fn = _validation(opts.val, normaliser, cfg, val_denoiser, dev) if dist_info.rank == 0 else None
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


def train_diffusion(config: RunConfig, data: DataSource, out_dir: str | Path, **options: Any) -> TrainResult:
    """Train the EDM teacher; writes ``checkpoint.pt``, ``model.pt`` and ``config.yaml`` to ``out_dir``.

    Args:
        config: run configuration (its ``diffusion`` and ``detector`` sections are used).
        data: training showers (a file path, several paths or :class:`TrainingData`).
        out_dir: run folder.
        options: the fields of :class:`RunOptions` (``val``, ``time_budget_s``, ``steps``,
            ``batch_size``, ``learning_rate``, ``device``, ``seed``, ``resume``, ``bf16``,
            ``compile``, ``progress``).

    Returns:
        :class:`TrainResult`.
    """
    opts = RunOptions(**options)
    cfg = override_schedule(
        config.diffusion, steps=opts.steps, batch_size=opts.batch_size, learning_rate=opts.learning_rate
    )
    config = dataclasses.replace(config, diffusion=cfg)
    out_dir = Path(out_dir)
    dist_info, dev = setup_distributed(opts.device)
    check_steps(cfg.steps, cfg.batch_size, dist_info.world)
    ckpt_path = prepare_out_dir(out_dir, opts.resume)
    data = _load_data(data)

    torch.manual_seed(opts.seed)
    denoiser = build_denoiser(cfg, "edm", config.detector.n_layers).to(dev)
    ema_inner = copy.deepcopy(denoiser.inner).requires_grad_(False)
    optimiser = torch.optim.Adam(denoiser.parameters(), lr=cfg.learning_rate)
    gen = torch.Generator().manual_seed(opts.seed + RANK_SEED_STRIDE * dist_info.rank)
    log = RunLog([], [])
    start = 0
    if ckpt_path is not None:
        ck = _resume(ckpt_path, "edm", denoiser.inner, ema_inner, optimiser, gen, dist_info, dev)
        normaliser, start, log = ck["normaliser"], ck["step"], RunLog.from_checkpoint(ck)
    else:
        normaliser = data.fit_normaliser(
            n_layers=config.detector.n_layers,
            subcell_pitch_mm=config.detector.subcell_pitch_mm if cfg.xy_jitter else 0.0,
            sigma_data=cfg.sigma_data,
            per_layer=cfg.per_layer,
        )
    if dist_info.rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_config(out_dir, config)
    loss_module = wrap_for_training(_EDMLoss(denoiser), dist_info, opts.compile)

    def loss_fn(batch: Batch) -> tuple[Tensor, Batch]:
        sigma = sample_log_normal_sigma(batch.cond.n_showers, p_mean=cfg.p_mean, p_std=cfg.p_std, generator=gen)
        noise = torch.randn(batch.x.shape, generator=gen)
        batch = batch.to(dev)
        with autocast(dev, opts.bf16):
            return loss_module(batch.x, noise.to(dev), sigma.to(dev), batch.cond), batch

    def ema_fn(step: int) -> None:
        ema_update(ema_inner, denoiser.inner, ema_warmup_decay(step, power=cfg.ema_power, max_decay=cfg.ema_max))

    return _run(
        "edm",
        opts=opts,
        out_dir=out_dir,
        config=config,
        schedule=cfg,
        data=data,
        normaliser=normaliser,
        trained=denoiser,
        ema_inner=ema_inner,
        optimiser=optimiser,
        gen=gen,
        log=log,
        start=start,
        dist_info=dist_info,
        dev=dev,
        loss_fn=loss_fn,
        ema_fn=ema_fn,
        val_denoiser=EDMDenoiser(ema_inner, cfg.sigma_data),
    )


def distill(
    teacher: str | Path,
    data: DataSource,
    out_dir: str | Path,
    *,
    config: RunConfig | None = None,
    objective: Literal["distillation", "training"] = "distillation",
    **options: Any,
) -> TrainResult:
    """A one-step consistency model from an EDM teacher: distilled from it, or trained from its weights.

    ``objective="distillation"`` (CD, Song et al. 2023, Algorithm 2): each step takes one teacher
    Heun step between adjacent Karras levels (N = ``distillation.num_steps``); the target is the EMA
    of the student (``distillation.target_ema``), and it is the network saved.

    ``objective="training"`` (improved CT, Song & Dhariwal 2023): the teacher only initialises the
    student; each step noises the same showers with the same noise at two adjacent levels, the target
    is the student itself without gradients, the loss the weighted pseudo-Huber distance, the number
    of levels follows the curriculum N(k) over ``distillation.steps`` and the level is drawn
    log-normally (:mod:`.consistency`). The saved network is an EMA of the student
    (``distillation.target_ema``); ``num_steps`` is unused.

    Args:
        teacher: teacher checkpoint file or run folder (its EMA weights are the teacher).
        data: training showers.
        out_dir: run folder of the consistency model.
        config: overrides the ``distillation`` section of the teacher's config; the network and
            preprocessing always come from the teacher.
        objective: ``"distillation"`` (CD) or ``"training"`` (CT); a resumed run must keep its own.
        options: the fields of :class:`RunOptions`, as in :func:`train_diffusion`.

    Returns:
        :class:`TrainResult`.
    """
    if objective not in OBJECTIVES:
        msg = f"unknown objective {objective!r}; valid objectives are {OBJECTIVES}"
        raise ValueError(msg)
    opts = RunOptions(**options)
    out_dir = Path(out_dir)
    dist_info, dev = setup_distributed(opts.device)
    tk = load_checkpoint(teacher, map_location=dev)
    if tk["kind"] != "edm":
        raise CaloCloudsError(f"{tk['path']}: the teacher must be an EDM checkpoint, got kind {tk['kind']!r}")
    run_config: RunConfig = tk["config"]
    dcfg = override_schedule(
        (config or run_config).distillation,
        steps=opts.steps,
        batch_size=opts.batch_size,
        learning_rate=opts.learning_rate,
    )
    run_config = dataclasses.replace(run_config, distillation=dcfg)
    cfg = run_config.diffusion
    check_steps(dcfg.steps, dcfg.batch_size, dist_info.world)
    ckpt_path = prepare_out_dir(out_dir, opts.resume)  # after the settings are known to be valid
    normaliser = tk["normaliser"]
    data = _load_data(data)

    n_layers = run_config.detector.n_layers
    teacher_model = build_denoiser(cfg, "edm", n_layers).to(dev)
    teacher_model.inner.load_state_dict(tk["state_dict"])
    teacher_model.eval().requires_grad_(False)
    torch.manual_seed(opts.seed)
    student = build_denoiser(cfg, "cm", n_layers).to(dev)
    if dcfg.init_from_teacher:
        student.inner.load_state_dict(tk["state_dict"])
    target = copy.deepcopy(student).requires_grad_(False)
    optimiser = torch.optim.Adam(student.parameters(), lr=dcfg.learning_rate)
    gen = torch.Generator().manual_seed(opts.seed + RANK_SEED_STRIDE * dist_info.rank)
    log = RunLog([], [])
    start = 0
    if ckpt_path is not None:
        ck = _resume(ckpt_path, "cm", student.inner, target.inner, optimiser, gen, dist_info, dev)
        was = ck["train_state"].get("objective", "distillation")
        if was != objective:
            raise CaloCloudsError(f"{ckpt_path}: a consistency {was} run; resume it with --objective {was}")
        start, log = ck["step"], RunLog.from_checkpoint(ck)
    if dist_info.rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_config(out_dir, run_config)
    student_fwd = wrap_for_training(student, dist_info, opts.compile)
    sigmas = karras_sigmas(dcfg.num_steps, cfg.sigma_min, cfg.sigma_max, cfg.rho, append_zero=False, device=dev)

    def cd_loss(batch: Batch) -> tuple[Tensor, Batch]:
        level = torch.randint(dcfg.num_steps - 1, (batch.cond.n_showers,), generator=gen)
        noise = torch.randn(batch.x.shape, generator=gen)
        batch = batch.to(dev)
        with autocast(dev, opts.bf16):
            return consistency_distillation_loss(
                student_fwd, target, teacher_model, batch.x, noise.to(dev), level.to(dev), sigmas, cond=batch.cond
            ), batch

    step_now = [start]  # the step the next loss belongs to (the curriculum's k); advanced by ema_fn
    grids: dict[int, tuple[Tensor, Tensor]] = {}

    def ct_grid(n_levels: int) -> tuple[Tensor, Tensor]:
        """The Karras levels of N(k) and the log-normal probabilities of their pairs (cached)."""
        if n_levels not in grids:
            levels = karras_sigmas(n_levels, cfg.sigma_min, cfg.sigma_max, cfg.rho, append_zero=False)
            grids[n_levels] = (levels.to(dev), ct_level_probabilities(levels))
        return grids[n_levels]

    def ct_loss(batch: Batch) -> tuple[Tensor, Batch]:
        levels, probs = ct_grid(ct_num_levels(step_now[0], dcfg.steps))
        level = torch.multinomial(probs, batch.cond.n_showers, replacement=True, generator=gen)
        noise = torch.randn(batch.x.shape, generator=gen)
        batch = batch.to(dev)
        with autocast(dev, opts.bf16):
            return consistency_training_loss(
                student_fwd, student, batch.x, noise.to(dev), level.to(dev), levels, cond=batch.cond
            ), batch

    def ema_fn(step: int) -> None:
        ema_update(target, student, dcfg.target_ema)
        step_now[0] = step + 1

    return _run(
        "cm",
        opts=opts,
        out_dir=out_dir,
        config=run_config,
        schedule=dcfg,
        data=data,
        normaliser=normaliser,
        trained=student,
        ema_inner=target.inner,
        optimiser=optimiser,
        gen=gen,
        log=log,
        start=start,
        dist_info=dist_info,
        dev=dev,
        loss_fn=cd_loss if objective == "distillation" else ct_loss,
        ema_fn=ema_fn,
        val_denoiser=target,
        train_extra={"objective": objective},
    )
