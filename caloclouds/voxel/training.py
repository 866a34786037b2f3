"""Training of the voxel model: EDM teacher and consistency distillation, on the step loop and in the
run folder every training shares (:mod:`caloclouds.training`).

The training file (our ragged HDF5) is voxelised once, in chunks, and held in memory as
standardised logits (6000 showers x 4320 voxels = 100 MB in float32). Each step draws a batch,
optionally rotates it by a random number of alpha bins and reflects it (exact symmetries of the
cylinder for showers at normal incidence), and minimises the EDM loss of
:class:`caloclouds.diffusion.edm.EDMDenoiser` (reused through :class:`ImageCond`). Every
``checkpoint_every`` steps the run folder gets ``model.pt`` (the EMA model, the file to ship),
``checkpoint.pt`` (plus the trained weights, optimiser and random stream: ``resume=True``
continues exactly), ``metrics.csv`` with the validation loss (fixed showers, fixed noise levels)
and ``curve.png``; a time budget or SIGTERM stops the run after such a checkpoint. Distillation
trains a :class:`ConsistencyDenoiser` student against the teacher with
:func:`caloclouds.diffusion.consistency.consistency_distillation_loss`.

References:
    Karras et al. (2022), EDM training; Song et al. (2023), consistency distillation (Algorithm 2).
"""

from __future__ import annotations

import copy
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from caloclouds.diffusion.consistency import consistency_distillation_loss
from caloclouds.diffusion.edm import sample_log_normal_sigma
from caloclouds.diffusion.ema import ema_update, ema_warmup_decay
from caloclouds.diffusion.sampling import karras_sigmas
from caloclouds.io.atomic import atomic_path
from caloclouds.runcontrol import cosine_lr, set_lr
from caloclouds.training.loop import RunLog, TrainResult, make_result, optimiser_step, run_steps
from caloclouds.training.rundir import (
    MODEL_NAME,
    open_run_dir,
    run_record,
    save_run_checkpoints,
    write_curves,
    write_run_config,
)
from caloclouds.voxel.adapter import ImageCond, per_image_mean
from caloclouds.voxel.config import VoxelConfig, voxel_config_from_dict, voxel_config_to_dict
from caloclouds.voxel.mesh import CylindricalMesh
from caloclouds.voxel.model import VoxelModel, build_voxel_model
from caloclouds.voxel.voxelize import VoxelShowers, voxelize

__all__ = [
    "load_voxel_data",
    "VoxelTrainingData",
    "VoxelRunOptions",
    "train_voxel_model",
    "distill_voxel_model",
    "train_voxel_from_file",
]

Log = Callable[[str], None]
FINAL_LR_FACTOR = 0.1  # Cosine learning-rate decay to this fraction of the peak at the last step.
VALIDATION_SEED = 12345  # Fixed noise levels and noise of the validation loss.
CURVE_EVERY_S = 300.0  # Seconds between redraws of curve.png during a run.


@dataclass(frozen=True)
class VoxelRunOptions:
    """How a voxel run is carried out: the keyword options of the teacher and the distillation."""

    steps: int | None = None  # Total optimiser steps (default from the config).
    seed: int = 0  # Seeds the initialisation, batches, noise and augmentation.
    log: Log = print  # Receives one line per checkpoint.
    progress: bool = False  # Show a progress bar.
    resume: bool = False  # Continue out/checkpoint.pt exactly (an error when there is none).
    time_budget_s: float | None = None  # Stop cleanly, after a checkpoint, before this much time has passed.
    export: str | Path | None = None  # Also copy model.pt here at every checkpoint (the deprecated -o FILE).


