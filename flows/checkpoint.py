"""Shower Flow checkpoints: plain dicts that load with ``torch.load(path, weights_only=True)``.

Layout (``format_version`` 1): the header all trainings share (:mod:`caloclouds.training.rundir`)
plus the flow's own fields::

    {"format_version": 1, "kind": "shower_flow",
     "config": {"detector": {...}, "flow": {...}},     # plain dicts (config_to_dict)
     "state_dict": {...},                               # flow weights and permutation buffers
     "step": int, "loss_log": [...], "metrics": [...], "elapsed_s": float,
     "preprocessing": {...},                            # FeaturePreprocessing.to_state()
     "training": {...}}                                 # step and validation loss of these weights,
                                                        # data files, profile calibration
    # checkpoint.pt adds "train_state": optimiser, random stream, best validation loss so far

A run folder holds ``model.pt`` (the lowest validation loss: the file to ship), ``checkpoint.pt``
(the last step, everything needed to resume), ``config.yaml``, ``metrics.csv`` and ``curve.png``.
Run folders of earlier versions hold ``best.pt`` and ``last.pt`` instead; both still load.
:func:`load_shower_flow` takes a checkpoint file or a run folder.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from caloclouds.config import DetectorConfig, config_from_dict, config_to_dict
from caloclouds.errors import InputFileError
from caloclouds.io.atomic import atomic_path
from caloclouds.io.torchfile import load_checkpoint_dict
from caloclouds.training.rundir import CHECKPOINT_NAME, MODEL_NAME, checkpoint_header, resolve_run_file
from flows.preprocessing import FeaturePreprocessing
from flows.sampling import ShowerFlow

__all__ = [
    "FORMAT_VERSION",
    "KIND",
    "BEST_NAME",
    "LAST_NAME",
    "RUN_FILE_NAMES",
    "default_flow_path",
    "flow_checkpoint",
    "save_checkpoint",
    "read_checkpoint",
    "flow_from_checkpoint",
    "load_shower_flow",
    "flow_detector_config",
    "resolve_flow_file",
    "flow_training_command",
]

FORMAT_VERSION = 1
KIND = "shower_flow"
BEST_NAME = "best.pt"  # the best checkpoint in run folders of earlier versions (now model.pt)
LAST_NAME = "last.pt"  # the resumable checkpoint in run folders of earlier versions (now checkpoint.pt)
RUN_FILE_NAMES = (MODEL_NAME, BEST_NAME, CHECKPOINT_NAME)  # what a run folder's flow is, first found


def default_flow_path() -> Path:
    """The flow checkpoint bundled with the package (``caloclouds/models/default/flow.pt``)."""
    import caloclouds

    return Path(caloclouds.__file__).resolve().parent / "models" / "default" / "flow.pt"


def flow_checkpoint(
    flow: ShowerFlow,
    *,
    detector: DetectorConfig,
    training: dict[str, Any] | None = None,
    run: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The checkpoint dict of a flow (tensors copied to the CPU).

    ``run``: the header's ``step``, ``loss_log``, ``metrics`` and ``elapsed_s`` (default: step 0, empty).
    """
    header = checkpoint_header(
        kind=KIND,
        format_version=FORMAT_VERSION,
        config={"detector": config_to_dict(detector), "flow": config_to_dict(flow.config)},
        state_dict=flow.model.state_dict(),
        **(run or {"step": 0}),
    )
    return {**header, "preprocessing": flow.preprocessing.to_state(), "training": dict(training or {})}


def save_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> None:
    """Write a checkpoint atomically (a kill never leaves a half-written file)."""
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def read_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a Shower Flow checkpoint dict (``weights_only=True``)."""
    path = Path(path)
    if path.is_dir():
        path = resolve_run_file(path, RUN_FILE_NAMES)
    ckpt = load_checkpoint_dict(path, map_location=map_location, what="Shower Flow checkpoint")
    if ckpt.get("kind") != KIND:
        raise InputFileError(path, "not a Shower Flow checkpoint (missing kind 'shower_flow')")
    if ckpt.get("format_version") != FORMAT_VERSION:
        raise InputFileError(path, f"format_version {ckpt.get('format_version')!r}, this code reads {FORMAT_VERSION}")
    return ckpt


def resolve_flow_file(path: str | Path) -> Path:
    """The flow file to ship from a run: a file as is; in a run folder its ``model.pt`` (the lowest
    validation loss), in a run folder of an earlier version its ``best.pt`` (else ``last.pt``)."""
    return resolve_run_file(path, (MODEL_NAME, BEST_NAME, LAST_NAME))


def flow_training_command(path: str | Path) -> str | None:
    """The train-flow command that made a flow file (for a bundle's provenance), or None.

    Read from the checkpoint's ``training`` record (``data``, ``val``, ``steps``), or for a run of an
    earlier version from the ``config.json`` next to its ``best.pt``.
    """
    import json

    path = resolve_flow_file(path)
    record = load_checkpoint_dict(path, what="Shower Flow checkpoint").get("training") or {}
    legacy = path.parent / "config.json"
    if "data" not in record or "steps" not in record:
        if not legacy.is_file():
            return None
        record = json.loads(legacy.read_text())
    val = f" --val {record['val']}" if record.get("val") else ""
    return f"caloclouds train-flow --data {record.get('data')}{val} --out {path.parent} (steps {record.get('steps')})"


def flow_from_checkpoint(ckpt: dict[str, Any]) -> ShowerFlow:
    """Rebuild a :class:`ShowerFlow` from a checkpoint dict (no seed involved)."""
    config = config_from_dict({"flow": ckpt["config"]["flow"]}).flow
    flow = ShowerFlow(FeaturePreprocessing.from_state(ckpt["preprocessing"]), config)
    flow.model.load_state_dict(ckpt["state_dict"])
    return flow.eval()


def load_shower_flow(path: str | Path, *, map_location: str | torch.device = "cpu") -> ShowerFlow:
    """Load a trained Shower Flow.

    Args:
        path: a checkpoint file, or a training run folder (its ``model.pt``, the lowest validation
            loss; ``best.pt`` in run folders of earlier versions).
        map_location: device to put the flow on.

    Returns:
        The :class:`ShowerFlow` in eval mode on ``map_location``.
    """
    ckpt = read_checkpoint(path, map_location="cpu")
    try:
        flow = flow_from_checkpoint(ckpt)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise InputFileError(path, f"inconsistent Shower Flow checkpoint: {exc}") from None
    return flow.to(map_location)


def flow_detector_config(ckpt: dict[str, Any]) -> DetectorConfig:
    """The detector the flow was trained for.

    Keys that ``DetectorConfig`` no longer has are dropped: the flow needs only the layer count,
    and a checkpoint must stay loadable when the detector section of the config evolves.
    """
    known = {f.name for f in dataclasses.fields(DetectorConfig)}
    stored = {k: v for k, v in ckpt["config"]["detector"].items() if k in known}
    return config_from_dict({"detector": stored}).detector
