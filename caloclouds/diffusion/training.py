"""Training loops: the EDM teacher (:func:`train_diffusion`) and the consistency model (:func:`distill`:
consistency distillation from the teacher, or consistency training initialised from it).

Both loops share the same machinery (the step loop, batches, validation, resuming and checkpoints
in :mod:`.run`):

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
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from caloclouds.config import RunConfig
from caloclouds.diffusion.checkpoint import (
    build_denoiser,
    load_checkpoint,
)
from caloclouds.diffusion.consistency import (
    consistency_distillation_loss,
    consistency_training_loss,
    ct_level_probabilities,
    ct_num_levels,
)
from caloclouds.diffusion.data import Batch
from caloclouds.diffusion.edm import EDMDenoiser, RaggedCond, sample_log_normal_sigma
from caloclouds.diffusion.ema import ema_update, ema_warmup_decay
from caloclouds.diffusion.loop import (
    RANK_SEED_STRIDE,
    RunLog,
    TrainResult,
    autocast,
    check_steps,
    override_schedule,
    prepare_out_dir,
    setup_distributed,
    wrap_for_training,
    write_config,
)
from caloclouds.diffusion.run import (
    DataSource,
    RunOptions,
    load_training_data,
    resume_training,
    run_training_loop,
    warm_start,
)
from caloclouds.diffusion.sampling import karras_sigmas
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
    data = load_training_data(data, config=config)

    torch.manual_seed(opts.seed)
    denoiser = build_denoiser(cfg, "edm", config.detector.n_layers).to(dev)
    warm = None
    if opts.init_from is not None and ckpt_path is None:
        warm = load_checkpoint(opts.init_from, map_location=dev)
        warm_start(denoiser.inner, warm["state_dict"])
    ema_inner = copy.deepcopy(denoiser.inner).requires_grad_(False)
    optimiser = torch.optim.Adam(denoiser.parameters(), lr=cfg.learning_rate)
    gen = torch.Generator().manual_seed(opts.seed + RANK_SEED_STRIDE * dist_info.rank)
    log = RunLog([], [])
    start = 0
    if ckpt_path is not None:
        ck = resume_training(ckpt_path, "edm", denoiser.inner, ema_inner, optimiser, gen, dist_info, dev)
        normaliser, start, log = ck["normaliser"], ck["step"], RunLog.from_checkpoint(ck)
    elif warm is not None:  # the warm-started network keeps the space it was trained in
        normaliser = dataclasses.replace(warm["normaliser"], direction=cfg.direction)
    else:
        normaliser = data.fit_normaliser(
            n_layers=config.detector.n_layers,
            subcell_pitch_mm=config.detector.subcell_pitch_mm if cfg.xy_jitter else 0.0,
            sigma_data=cfg.sigma_data,
            per_layer=cfg.per_layer,
            direction=cfg.direction,
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

    return run_training_loop(
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
    # the teacher's model; the distillation and generation settings of --config when one is given
    generation = run_config.generation if config is None else config.generation
    run_config = dataclasses.replace(run_config, distillation=dcfg, generation=generation)
    cfg = run_config.diffusion
    check_steps(dcfg.steps, dcfg.batch_size, dist_info.world)
    ckpt_path = prepare_out_dir(out_dir, opts.resume)  # after the settings are known to be valid
    normaliser = tk["normaliser"]
    data = load_training_data(data, config=run_config)

    n_layers = run_config.detector.n_layers
    teacher_model = build_denoiser(cfg, "edm", n_layers).to(dev)
    teacher_model.inner.load_state_dict(tk["state_dict"])
    teacher_model.eval().requires_grad_(False)
    torch.manual_seed(opts.seed)
    student = build_denoiser(cfg, "cm", n_layers).to(dev)
    if opts.init_from is not None and ckpt_path is None:  # e.g. a CM of normal incidence, given the direction
        warm_start(student.inner, load_checkpoint(opts.init_from, map_location=dev)["state_dict"])
    elif dcfg.init_from_teacher:
        student.inner.load_state_dict(tk["state_dict"])
    target = copy.deepcopy(student).requires_grad_(False)
    optimiser = torch.optim.Adam(student.parameters(), lr=dcfg.learning_rate)
    gen = torch.Generator().manual_seed(opts.seed + RANK_SEED_STRIDE * dist_info.rank)
    log = RunLog([], [])
    start = 0
    if ckpt_path is not None:
        ck = resume_training(ckpt_path, "cm", student.inner, target.inner, optimiser, gen, dist_info, dev)
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

    return run_training_loop(
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
