"""Training of the voxel model: EDM teacher and consistency distillation.

The training file (our ragged HDF5) is voxelised once, in chunks, and held in memory as
standardised logits (6000 showers x 4320 voxels = 100 MB in float32). Each step draws a batch,
optionally rotates it by a random number of alpha bins and reflects it (exact symmetries of the
cylinder for showers at normal incidence), and minimises the EDM loss of
:class:`caloclouds.diffusion.edm.EDMDenoiser` (reused through :class:`ImageCond`). The EMA of the
weights is checkpointed every ``eval_every`` steps together with the validation loss (fixed
showers, fixed noise levels). Distillation trains a :class:`ConsistencyDenoiser` student against
the teacher with :func:`caloclouds.diffusion.consistency.consistency_distillation_loss`.

References:
    Karras et al. (2022), EDM training; Song et al. (2023), consistency distillation (Algorithm 2).
"""

from __future__ import annotations

import copy
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
from caloclouds.diffusion.loop import optimiser_step
from caloclouds.diffusion.sampling import karras_sigmas
from caloclouds.runcontrol import cosine_lr, set_lr
from caloclouds.voxel.adapter import ImageCond, per_image_mean
from caloclouds.voxel.config import VoxelConfig
from caloclouds.voxel.mesh import CylindricalMesh
from caloclouds.voxel.model import VoxelModel, build_voxel_model
from caloclouds.voxel.voxelize import VoxelShowers, voxelize

__all__ = ["load_voxel_data", "VoxelTrainingData", "train_voxel_model", "distill_voxel_model", "train_voxel_from_file"]

Log = Callable[[str], None]
FINAL_LR_FACTOR = 0.1  # Cosine learning-rate decay to this fraction of the peak at the last step.
VALIDATION_SEED = 12345  # Fixed noise levels and noise of the validation loss.


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


def _fit_loop(
    data: VoxelTrainingData,
    config: VoxelConfig,
    *,
    total: int,
    generator: torch.Generator,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    model: VoxelModel,
    optimiser: torch.optim.Optimizer,
    ema_fn: Callable[[int], None],
    lr_fn: Callable[[int], float] | None,
    row_fn: Callable[[int, float], dict[str, float]],
    save_fn: Callable[[int, list[dict[str, float]]], None],
    log: Log,
    progress: bool,
) -> None:
    """The optimisation loop the teacher and the distillation share.

    Each step draws a batch of images (augmented), takes the mean of ``loss_fn(x, features)`` (one
    loss per image; it draws its noise from ``generator``), sets the learning rate to
    ``lr_fn(step)`` when given, clips, steps, and updates the EMA with ``ema_fn(step)``. Every
    ``config.eval_every`` steps and at the end it logs ``{"step", **row_fn(step, mean loss), "seconds"}``
    and calls ``save_fn(step, history)``.
    """
    history: list[dict[str, float]] = []
    running, n_running, t0 = 0.0, 0, time.perf_counter()
    bar = _bar(total, progress)
    for step in range(1, total + 1):
        idx = torch.randint(len(data), (config.batch_size,), generator=generator)
        x, feats = data.x[idx], data.features[idx]
        if config.augment:
            x = _augment(x, generator)
        loss = loss_fn(x, feats).mean()
        if lr_fn is not None:
            set_lr(optimiser, lr_fn(step))
        optimiser_step(loss, optimiser, model.denoiser.parameters(), config.grad_clip)
        ema_fn(step)
        running, n_running = running + float(loss.detach()), n_running + 1
        bar.update(1)
        if step % config.eval_every == 0 or step == total:
            row = {"step": step, **row_fn(step, running / n_running), "seconds": time.perf_counter() - t0}
            history.append(row)
            log(_format_row(row))
            running, n_running = 0.0, 0
            save_fn(step, history)
    bar.close()


