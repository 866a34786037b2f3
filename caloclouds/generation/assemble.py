"""Assemble a model bundle from training runs (``caloclouds bundle``): copy, validate, calibrate, provenance.

Kept apart from :mod:`caloclouds.generation.bundle` (loading a bundle), because assembling one
calibrates it with the generator, which itself loads bundles.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from caloclouds.config import GenerationConfig, config_from_dict
from caloclouds.errors import ConfigError, InputFileError
from caloclouds.generation.bundle import (
    PARTS,
    ModelBundle,
    default_bundle_path,
    file_sha256,
    inside_package,
    load_bundle,
    relative_path,
    write_bundle_manifest,
)

if TYPE_CHECKING:  # calibrate (torch, the generator) is imported when a reference is given
    from caloclouds.generation.calibrate import CalibrationReport

__all__ = ["assemble_bundle"]


def _run_checkpoint(run: str | Path, names: tuple[str, ...], what: str) -> Path:
    """A checkpoint file, or the first of ``names`` inside a run folder."""
    run = Path(run)
    if run.is_file():
        return run
    for name in names:
        if (run / name).is_file():
            return run / name
    raise InputFileError(run, f"not a {what} run: no {' or '.join(names)} in the folder")


def _training_commands(part: str, path: Path) -> list[str] | str | None:
    """The commands that trained a part: its run folder's ``commands.txt`` (one line per slice), or for
    a flow from before that file its recorded train-flow command; None where nothing was recorded."""
    from caloclouds.training.rundir import read_commands
    from flows.checkpoint import flow_training_command

    lines = read_commands(path.parent)
    if lines:
        return lines
    return flow_training_command(path) if part == "flow" else None


def _part_provenance(path: Path, ckpt: dict[str, Any]) -> dict[str, Any]:
    training = ckpt.get("training") or {}
    step = ckpt.get("step", training.get("step"))
    return {
        "source": relative_path(path),
        "sha256": file_sha256(path),
        "training_step": None if step is None else int(step),
        "kind": ckpt.get("kind"),
    }


def assemble_bundle(
    out: str | Path,
    *,
    flow: str | Path,
    cm: str | Path,
    teacher: str | Path | None = None,
    data_files: tuple[str | Path, ...] = (),
    reference: str | Path | None = None,
    axis_reference: str | Path | None = None,
    command: str | None = None,
    into_package: bool = False,
    overwrite: bool = False,
    seed: int = 0,
    generation: GenerationConfig | None = None,
) -> tuple[ModelBundle, CalibrationReport | None]:
    """Copy trained checkpoints into a new bundle folder, validate it, calibrate it, record provenance.

    The folder is built under a temporary name next to ``out`` and renamed when complete.

    Args:
        out: the new bundle folder.
        flow: a Shower Flow run folder (its ``best.pt``) or checkpoint.
        cm: a distillation run folder (its ``model.pt``) or checkpoint.
        teacher: optional EDM teacher run folder or checkpoint (for ``--model-part teacher``).
        data_files: training data files whose SHA-256 go into the provenance.
        reference: Geant4 showers to fit the N calibration on (none: identity calibration).
        axis_reference: angled Geant4 showers to fit the axis calibration of a direction-aware bundle
            on (:mod:`caloclouds.generation.calibrate_axis`; none: the layers' middles), after the others.
        command: the command line that made the bundle (provenance).
        into_package: allow ``out`` inside the installed package's ``models`` folder.
        overwrite: replace an existing bundle folder.
        generation: the generation settings of the bundle (default: the CM's config's); the
            calibrations are fitted with them.

    Returns:
        (the opened bundle, the calibration report or None).
    """
    import datetime
    import shutil

    import torch

    import caloclouds
    from caloclouds.io.atomic import temp_path_for

    out = Path(out)
    if inside_package(out) and not into_package:
        raise ConfigError(
            f"-o {out} is inside the installed package ({default_bundle_path().parent}); "
            "pass --into-package to replace a shipped model"
        )
    if out.exists() and not (out.is_dir() and (overwrite or not any(out.iterdir()))):
        raise ConfigError(f"-o {out} exists and is not an empty folder; pass --overwrite to replace it")
    sources = {
        "flow": _run_checkpoint(flow, ("model.pt", "best.pt", "last.pt"), "Shower Flow"),
        "cm": _run_checkpoint(cm, ("model.pt",), "consistency-model"),
    }
    if teacher is not None:
        sources["teacher"] = _run_checkpoint(teacher, ("model.pt",), "EDM teacher")
    for f in (*data_files, *([reference] if reference else []), *([axis_reference] if axis_reference else [])):
        if not Path(f).is_file():
            raise InputFileError(f, "data file not found")
    ckpts = {part: torch.load(path, map_location="cpu", weights_only=True) for part, path in sources.items()}
    expected_kind = {"flow": "shower_flow", "cm": "cm", "teacher": "edm"}
    for part, ckpt in ckpts.items():
        if not isinstance(ckpt, dict) or ckpt.get("kind") != expected_kind[part]:
            kind = ckpt.get("kind") if isinstance(ckpt, dict) else type(ckpt).__name__
            raise InputFileError(
                sources[part], f"expected a {expected_kind[part]!r} checkpoint for --{part}, got kind {kind!r}"
            )
    config = config_from_dict(ckpts["cm"]["config"])
    config = dataclasses.replace(config, flow=config_from_dict({"flow": ckpts["flow"]["config"]["flow"]}).flow)
    if generation is not None:
        config = dataclasses.replace(config, generation=generation)
    flow_layers = int(ckpts["flow"]["preprocessing"]["n_layers"])
    if flow_layers != config.detector.n_layers:
        raise InputFileError(
            sources["flow"], f"the flow has {flow_layers} layers but the CM's detector {config.detector.n_layers}"
        )
    provenance: dict[str, Any] = {
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "caloclouds_version": caloclouds.__version__,
        "torch": torch.__version__,
        "parts": {part: _part_provenance(sources[part], ckpt) for part, ckpt in ckpts.items()},
        "training_commands": {part: _training_commands(part, path) for part, path in sources.items()},
        "data_files": {relative_path(f): file_sha256(Path(f)) for f in data_files},
    }
    trained = (ckpts["flow"].get("training") or {}).get("condition_ranges")
    if trained:  # e.g. theta_deg of a direction-aware flow: what generate accepts without --allow-extrapolation
        provenance["trained_condition_ranges"] = trained
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(out)
    tmp.mkdir()
    try:
        for part, path in sources.items():
            shutil.copyfile(path, tmp / PARTS[part])
        write_bundle_manifest(tmp, config, provenance=provenance)
        bundle = load_bundle(tmp)
        bundle.flow()  # validation: every part loads with its config
        for part in ("cm", "teacher") if teacher is not None else ("cm",):
            bundle.point_model(part)
        report, depth, calibrated = None, None, bundle
        if reference is not None:
            from caloclouds.generation.calibrate import fit_calibrations
            from caloclouds.io import ShowerFile

            with ShowerFile(reference) as f:
                showers = f.read(0, min(len(f), 2000))
            report = fit_calibrations(bundle, showers, model_part="cm", device="cpu", seed=seed)
            calibrated = bundle.with_calibration(report.calibration, report.radial)
            calibrated = calibrated.with_energy_calibration(report.energy_calibration)
            provenance["calibration_reference"] = {
                "file": relative_path(reference),
                "sha256": file_sha256(Path(reference)),
                "showers": len(showers),
            }
        if axis_reference is not None:
            from caloclouds.generation.calibrate_axis import fit_axis_depth
            from caloclouds.io import ShowerFile

            with ShowerFile(axis_reference) as f:
                angled = f.read(0, min(len(f), 2000))
            depth = fit_axis_depth(calibrated, angled, seed=seed)  # with the calibrations just fitted
            provenance["axis_reference"] = {
                "file": relative_path(axis_reference),
                "sha256": file_sha256(Path(axis_reference)),
                "showers": len(angled),
            }
        if report is not None or depth is not None:
            write_bundle_manifest(
                tmp,
                config,
                calibration=calibrated.calibration,
                radial=calibrated.radial,
                energy=calibrated.energy_calibration,
                provenance=provenance,
                axis_depth_mm=depth,
            )
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return load_bundle(out), report