def load_voxel_data(
    path: str | Path, mesh: CylindricalMesh, *, max_showers: int | None = None, chunk_showers: int = 500
) -> VoxelShowers:
    """Voxelise (the first ``max_showers`` showers of) a shower file, chunk by chunk.

    ``path`` is our ragged HDF5, or a CaloChallenge file (read as is, its mesh must match).
    """
    from caloclouds.io.hdf5 import ShowerFile
    from caloclouds.voxel.calochallenge import is_calochallenge_hdf5, read_calochallenge

    if is_calochallenge_hdf5(path):
        return read_calochallenge(path, mesh=mesh, stop=max_showers)
    parts = []
    with ShowerFile(path) as f:
        stop = len(f) if max_showers is None else min(len(f), max_showers)
        for start in range(0, stop, chunk_showers):
            parts.append(voxelize(f.read(start, min(stop, start + chunk_showers)), mesh))
    return VoxelShowers.concatenate(parts)


@dataclass
class VoxelTrainingData:
    """Preprocessed training tensors: logits (N, 1, L, A, R) and conditions (N, 1 + L)."""

    x: Tensor
    features: Tensor

    def __len__(self) -> int:
        return self.x.shape[0]


def _prepare(model: VoxelModel, voxels: VoxelShowers) -> VoxelTrainingData:
    with torch.no_grad():
        images = model.to_latent(torch.from_numpy(voxels.energy_mev))
        x, feats = model.normaliser(images, torch.from_numpy(voxels.incident_energy_gev))
    return VoxelTrainingData(x.float().contiguous(), feats.float().contiguous())


def _augment(x: Tensor, generator: torch.Generator) -> Tensor:
    """Random alpha roll and reflection of each image (B, 1, L, A, R)."""
    b, n_alpha = x.shape[0], x.shape[3]
    shift = torch.randint(n_alpha, (b,), generator=generator)
    flip = torch.rand(b, generator=generator) < 0.5
    base = torch.arange(n_alpha)
    idx = torch.where(flip[:, None], n_alpha - 1 - base[None], base[None])
    idx = (idx + shift[:, None]) % n_alpha
    return torch.gather(x, 3, idx[:, None, None, :, None].expand_as(x))


def _lr(config: VoxelConfig, step: int, total: int) -> float:
    return cosine_lr(step / max(total, 1), config.learning_rate, FINAL_LR_FACTOR)


@torch.no_grad()
def _validation_loss(model: VoxelModel, data: VoxelTrainingData, config: VoxelConfig) -> float:
    if len(data) == 0:
        return float("nan")
    g = torch.Generator().manual_seed(VALIDATION_SEED)
    sigma = sample_log_normal_sigma(len(data), p_mean=config.p_mean, p_std=config.p_std, generator=g)
    noise = torch.randn(data.x.shape, generator=g)
    losses = []
    for start in range(0, len(data), config.batch_size):
        sl = slice(start, start + config.batch_size)
        loss = model.denoiser.loss(data.x[sl], noise[sl], sigma[sl], cond=ImageCond.for_images(data.features[sl]))
        losses.append(per_image_mean(loss))
    return float(torch.cat(losses).mean())


@dataclass
class _Run:
    """The state of one run (teacher or distillation) in its folder: fresh, or resumed from ``checkpoint.pt``."""

    out: Path
    opts: VoxelRunOptions
    total: int  # Optimiser steps of the whole run.
    start: int  # Steps already done (0 when fresh).
    run_log: RunLog
    generator: torch.Generator  # Batches, noise and augmentation.
    optimiser: torch.optim.Optimizer


def _start_run(
    out: Path,
    stored: dict[str, Any] | None,
    config: VoxelConfig,
    *,
    opts: VoxelRunOptions,
    total: int,
    optimiser: torch.optim.Optimizer,
) -> _Run:
    """Seed the random stream, restore the optimiser, stream and log of ``stored`` (a training
    checkpoint, or None), and write the run's ``config.yaml``."""
    generator = torch.Generator().manual_seed(opts.seed)
    run_log, start = _resume_state(stored, optimiser, generator)
    out.mkdir(parents=True, exist_ok=True)
    write_run_config(out, {"voxel": voxel_config_to_dict(config)})
    return _Run(out, opts, total, start, run_log, generator, optimiser)