def train_voxel_model(
    voxels: VoxelShowers,
    config: VoxelConfig,
    *,
    out: str | Path,
    steps: int | None = None,
    seed: int = 0,
    log: Log = print,
    progress: bool = False,
) -> VoxelModel:
    """Train the EDM teacher on voxelised showers and checkpoint its EMA to ``out``.

    Args:
        voxels: training showers on ``config.mesh`` (the last ``config.validation_showers`` are
            held out for the validation loss).
        config: the voxel configuration.
        out: checkpoint path (rewritten every ``config.eval_every`` steps and at the end).
        steps: optimiser steps (default ``config.steps``).
        seed: seeds the initialisation, batches, noise and augmentation.
        log: receives one line per evaluation.
        progress: show a tqdm progress bar.

    Returns:
        The EMA model (in eval mode).
    """
    total = config.steps if steps is None else int(steps)
    torch.manual_seed(seed)
    model = build_voxel_model(config)
    if model.mesh.n_voxels != voxels.mesh.n_voxels:
        raise ValueError(f"training voxels are on {voxels.mesh!r}, the config's mesh is {model.mesh!r}")
    n_val = min(config.validation_showers, len(voxels) // 5)
    train_v, val_v = voxels[: len(voxels) - n_val], voxels[len(voxels) - n_val :]
    # preprocessing and the layer-energy model are fitted on the training part only
    images = model.to_latent(torch.from_numpy(train_v.energy_mev)).detach()
    einc = torch.from_numpy(train_v.incident_energy_gev)
    model.normaliser.fit(images, einc)
    model.layer_model.fit(einc, images.sum(dim=(-2, -1)))
    del images
    train, val = _prepare(model, train_v), _prepare(model, val_v)
    ema = copy.deepcopy(model).eval()
    opt = torch.optim.Adam(model.denoiser.parameters(), lr=config.learning_rate)
    g = torch.Generator().manual_seed(seed)

    def loss_fn(x: Tensor, feats: Tensor) -> Tensor:
        sigma = sample_log_normal_sigma(len(x), p_mean=config.p_mean, p_std=config.p_std, generator=g)
        noise = torch.randn(x.shape, generator=g)
        return per_image_mean(model.denoiser.loss(x, noise, sigma, cond=ImageCond.for_images(feats)))

    _fit_loop(
        train,
        config,
        total=total,
        generator=g,
        loss_fn=loss_fn,
        model=model,
        optimiser=opt,
        ema_fn=lambda step: ema_update(
            ema.denoiser, model.denoiser, ema_warmup_decay(step, power=config.ema_power, max_decay=config.ema_max)
        ),
        lr_fn=lambda step: _lr(config, step, total),
        row_fn=lambda step, loss: {
            "train_loss": loss,
            "val_loss": _validation_loss(ema, val, config),
            "lr": _lr(config, step, total),
        },
        save_fn=lambda step, history: ema.save(out, step=step, history=history, seed=seed),
        log=log,
        progress=progress,
    )
    return ema


def distill_voxel_model(
    teacher: VoxelModel,
    voxels: VoxelShowers,
    *,
    out: str | Path,
    steps: int | None = None,
    seed: int = 0,
    log: Log = print,
    progress: bool = False,
) -> VoxelModel:
    """Consistency distillation of a voxel teacher (Song et al. 2023, Algorithm 2).

    The student starts from the teacher's weights; the target is its EMA with the constant rate
    ``config.distill_target_ema``; the teacher makes one Heun step between adjacent Karras levels
    (``config.distill_levels``). Checkpoints of the target model (the one used for sampling) go
    to ``out``.
    """
    config = teacher.config
    total = config.distill_steps if steps is None else int(steps)
    torch.manual_seed(seed)
    student = VoxelModel(config, teacher.mesh, teacher.latent_mesh, kind="cm")
    student.load_state_dict(teacher.state_dict())
    target = copy.deepcopy(student).eval()
    teacher = teacher.eval()
    for p in list(teacher.parameters()) + list(target.parameters()):
        p.requires_grad_(False)
    data = _prepare(student, voxels)
    sigmas = karras_sigmas(config.distill_levels, config.sigma_min, config.sigma_max, config.rho, append_zero=False)
    opt = torch.optim.Adam(student.denoiser.parameters(), lr=config.learning_rate * FINAL_LR_FACTOR)
    g = torch.Generator().manual_seed(seed)

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

    _fit_loop(
        data,
        config,
        total=total,
        generator=g,
        loss_fn=loss_fn,
        model=student,
        optimiser=opt,
        ema_fn=lambda step: ema_update(target.denoiser, student.denoiser, config.distill_target_ema),
        lr_fn=None,
        row_fn=lambda step, loss: {"cd_loss": loss},
        save_fn=lambda step, history: target.save(out, step=step, history=history, seed=seed),
        log=log,
        progress=progress,
    )
    return target


def _format_row(row: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())


def _bar(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, unit="step")


def train_voxel_from_file(
    path: str | Path,
    config: VoxelConfig,
    *,
    out: str | Path,
    steps: int | None = None,
    max_showers: int | None = None,
    distill_from: str | Path | None = None,
    seed: int = 0,
    log: Log = print,
    progress: bool = False,
) -> VoxelModel:
    """Voxelise ``path`` and train the teacher, or distil ``distill_from`` (a teacher checkpoint).

    With ``distill_from`` the teacher's own config and mesh are used and ``config`` is ignored.
    """
    from caloclouds.voxel.mesh import get_mesh
    from caloclouds.voxel.model import load_voxel_model

    if distill_from is not None:
        teacher = load_voxel_model(distill_from)
        voxels = load_voxel_data(path, teacher.mesh, max_showers=max_showers)
        log(f"voxelised {len(voxels)} showers on {teacher.mesh!r}; distilling {distill_from}")
        return distill_voxel_model(teacher, voxels, out=out, steps=steps, seed=seed, log=log, progress=progress)
    voxels = load_voxel_data(path, get_mesh(config.mesh), max_showers=max_showers)
    log(f"voxelised {len(voxels)} showers on {voxels.mesh!r}")
    return train_voxel_model(voxels, config, out=out, steps=steps, seed=seed, log=log, progress=progress)
