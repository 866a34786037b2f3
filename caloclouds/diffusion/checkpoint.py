"""PointWise Net checkpoint files: plain dicts that load with ``torch.load(path, weights_only=True)``.

Layout: the header all trainings share (:mod:`caloclouds.training.rundir`) plus the normaliser::

    {"format_version": 1, "kind": "edm" | "cm", "config": RunConfig as a dict,
     "normaliser": PointNormaliser as a dict, "state_dict": the inference network (EDM: the EMA;
     CM: the target network), "step": int, "loss_log": [float per step],
     "metrics": [{"step", "loss", "val_loss", "elapsed_s", "lr"} per checkpoint], "elapsed_s": float,
     "train_state": {...}}   # only in training checkpoints: student, optimiser, RNG, teacher

``model.pt`` in a run folder is the same without ``train_state`` (the file to ship).
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import torch

from caloclouds.config import DiffusionConfig, RunConfig, config_from_dict, config_to_dict
from caloclouds.diffusion.consistency import ConsistencyDenoiser
from caloclouds.diffusion.edm import EDMDenoiser
from caloclouds.diffusion.pointwise import PointWiseNet
from caloclouds.diffusion.preprocessing import PointNormaliser
from caloclouds.errors import InputFileError
from caloclouds.io.atomic import atomic_path
from caloclouds.io.torchfile import load_checkpoint_dict
from caloclouds.training.rundir import CHECKPOINT_NAME, MODEL_NAME, checkpoint_header, resolve_run_file

__all__ = [
    "FORMAT_VERSION",
    "KINDS",
    "build_inner",
    "build_denoiser",
    "save_checkpoint",
    "load_checkpoint",
    "resolve_checkpoint",
    "CHECKPOINT_NAME",
    "MODEL_NAME",
]

FORMAT_VERSION = 1
KINDS = ("edm", "cm")


def build_inner(cfg: DiffusionConfig, n_layers: int) -> PointWiseNet:
    """The PointWise Net described by a diffusion config, for a detector of ``n_layers`` layers.

    A per-layer network generates (x, y, e) per point of a (shower, layer) row conditioned on the
    shower, ln(n_l), ln(E_l / n_l), the one-hot layer and (``cfg.direction``) tan θ; otherwise (x, y, depth, e) per shower.
    """
    per_layer = 2 + n_layers + int(cfg.direction) if cfg.per_layer else 0
    return PointWiseNet(
        point_features=3 if cfg.per_layer else 4,
        hidden=tuple(cfg.hidden),
        cond_features=2 + cfg.extra_conditions + per_layer,
        fourier_features=cfg.fourier_features,
        fourier_std=cfg.fourier_std,
        time_features=cfg.time_features,
    )


def build_denoiser(cfg: DiffusionConfig, kind: str, n_layers: int) -> EDMDenoiser:
    """An EDM denoiser (``kind="edm"``) or consistency model (``"cm"``) around a fresh network."""
    if kind == "edm":
        return EDMDenoiser(build_inner(cfg, n_layers), cfg.sigma_data)
    if kind == "cm":
        return ConsistencyDenoiser(build_inner(cfg, n_layers), cfg.sigma_data, sigma_min=cfg.sigma_min)
    raise ValueError(f"unknown model kind {kind!r}; valid kinds are {KINDS}")


def save_checkpoint(
    path: str | Path,
    *,
    kind: str,
    config: RunConfig,
    normaliser: PointNormaliser,
    state_dict: dict[str, torch.Tensor],
    step: int,
    loss_log: list[float],
    train_state: dict[str, Any] | None = None,
    metrics: list[dict[str, float]] | None = None,
    elapsed_s: float = 0.0,
) -> None:
    """Write a checkpoint atomically (see the module docstring for the layout)."""
    data = checkpoint_header(
        kind=kind,
        format_version=FORMAT_VERSION,
        config=config_to_dict(config),
        state_dict=state_dict,
        step=step,
        loss_log=loss_log,
        metrics=metrics or [],
        elapsed_s=elapsed_s,
    )
    data["normaliser"] = normaliser.to_dict()
    if train_state is not None:
        data["train_state"] = train_state
    with atomic_path(path) as tmp:
        torch.save(data, tmp)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run folder (its ``model.pt``, else its ``checkpoint.pt``)."""
    return resolve_run_file(path, (MODEL_NAME, CHECKPOINT_NAME))


def _known_keys(data: Any, cls: type) -> Any:
    """``data`` restricted to the fields of dataclass ``cls`` (recursively for nested sections).

    Sections owned by other parts of the package (detector, evaluation, ...) may gain or lose keys
    between versions; a checkpoint only needs its own sections to be exact.
    """
    if not isinstance(data, dict):
        return data
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            sub = hints[f.name]
            out[f.name] = _known_keys(data[f.name], sub) if dataclasses.is_dataclass(sub) else data[f.name]
    return out


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint dict (``weights_only=True``); ``config`` becomes a RunConfig."""
    path = resolve_checkpoint(path)
    data = load_checkpoint_dict(path, map_location=map_location)
    if "format_version" not in data:
        raise InputFileError(path, "not a caloclouds PointWise Net checkpoint (no format_version)")
    if data["format_version"] != FORMAT_VERSION:
        raise InputFileError(
            path, f"format_version {data['format_version']} is not supported (expected {FORMAT_VERSION})"
        )
    if data.get("kind") not in KINDS:
        raise InputFileError(path, f"unknown model kind {data.get('kind')!r}; valid kinds are {KINDS}")
    data["config"] = config_from_dict(_known_keys(data["config"], RunConfig))
    data["normaliser"] = PointNormaliser.from_dict(data["normaliser"])
    data["path"] = str(path)
    return data