def _fit_loop(
    data: VoxelTrainingData,
    config: VoxelConfig,
    run: _Run,
    *,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    trained: VoxelModel,
    saved: VoxelModel,
    ema_fn: Callable[[int], None],
    lr_fn: Callable[[int], float] | None,
    val_fn: Callable[[], float] | None,
) -> TrainResult:
    """The optimisation loop the teacher and the distillation share, from ``run.start`` to ``run.total``.

    Each step draws a batch of images (augmented), takes the mean of ``loss_fn(x, features)`` (one
    loss per image; it draws its noise from ``run.generator``), sets the learning rate to
    ``lr_fn(step)`` when given, clips, steps, and updates the EMA with ``ema_fn(step)`` (steps
    counted from 1). Every ``config.checkpoint_every`` steps and at the end a metrics row is logged and
    the run folder written: ``model.pt`` holds ``saved`` (the EMA / target), ``checkpoint.pt`` adds
    ``trained``, the optimiser and the random stream.
    """
    last = {"row": -1.0, "png": 0.0}
    out, opts, run_log, generator, optimiser = run.out, run.opts, run.run_log, run.generator, run.optimiser

    def step_fn(step: int) -> tuple[Tensor, int]:
        idx = torch.randint(len(data), (config.batch_size,), generator=generator)
        x, feats = data.x[idx], data.features[idx]
        if config.augment:
            x = _augment(x, generator)
        loss = loss_fn(x, feats).mean()
        if lr_fn is not None:
            set_lr(optimiser, lr_fn(step + 1))
        optimiser_step(loss, optimiser, trained.denoiser.parameters(), config.grad_clip)
        ema_fn(step + 1)
        return loss.detach(), len(x)

    def save_fn(step: int, final: bool) -> None:
        row = run_log.metrics[-1]
        if row["step"] != last["row"]:
            opts.log(_format_row(row))
            last["row"] = row["step"]
        header = run_record(step=step, loss_log=run_log.loss, metrics=run_log.metrics, elapsed_s=run_log.elapsed_s)
        train_state = {
            "model": trained.state_dict(),
            "optimizer": optimiser.state_dict(),
            "rng": [generator.get_state()],
            "seed": opts.seed,
        }
        save_run_checkpoints(out, saved.checkpoint(**header, seed=opts.seed), train_state)
        png = final or time.monotonic() - last["png"] > CURVE_EVERY_S
        title = "voxel EDM teacher" if saved.kind == "edm" else "voxel consistency model"
        write_curves(out, run_log.metrics, title, png=png)
        if png:
            last["png"] = time.monotonic()
        if opts.export is not None:
            with atomic_path(opts.export) as tmp:
                shutil.copyfile(out / MODEL_NAME, tmp)

    steps = run_steps(
        step_fn=step_fn,
        save_fn=save_fn,
        start=run.start,
        steps=run.total,
        checkpoint_every=config.checkpoint_every,
        log=run_log,
        progress=opts.progress,
        desc="train-voxel" if saved.kind == "edm" else "distill-voxel",
        val_fn=val_fn,
        lr_fn=lambda: optimiser.param_groups[0]["lr"],
        time_budget_s=opts.time_budget_s,
    )
    return make_result(out, run.start, steps, run_log)


def _resume_state(
    stored: dict[str, Any] | None, optimiser: torch.optim.Optimizer, generator: torch.Generator
) -> tuple[RunLog, int]:
    """Load the optimiser and random stream of a training checkpoint; its log and step (fresh: empty, 0)."""
    if stored is None:
        return RunLog([], []), 0
    optimiser.load_state_dict(stored["train_state"]["optimizer"])
    generator.set_state(stored["train_state"]["rng"][0])
    return RunLog.from_checkpoint(stored), int(stored["step"])


