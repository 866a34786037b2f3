"""Resumable maximum-likelihood training of the Shower Flow, on the step loop all trainings share.

Loss = -log p(x | c) averaged over a batch (CaloClouds §2.3), Adam with a cosine learning-rate
decay, in the run folder every training uses (:mod:`caloclouds.training.rundir`). Every
``eval_every`` steps the validation loss is computed, a row is added to ``metrics.csv`` and
``checkpoint.pt`` is written atomically; ``model.pt`` too when the validation loss improved (it is
the lowest-validation-loss flow, the file to ship; at the end its mean layer profile is calibrated
on the training set, see :mod:`flows.calibration`). ``checkpoint.pt`` holds the optimiser and
random-generator states and the loss log, so ``resume=True`` continues exactly where the last
checkpoint left off: same step count, same batches, same choice of ``model.pt``. SIGTERM or Ctrl-C,
also during a validation, lets the current step (and its validation) finish, writes
``checkpoint.pt`` and stops; so does ``time_budget_s``. ``curve.png`` plots the log.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from caloclouds.config import DetectorConfig, FlowConfig, RunConfig, config_from_dict, config_to_dict
from caloclouds.direction import augmentation_turn
from caloclouds.errors import ConfigError
from caloclouds.runcontrol import cosine_lr, set_lr
from caloclouds.showers import THETA
from caloclouds.training.loop import RunLog, optimiser_step, run_steps
from caloclouds.training.rundir import (
    CHECKPOINT_NAME,
    METRICS_NAME,
    MODEL_NAME,
    open_run_dir,
    run_record,
    save_run_checkpoints,
    write_curves,
    write_run_config,
)
from flows.calibration import calibrate_layer_profile
from flows.checkpoint import (
    KIND,
    LAST_NAME,
    flow_checkpoint,
    flow_detector_config,
    flow_from_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from flows.features import ShowerFeatures, file_features
from flows.preprocessing import FeaturePreprocessing
from flows.sampling import ShowerFlow

__all__ = ["train_shower_flow", "LOSS_LOG_NAME"]

LOSS_LOG_NAME = METRICS_NAME  # the loss log of a run (losses.csv in earlier versions)
_EVAL_BATCH = 4096  # showers per forward pass when computing the validation loss
_EVAL_SEED = 0  # seed of the validation set's dequantisation noise


def _learning_rate(config: FlowConfig, step: int, total: int) -> float:
    """Cosine decay from ``learning_rate`` to ``learning_rate * final_lr_factor`` at ``total``."""
    return cosine_lr(step / max(total, 1), config.learning_rate, config.final_lr_factor)


class _Batches:
    """Training batches from the cached features, with rotation augmentation and target noise.

    The layer fractions are dequantised, and Gaussian noise (``flow.target_noise`` standard
    deviations) keeps the flow from memorising a small training set and from collapsing onto the
    sum-to-one constraint of the layer fractions.
    """

    def __init__(self, flow: ShowerFlow, features: ShowerFeatures, config: FlowConfig, generator: torch.Generator):
        pre = flow.preprocessing
        self.tensors = pre.tensors_from(features)
        self.flow, self.config, self.generator = flow, config, generator
        self.device = pre.mean.device

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        pre, cfg, gen = self.flow.preprocessing, self.config, self.generator
        n_l, e_l, cog, energy, extra = self.tensors
        idx = torch.randint(len(energy), (cfg.batch_size,), generator=gen).to(self.device)
        cog = cog[idx]
        angle = (torch.rand(cfg.batch_size, generator=gen) * 2 * math.pi).to(self.device)
        if cfg.rotate_cog:  # angled showers: a mirror of y, the symmetry of their axis frame, not a turn
            angle, y_sign = augmentation_turn(angle, self._angled(extra[idx]))
            c, s = torch.cos(angle), torch.sin(angle)
            cog = torch.stack([c * cog[:, 0] - s * cog[:, 1], (s * cog[:, 0] + c * cog[:, 1]) * y_sign], dim=1)
        x = pre.encode(n_l[idx], e_l[idx], cog, energy[idx], dequantise=gen)
        x = x + torch.randn(x.shape, generator=gen).to(self.device) * cfg.target_noise
        return x, pre.encode_condition(energy[idx], extra[idx])

    def _angled(self, extra: torch.Tensor) -> torch.Tensor:
        """(B,) True for the angled showers of a batch (θ > 0); none when the flow knows no direction."""
        names = tuple(self.config.condition_names)
        if THETA not in names:
            return torch.zeros(extra.shape[0], dtype=torch.bool, device=extra.device)
        return extra[:, names.index(THETA)] > 0


def _paths(files: str | Path | Sequence[str | Path]) -> list[str | Path]:
    return [files] if isinstance(files, (str, Path)) else list(files)


def _names(files: str | Path | Sequence[str | Path]) -> str:
    """The files as one string for the provenance (one path as before, several joined by commas)."""
    return ",".join(str(p) for p in _paths(files))


def _features_of(files: str | Path | Sequence[str | Path], feature_args: dict[str, Any]) -> ShowerFeatures:
    return ShowerFeatures.concatenate([file_features(p, **feature_args) for p in _paths(files)])


@torch.no_grad()
def _mean_loss(flow: ShowerFlow, features: ShowerFeatures) -> float:
    total = 0.0
    gen = torch.Generator().manual_seed(_EVAL_SEED)  # the same dequantisation at every evaluation
    for start in range(0, len(features), _EVAL_BATCH):
        total += -flow.log_prob(features[start : start + _EVAL_BATCH], dequantise=gen).sum().item()
    return total / len(features)


def _calibrate_best(out: Path, train: ShowerFeatures, cfg: FlowConfig, detector: DetectorConfig) -> None:
    """Fit the per-layer profile calibration of ``model.pt`` on the training set (once)."""
    ckpt = read_checkpoint(out / MODEL_NAME)
    if ckpt["training"].get("calibrated") or train.conditions.shape[1]:
        return
    best = flow_from_checkpoint(ckpt)
    scales = calibrate_layer_profile(best, train, samples_per_shower=cfg.calibration_samples)
    training = dict(ckpt["training"], calibrated=True, calibration=scales)
    run = {k: ckpt[k] for k in ("step", "loss_log", "metrics", "elapsed_s")}
    save_checkpoint(out / MODEL_NAME, flow_checkpoint(best, detector=detector, training=training, run=run))


def _open_run(out: Path, resume: bool) -> tuple[Path, dict[str, Any] | None]:
    """The run folder and the checkpoint to resume (or None), refusing a run folder of the earlier layout."""
    if (out / LAST_NAME).is_file() and not (out / CHECKPOINT_NAME).is_file():
        msg = (
            f"{out} holds a Shower Flow run of an earlier version ({LAST_NAME}), which this version "
            "cannot resume; choose another --out (its best.pt still loads and bundles)"
        )
        raise ConfigError(msg)
    return open_run_dir(out, KIND, resume)


def train_shower_flow(
    config: RunConfig,
    *,
    data: str | Path | Sequence[str | Path],
    out: str | Path,
    val: str | Path | Sequence[str | Path] | None = None,
    steps: int | None = None,
    device: str = "cpu",
    seed: int = 0,
    resume: bool = False,
    progress: bool = True,
    callback: Callable[[dict[str, Any]], None] | None = None,
    time_budget_s: float | None = None,
) -> dict[str, Any]:
    """Train (or resume training) a Shower Flow into the run folder ``out``.

    Args:
        config: the run configuration (its ``flow`` and ``detector`` sections are used; on resume
            the ones stored in ``checkpoint.pt`` win).
        data: training shower file, or several (e.g. normal-incidence and angled files: a file
            without a direction is normal incidence).
        out: run folder (``config.yaml``, ``checkpoint.pt``, ``model.pt``, ``metrics.csv``,
            ``curve.png``, feature caches).
        val: validation shower file(s); without it the training loss picks the best checkpoint.
        steps: total optimiser steps (default ``config.flow.steps``).
        device: torch device.
        seed: seed of the initial weights, the batches and the augmentation.
        resume: continue from ``out/checkpoint.pt`` (an error when there is none).
        progress: show a progress bar.
        callback: called after every optimiser step with ``{"step", "loss"}`` (e.g. to stop a test).
        time_budget_s: stop cleanly, after writing ``checkpoint.pt``, before this much time has passed.

    Returns:
        ``{"step", "best_val_loss", "best", "last", "log", "stopped", "elapsed_s"}``: ``best`` is
        ``model.pt``, ``last`` ``checkpoint.pt``, ``log`` ``metrics.csv``; ``stopped`` is ""
        (all steps done), "time budget" or the name of the signal that stopped the run.
    """
    out = Path(out)
    detector: DetectorConfig = config.detector
    cfg = config.flow
    out, stored = _open_run(out, resume)  # before any folder is made
    if stored is not None:
        detector = flow_detector_config(stored)
        cfg = config_from_dict({"flow": stored["config"]["flow"]}).flow
    out.mkdir(parents=True, exist_ok=True)
    feature_args = {
        "n_layers": detector.n_layers,
        "condition_names": cfg.condition_names,
        "chunk_showers": cfg.chunk_showers,
        "cache_dir": out,
        "progress": progress,
        "layer_z_mm": detector.layer_centre_z_mm,
    }
    train = _features_of(data, feature_args)
    val_features = _features_of(val, feature_args) if val is not None else None
    total = int(steps if steps is not None else cfg.steps)
    if stored is None:
        torch.manual_seed(seed)  # initial weights only; every later draw uses the run's own generator
        flow = ShowerFlow(FeaturePreprocessing.fit(train, range_margin=cfg.range_margin), cfg).to(device)
    else:
        flow = flow_from_checkpoint(stored).to(device)
    optimizer = torch.optim.Adam(flow.model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    log, start = RunLog([], []), 0
    best = {"val_loss": float("inf"), "step": 0}
    if stored is not None:
        state = stored["train_state"]
        optimizer.load_state_dict(state["optimizer"])  # the step loop sets each step's learning rate
        gen.set_state(state["rng"][0])
        log, start = RunLog.from_checkpoint(stored), int(stored["step"])
        best = {"val_loss": float(state["best_val_loss"]), "step": int(state["best_step"])}
    write_run_config(out, {"detector": config_to_dict(detector), "flow": config_to_dict(cfg)})
    batches = _Batches(flow, train, cfg, gen)
    provenance = {"data": _names(data), "val": _names(val) if val else None, "steps": total}
    if train.conditions.shape[1]:  # the trained range of each condition (a bundle records it)
        provenance["condition_ranges"] = {
            name: [float(train.conditions[:, k].min()), float(train.conditions[:, k].max())]
            for k, name in enumerate(cfg.condition_names)
        }

    def step_fn(step: int) -> tuple[torch.Tensor, int]:
        set_lr(optimizer, _learning_rate(cfg, step, total))
        x, cond = batches.next()
        loss = -flow.model(cond).log_prob(x).mean()
        optimiser_step(loss, optimizer, flow.model.parameters(), cfg.grad_clip)
        if callback is not None:
            callback({"step": step + 1, "loss": float(loss.item())})
        return loss.detach(), len(x)

    def val_fn() -> float:
        flow.eval()
        value = _mean_loss(flow, val_features)
        flow.train()
        return value

    def save_fn(step: int, final: bool) -> None:
        header = run_record(step=step, loss_log=log.loss, metrics=log.metrics, elapsed_s=log.elapsed_s)
        row = log.metrics[-1]
        # model.pt is chosen among the rows of the eval_every cadence only, so a run stopped and
        # resumed in between picks the same flow as an uninterrupted one
        if row["step"] == step and (step % cfg.eval_every == 0 or step == total):
            score = row["val_loss"] if math.isfinite(row["val_loss"]) else row["loss"]
            if math.isfinite(score) and score < best["val_loss"]:
                best.update(val_loss=score, step=step)
                training = {"step": step, "val_loss": score, **provenance}
                save_checkpoint(
                    out / MODEL_NAME, flow_checkpoint(flow, detector=detector, training=training, run=header)
                )
        ckpt = flow_checkpoint(flow, detector=detector, training={"step": step, **provenance}, run=header)
        train_state = {
            "optimizer": optimizer.state_dict(),
            "rng": [gen.get_state()],
            "best_val_loss": best["val_loss"],
            "best_step": best["step"],
            "seed": seed,
        }
        save_run_checkpoints(out, ckpt, train_state, model=False)
        write_curves(out, log.metrics, "Shower Flow", val_label="validation loss")

    flow.train()
    run = run_steps(
        step_fn=step_fn,
        save_fn=save_fn,
        start=start,
        steps=total,
        checkpoint_every=cfg.eval_every,
        log=log,
        progress=progress,
        desc="train-flow",
        val_fn=val_fn if val_features is not None else None,
        lr_fn=lambda: optimizer.param_groups[0]["lr"],
        time_budget_s=time_budget_s,
    )
    flow.eval()
    step = start + run.steps_run
    if step >= total and cfg.calibrate_profile and (out / MODEL_NAME).is_file():
        _calibrate_best(out, train, cfg, detector)
    return {
        "step": step,
        "best_val_loss": best["val_loss"],
        "best": out / MODEL_NAME,
        "last": out / CHECKPOINT_NAME,
        "log": out / METRICS_NAME,
        "stopped": run.stopped,
        "elapsed_s": log.elapsed_s,
    }
