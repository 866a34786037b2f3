"""Resumable maximum-likelihood training of the Shower Flow.

Loss = -log p(x | c) averaged over a batch (CaloClouds §2.3), Adam with a cosine learning-rate
decay. Every ``eval_every`` steps the validation loss is computed, a row is added to
``losses.csv`` and ``last.pt`` is written atomically (``best.pt`` too when the validation loss
improved; at the end its mean layer profile is calibrated on the training set, see
:mod:`flows.calibration`). ``last.pt`` holds the optimiser and random-generator states and the loss history, so
``resume=True`` continues exactly where the last checkpoint left off: same step count, same
batches, and the loss log continues. SIGTERM or Ctrl-C, also during a validation, lets the current
step (and its validation) finish, writes ``last.pt`` and stops; so does ``time_budget_s``. The
run is then identical to an uninterrupted one after ``resume=True``. ``curve.png`` plots the log.
"""

from __future__ import annotations

import json
import math
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from caloclouds.config import DetectorConfig, FlowConfig, RunConfig, config_from_dict, config_to_dict
from caloclouds.errors import ConfigError
from caloclouds.io.atomic import atomic_path
from caloclouds.runcontrol import StopRequest, cosine_lr, set_lr, write_curve_png, write_metrics_csv
from flows.calibration import calibrate_layer_profile
from flows.checkpoint import (
    BEST_NAME,
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

LOSS_LOG_NAME = "losses.csv"
_LOG_FIELDS = ("step", "train_loss", "val_loss", "learning_rate", "elapsed_s")
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
        if cfg.rotate_cog:
            c, s = torch.cos(angle), torch.sin(angle)
            cog = torch.stack([c * cog[:, 0] - s * cog[:, 1], s * cog[:, 0] + c * cog[:, 1]], dim=1)
        x = pre.encode(n_l[idx], e_l[idx], cog, energy[idx], dequantise=gen)
        x = x + torch.randn(x.shape, generator=gen).to(self.device) * cfg.target_noise
        return x, pre.encode_condition(energy[idx], extra[idx])


@torch.no_grad()
def _mean_loss(flow: ShowerFlow, features: ShowerFeatures) -> float:
    total = 0.0
    gen = torch.Generator().manual_seed(_EVAL_SEED)  # the same dequantisation at every evaluation
    for start in range(0, len(features), _EVAL_BATCH):
        total += -flow.log_prob(features[start : start + _EVAL_BATCH], dequantise=gen).sum().item()
    return total / len(features)


def _write_log(out: Path, history: list[dict[str, float]]) -> None:
    write_metrics_csv(out / LOSS_LOG_NAME, history, _LOG_FIELDS)
    write_curve_png(
        out / "curve.png",
        history,
        "Shower Flow",
        {"train_loss": "training loss (mean over interval)", "val_loss": "validation loss"},
    )


def _calibrate_best(out: Path, train: ShowerFeatures, cfg: FlowConfig, detector: DetectorConfig) -> None:
    """Fit the per-layer profile calibration of ``best.pt`` on the training set (once)."""
    ckpt = read_checkpoint(out / BEST_NAME)
    if ckpt["training"].get("calibrated") or train.conditions.shape[1]:
        return
    best = flow_from_checkpoint(ckpt)
    scales = calibrate_layer_profile(best, train, samples_per_shower=cfg.calibration_samples)
    training = dict(ckpt["training"], calibrated=True, calibration=scales)
    save_checkpoint(out / BEST_NAME, flow_checkpoint(best, detector=detector, training=training))


def _start(
    config: RunConfig, train: ShowerFeatures, out: Path, resume: bool, seed: int, device: str
) -> tuple[Any, ...]:
    last = out / LAST_NAME
    if resume and last.is_file():
        ckpt = read_checkpoint(last)
        flow = flow_from_checkpoint(ckpt).to(device)
        state = ckpt["training"]
        flow_config = flow.config
        detector = flow_detector_config(ckpt)
        return flow, flow_config, detector, state
    if not resume and last.is_file():
        msg = f"{out} already holds a training run ({LAST_NAME}); pass --resume to continue it or choose another --out"
        raise ConfigError(msg)
    torch.manual_seed(seed)  # initial weights only; every later draw uses the run's own generator
    pre = FeaturePreprocessing.fit(train, range_margin=config.flow.range_margin)
    flow = ShowerFlow(pre, config.flow).to(device)
    gen = torch.Generator().manual_seed(seed)
    state = {
        "step": 0,
        "history": [],
        "best_val_loss": float("inf"),
        "pending_loss_sum": 0.0,
        "pending_loss_count": 0,
        "rng_state": gen.get_state(),
        "optimizer": None,
        "seed": seed,
        "elapsed_s": 0.0,
    }
    return flow, config.flow, config.detector, state


def train_shower_flow(
    config: RunConfig,
    *,
    data: str | Path,
    out: str | Path,
    val: str | Path | None = None,
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
            the ones stored in ``last.pt`` win).
        data: training shower file.
        out: run folder (checkpoints, ``losses.csv``, ``config.json``, feature caches).
        val: validation shower file; without it the training loss picks the best checkpoint.
        steps: total optimiser steps (default ``config.flow.steps``).
        device: torch device.
        seed: seed of the initial weights, the batches and the augmentation.
        resume: continue from ``out/last.pt`` (an error when there is none).
        progress: show a tqdm bar with the train and validation loss.
        callback: called after every optimiser step with ``{"step", "loss"}`` (e.g. to stop a test).
        time_budget_s: stop cleanly, after writing ``last.pt``, before this much time has passed.

    Returns:
        ``{"step", "best_val_loss", "best", "last", "log", "stopped", "elapsed_s"}``; ``stopped`` is
        "" (all steps done), "time budget" or the name of the signal that stopped the run.
    """
    import time

    from tqdm import tqdm

    out = Path(out)
    detector: DetectorConfig = config.detector
    cfg = config.flow
    if resume and not (out / LAST_NAME).is_file():  # before any folder is made
        raise ConfigError(f"{out / LAST_NAME}: no checkpoint to resume; drop --resume to start a new run")
    out.mkdir(parents=True, exist_ok=True)
    if resume:
        stored = read_checkpoint(out / LAST_NAME)
        detector = flow_detector_config(stored)
        cfg = config_from_dict({"flow": stored["config"]["flow"]}).flow
    feature_args = {
        "n_layers": detector.n_layers,
        "condition_names": cfg.condition_names,
        "chunk_showers": cfg.chunk_showers,
        "cache_dir": out,
        "progress": progress,
    }
    train = file_features(data, **feature_args)
    val_features = file_features(val, **feature_args) if val is not None else None
    flow, cfg, detector, state = _start(RunConfig(detector=detector, flow=cfg), train, out, resume, seed, device)
    total = int(steps if steps is not None else cfg.steps)
    optimizer = torch.optim.Adam(flow.model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    if state.get("optimizer") is not None:
        optimizer.load_state_dict(state["optimizer"])
    gen = torch.Generator()
    gen.set_state(state["rng_state"])
    batches = _Batches(flow, train, cfg, gen)
    with atomic_path(out / "config.json") as tmp:
        tmp.write_text(
            json.dumps(
                {
                    "detector": config_to_dict(detector),
                    "flow": config_to_dict(cfg),
                    "data": str(data),
                    "val": str(val) if val else None,
                    "steps": total,
                },
                indent=2,
            )
        )

    t0 = time.perf_counter()
    elapsed0 = float(state.get("elapsed_s", 0.0))

    def elapsed() -> float:
        return elapsed0 + time.perf_counter() - t0

    def save(step: int) -> None:
        state.update(
            step=step,
            rng_state=gen.get_state(),
            optimizer=optimizer.state_dict(),
            total_steps=total,
            elapsed_s=elapsed(),
        )
        save_checkpoint(out / LAST_NAME, flow_checkpoint(flow, detector=detector, training=state))
        _write_log(out, state["history"])

    step = int(state["step"])
    last_row = state["history"][-1] if state["history"] else {}
    bar = tqdm(
        total=total, initial=min(step, total), desc="train-flow", unit="step", disable=not progress, dynamic_ncols=True
    )
    if last_row:
        bar.set_postfix(train=f"{last_row['train_loss']:.3f}", val=f"{last_row['val_loss']:.3f}")
    flow.train()
    stopped = ""
    start = step
    consistent = True  # False while a step (and its validation) is half done: no checkpoint then
    with StopRequest() as stop:
        try:
            while step < total:
                ran = time.perf_counter() - t0
                if time_budget_s is not None and step > start and ran + ran / (step - start) > time_budget_s:
                    stopped = "time budget"
                    save(step)
                    break
                consistent = False
                set_lr(optimizer, _learning_rate(cfg, step, total))
                x, cond = batches.next()
                loss = -flow.model(cond).log_prob(x).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(flow.model.parameters(), cfg.grad_clip)
                optimizer.step()
                step += 1
                state["pending_loss_sum"] += float(loss.item())
                state["pending_loss_count"] += 1
                bar.update(1)
                if step % cfg.eval_every == 0 or step == total:
                    flow.eval()
                    train_loss = state["pending_loss_sum"] / max(state["pending_loss_count"], 1)
                    val_loss = _mean_loss(flow, val_features) if val_features is not None else train_loss
                    flow.train()
                    row = {
                        "step": step,
                        "train_loss": train_loss,
                        "val_loss": val_loss,
                        "learning_rate": optimizer.param_groups[0]["lr"],
                        "elapsed_s": elapsed(),
                    }
                    state["history"].append(row)
                    state["pending_loss_sum"], state["pending_loss_count"] = 0.0, 0
                    if math.isfinite(val_loss) and val_loss < state["best_val_loss"]:
                        state["best_val_loss"] = val_loss
                        best = flow_checkpoint(
                            flow, detector=detector, training={"step": step, "val_loss": val_loss, "data": str(data)}
                        )
                        save_checkpoint(out / BEST_NAME, best)
                    save(step)
                    bar.set_postfix(train=f"{train_loss:.3f}", val=f"{val_loss:.3f}")
                consistent = True
                if callback is not None:
                    callback({"step": step, "loss": float(loss.item())})
                if stop.requested:  # at a step boundary, after this step's validation: exact to resume
                    stopped = signal.Signals(stop.signum).name
                    if step % cfg.eval_every and step != total:
                        save(step)
                    break
        except KeyboardInterrupt:
            if consistent:  # else the last checkpoint stands: resuming from a half-done step is not exact
                save(step)
            raise
        finally:
            bar.close()
    flow.eval()
    if step >= total and cfg.calibrate_profile:
        _calibrate_best(out, train, cfg, detector)
    return {
        "step": step,
        "best_val_loss": state["best_val_loss"],
        "best": out / BEST_NAME,
        "last": out / LAST_NAME,
        "log": out / LOSS_LOG_NAME,
        "stopped": stopped,
        "elapsed_s": elapsed(),
    }
