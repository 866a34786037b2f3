"""One run folder and one checkpoint header for every training: Shower Flow, PointWise Net, CM, voxel.

A run folder (``--out``) holds::

    config.yaml    the resolved configuration of the run (loadable as --config)
    checkpoint.pt  the full training state, for --resume: the header, the kind's own fields and
                   "train_state" (optimiser, random stream, the trained weights where they are not
                   the saved ones, and whatever else the kind needs to continue exactly)
    model.pt       the slim inference file (no "train_state"): the file to ship. PointWise Net and
                   CM: the EMA / target weights of the last checkpoint; voxel: the EMA; Shower Flow:
                   the checkpoint with the lowest validation loss
    metrics.csv    one row per checkpoint: step, loss, val_loss, elapsed_s, lr
    curve.png      the loss curves
    commands.txt   the command of every slice of the run, one line each (for a bundle's provenance)

Every checkpoint is a plain dict that loads with ``torch.load(path, weights_only=True)`` and opens
with the same header::

    {"format_version": int,           # of the kind's layout (all 1 today)
     "kind": "shower_flow" | "edm" | "cm" | "voxel-edm" | "voxel-cm",
     "config": dict,                  # plain dicts, never class instances
     "state_dict": dict,              # the inference weights
     "step": int,                     # optimiser steps done
     "loss_log": [float],             # training loss of every step
     "metrics": [dict],               # the rows of metrics.csv
     "elapsed_s": float}              # training time over all resumed slices

Files written before this layout (a flow's ``best.pt``/``last.pt``, a voxel ``.pt`` without
``step``) still load: readers need only ``format_version``, ``kind``, ``config`` and ``state_dict``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from caloclouds.errors import ConfigError, InputFileError
from caloclouds.io.atomic import atomic_path
from caloclouds.io.torchfile import load_checkpoint_dict
from caloclouds.runcontrol import write_curve_png, write_metrics_csv

__all__ = [
    "CHECKPOINT_NAME",
    "COMMANDS_NAME",
    "CONFIG_NAME",
    "CURVE_NAME",
    "KINDS",
    "METRICS_NAME",
    "METRIC_COLUMNS",
    "MODEL_NAME",
    "checkpoint_header",
    "load_training_checkpoint",
    "open_run_dir",
    "prepare_run_dir",
    "read_commands",
    "record_command",
    "resolve_run_file",
    "run_record",
    "save_run_checkpoints",
    "write_curves",
    "write_run_config",
]

CONFIG_NAME = "config.yaml"  # the resolved configuration of the run
CHECKPOINT_NAME = "checkpoint.pt"  # full training state in a run folder (for --resume)
MODEL_NAME = "model.pt"  # the slim inference checkpoint in a run folder
METRICS_NAME = "metrics.csv"  # one row per checkpoint
CURVE_NAME = "curve.png"  # the loss curves
COMMANDS_NAME = "commands.txt"  # the command of every slice of the run
KINDS = ("shower_flow", "edm", "cm", "voxel-edm", "voxel-cm")
METRIC_COLUMNS = ("step", "loss", "val_loss", "elapsed_s", "lr")


def run_record(
    *, step: int, loss_log: Sequence[float], metrics: Sequence[Mapping[str, float]], elapsed_s: float
) -> dict[str, Any]:
    """The part of the header a training run adds: ``step``, ``loss_log``, ``metrics``, ``elapsed_s``."""
    return {
        "step": int(step),
        "loss_log": [float(v) for v in loss_log],
        "metrics": [{k: float(v) for k, v in row.items()} for row in metrics],
        "elapsed_s": float(elapsed_s),
    }


def checkpoint_header(
    *,
    kind: str,
    format_version: int,
    config: Mapping[str, Any],
    state_dict: Mapping[str, Any],
    step: int,
    loss_log: Sequence[float] = (),
    metrics: Sequence[Mapping[str, float]] = (),
    elapsed_s: float = 0.0,
) -> dict[str, Any]:
    """The header every checkpoint opens with (see the module docstring); tensors copied to the CPU."""
    if kind not in KINDS:
        msg = f"unknown checkpoint kind {kind!r}; valid kinds are {KINDS}"
        raise ValueError(msg)
    return {
        "format_version": int(format_version),
        "kind": kind,
        "config": dict(config),
        "state_dict": {k: v.detach().cpu().clone() for k, v in state_dict.items()},
        **run_record(step=step, loss_log=loss_log, metrics=metrics, elapsed_s=elapsed_s),
    }


def save_run_checkpoints(
    out_dir: Path, checkpoint: Mapping[str, Any], train_state: Mapping[str, Any], *, model: bool = True
) -> None:
    """``checkpoint.pt`` (``checkpoint`` plus ``train_state``) and, if ``model``, ``model.pt``
    (``checkpoint`` alone), each atomic. ``checkpoint.pt`` is written last, so a kill between the
    two leaves a run that resumes from its previous checkpoint."""
    import torch

    if model:
        with atomic_path(out_dir / MODEL_NAME) as tmp:
            torch.save(dict(checkpoint), tmp)
    with atomic_path(out_dir / CHECKPOINT_NAME) as tmp:
        torch.save({**checkpoint, "train_state": dict(train_state)}, tmp)


def resolve_run_file(path: str | Path, names: Sequence[str] = (MODEL_NAME, CHECKPOINT_NAME)) -> Path:
    """A checkpoint file, or the first of ``names`` that a run folder holds."""
    path = Path(path)
    if path.is_dir():
        for name in names:
            if (path / name).is_file():
                return path / name
        raise InputFileError(path, f"run folder holds no {' or '.join(names)}")
    if not path.is_file():
        raise InputFileError(path, "checkpoint not found")
    return path


def prepare_run_dir(out_dir: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from (or None); refuses to overwrite a run without --resume, and
    refuses --resume when there is nothing to resume (a typo in --out must not restart at step 0)."""
    ckpt = out_dir / CHECKPOINT_NAME
    if ckpt.is_file():
        if not resume:
            raise ConfigError(f"{ckpt} exists; pass --resume to continue it or choose another --out")
        return ckpt
    if resume:
        raise ConfigError(f"{ckpt}: no checkpoint to resume; drop --resume to start a new run")
    return None