def _teacher(
    voxels: VoxelShowers, config: VoxelConfig, *, out: str | Path, opts: VoxelRunOptions
) -> tuple[VoxelModel, TrainResult]:
    out, stored = open_run_dir(out, "voxel-edm", opts.resume)
    if stored is not None:
        config = voxel_config_from_dict(stored["config"])  # the run's own config wins on resume
    total = config.steps if opts.steps is None else int(opts.steps)
    torch.manual_seed(opts.seed)
    model = build_voxel_model(config)
    if model.mesh.n_voxels != voxels.mesh.n_voxels:
        raise ValueError(f"training voxels are on {voxels.mesh!r}, the config's mesh is {model.mesh!r}")
    n_val = min(config.val_showers, len(voxels) // 5)
    train_v, val_v = voxels[: len(voxels) - n_val], voxels[len(voxels) - n_val :]
    if stored is None:  # preprocessing and the layer-energy model are fitted on the training part only
        images = model.to_latent(torch.from_numpy(train_v.energy_mev)).detach()
        einc = torch.from_numpy(train_v.incident_energy_gev)
        model.normaliser.fit(images, einc)
        model.layer_model.fit(einc, images.sum(dim=(-2, -1)))
        del images
    else:
        model.load_state_dict(stored["train_state"]["model"])
    train, val = _prepare(model, train_v), _prepare(model, val_v)
    ema = copy.deepcopy(model).eval()
    if stored is not None:
        ema.load_state_dict(stored["state_dict"])
    opt = torch.optim.Adam(model.denoiser.parameters(), lr=config.learning_rate)
    run = _start_run(out, stored, config, opts=opts, total=total, optimiser=opt)
    g = run.generator

    def loss_fn(x: Tensor, feats: Tensor) -> Tensor:
        sigma = sample_log_normal_sigma(len(x), p_mean=config.p_mean, p_std=config.p_std, generator=g)
        noise = torch.randn(x.shape, generator=g)
        return per_image_mean(model.denoiser.loss(x, noise, sigma, cond=ImageCond.for_images(feats)))

    result = _fit_loop(
        train,
        config,
        run,
        loss_fn=loss_fn,
        trained=model,
        saved=ema,
        ema_fn=lambda step: ema_update(
            ema.denoiser, model.denoiser, ema_warmup_decay(step, power=config.ema_power, max_decay=config.ema_max)
        ),
        lr_fn=lambda step: _lr(config, step, total),
        val_fn=lambda: _validation_loss(ema, val, config),
    )
    return ema, result


def train_voxel_model(voxels: VoxelShowers, config: VoxelConfig, *, out: str | Path, **options: Any) -> VoxelModel:
    """Train the EDM teacher on voxelised showers into the run folder ``out``.

    Args:
        voxels: training showers on ``config.mesh`` (the last ``config.val_showers`` are
            held out for the validation loss).
        config: the voxel configuration (on resume the run's ``config.yaml`` / checkpoint wins).
        out: run folder (``config.yaml``, ``checkpoint.pt``, ``model.pt``, ``metrics.csv``,
            ``curve.png``), written every ``config.checkpoint_every`` steps and at the end.
        options: the fields of :class:`VoxelRunOptions` (``steps``, ``seed``, ``log``, ``progress``,
            ``resume``, ``time_budget_s``, ``export``).

    Returns:
        The EMA model (in eval mode).
    """
    return _teacher(voxels, config, out=out, opts=VoxelRunOptions(**options))[0]


def _distill(
    teacher: VoxelModel, voxels: VoxelShowers, *, out: str | Path, opts: VoxelRunOptions
) -> tuple[VoxelModel, TrainResult]:
    config = teacher.config
    out, stored = open_run_dir(out, "voxel-cm", opts.resume)
    total = config.distill_steps if opts.steps is None else int(opts.steps)
    torch.manual_seed(opts.seed)
    student = VoxelModel(config, teacher.mesh, teacher.latent_mesh, kind="cm")
    student.load_state_dict(teacher.state_dict() if stored is None else stored["train_state"]["model"])
    target = copy.deepcopy(student).eval()
    if stored is not None:
        target.load_state_dict(stored["state_dict"])
    teacher = teacher.eval()
    for p in list(teacher.parameters()) + list(target.parameters()):
        p.requires_grad_(False)
    data = _prepare(student, voxels)
    sigmas = karras_sigmas(config.distill_levels, config.sigma_min, config.sigma_max, config.rho, append_zero=False)
    opt = torch.optim.Adam(student.denoiser.parameters(), lr=config.learning_rate * FINAL_LR_FACTOR)
    run = _start_run(out, stored, config, opts=opts, total=total, optimiser=opt)
    g = run.generator

    def loss_fn(x: Tensor, feats: Tensor) -> Tensor:
        level = torch.randint(config.distill_levels - 1, (len(x),), generator=g)
        noise = torch.randn(x.shape, generator=g)
        return per_image_mean(
            consistency_distillation_loss(
                student.denoiser,
                target.denoiser,
                teacher.denoiser,
                x,
                noise,
                level,
                sigmas,
                cond=ImageCond.for_images(feats),
            )
        )

    result = _fit_loop(
        data,
        config,
        run,
        loss_fn=loss_fn,
        trained=student,
        saved=target,
        ema_fn=lambda step: ema_update(target.denoiser, student.denoiser, config.distill_target_ema),
        lr_fn=None,
        val_fn=None,
    )
    return target, result


def distill_voxel_model(teacher: VoxelModel, voxels: VoxelShowers, *, out: str | Path, **options: Any) -> VoxelModel:
    """Consistency distillation of a voxel teacher (Song et al. 2023, Algorithm 2) into the run folder ``out``.

    The student starts from the teacher's weights; the target is its EMA with the constant rate
    ``config.distill_target_ema``; the teacher makes one Heun step between adjacent Karras levels
    (``config.distill_levels``). ``model.pt`` holds the target model (the one used for sampling).
    ``options``: the fields of :class:`VoxelRunOptions`, as in :func:`train_voxel_model`.
    """
    return _distill(teacher, voxels, out=out, opts=VoxelRunOptions(**options))[0]


def _format_row(row: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())


def train_voxel_from_file(
    path: str | Path,
    config: VoxelConfig,
    *,
    out: str | Path,
    max_showers: int | None = None,
    distill_from: str | Path | None = None,
    **options: Any,
) -> TrainResult:
    """Voxelise ``path`` and train the teacher, or distil ``distill_from`` (a teacher checkpoint or
    run folder), into the run folder ``out``.

    With ``distill_from`` the teacher's own config and mesh are used and ``config`` is ignored.
    ``options``: the fields of :class:`VoxelRunOptions`.
    """
    from caloclouds.voxel.mesh import get_mesh
    from caloclouds.voxel.model import load_voxel_model

    opts = VoxelRunOptions(**options)
    if distill_from is not None:
        open_run_dir(out, "voxel-cm", opts.resume)  # before the (long) voxelisation
        teacher = load_voxel_model(distill_from)
        voxels = load_voxel_data(path, teacher.mesh, max_showers=max_showers)
        opts.log(f"voxelised {len(voxels)} showers on {teacher.mesh!r}; distilling {distill_from}")
        return _distill(teacher, voxels, out=out, opts=opts)[1]
    _, stored = open_run_dir(out, "voxel-edm", opts.resume)  # before the (long) voxelisation
    if stored is not None:  # the run's own config and mesh
        config = voxel_config_from_dict(stored["config"])
    voxels = load_voxel_data(path, get_mesh(config.mesh), max_showers=max_showers)
    opts.log(f"voxelised {len(voxels)} showers on {voxels.mesh!r}")
    return _teacher(voxels, config, out=out, opts=opts)[1]