def load_training_checkpoint(path: Path, kind: str, *, map_location: Any = "cpu") -> dict[str, Any]:
    """A ``checkpoint.pt`` of ``kind`` with its ``train_state`` (an error naming the file otherwise)."""
    ck = load_checkpoint_dict(path, map_location=map_location, what="training checkpoint")
    if ck.get("kind") != kind or not isinstance(ck.get("train_state"), dict):
        raise InputFileError(path, f"not a {kind!r} training checkpoint (kind {ck.get('kind')!r}), cannot resume")
    return ck


def open_run_dir(out_dir: str | Path, kind: str, resume: bool) -> tuple[Path, dict[str, Any] | None]:
    """The run folder and, with ``resume``, its training checkpoint of ``kind`` (see :func:`prepare_run_dir`)."""
    out_dir = Path(out_dir)
    ckpt = prepare_run_dir(out_dir, resume)
    return out_dir, (load_training_checkpoint(ckpt, kind) if ckpt is not None else None)


def write_run_config(out_dir: Path, config: Mapping[str, Any]) -> None:
    """``config.yaml`` of the run (plain dicts), atomically."""
    import yaml

    with atomic_path(out_dir / CONFIG_NAME) as tmp:
        tmp.write_text(yaml.safe_dump(dict(config), sort_keys=False))


def write_curves(
    out_dir: Path,
    metrics: Sequence[Mapping[str, float]],
    title: str,
    *,
    png: bool = True,
    val_label: str = "validation loss (EMA weights, fixed noise)",
) -> None:
    """``metrics.csv`` and (if ``png``) ``curve.png`` of a run, both atomic."""
    write_metrics_csv(out_dir / METRICS_NAME, metrics, METRIC_COLUMNS)
    if png:
        series = {"loss": "training loss (mean over interval)", "val_loss": val_label}
        write_curve_png(out_dir / CURVE_NAME, metrics, title, series)


def record_command(out_dir: str | Path, command: str, step: int) -> None:
    """Add ``command`` (which took the run to ``step``) as a line of the run's ``commands.txt``, atomically."""
    import datetime

    path = Path(out_dir) / COMMANDS_NAME
    if not path.parent.is_dir():
        return  # the run wrote nothing (refused before it started)
    when = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    lines = read_commands(path.parent)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{line}\n" for line in [*lines, f"{when} to step {int(step)}: {command}"]))


def read_commands(run_dir: str | Path) -> list[str]:
    """The lines of a run folder's ``commands.txt`` (none for runs made before it existed)."""
    path = Path(run_dir) / COMMANDS_NAME
    return path.read_text().splitlines() if path.is_file() else []
