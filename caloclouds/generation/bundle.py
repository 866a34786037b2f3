"""The model bundle: one folder with everything generation needs.

::

    bundle.json   format version, config (plain dict), file names, N calibration, provenance
    flow.pt       Shower Flow checkpoint          (flows.load_shower_flow)
    cm.pt         consistency model checkpoint     (caloclouds.diffusion.load_point_model)
    teacher.pt    EDM teacher checkpoint           (optional for generation with --sampler edm)

Every ``.pt`` loads with ``torch.load(..., weights_only=True)``. :func:`load_bundle` validates the
folder and names the missing or incompatible part.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caloclouds.config import RunConfig, config_from_dict, config_to_dict
from caloclouds.errors import ConfigError, InputFileError
from caloclouds.generation.calibration import PointCountCalibration
from caloclouds.io.atomic import atomic_path

__all__ = ["BUNDLE_FORMAT_VERSION", "ModelBundle", "assemble_bundle", "default_bundle_path", "file_sha256", "load_bundle", "write_bundle_manifest"]

BUNDLE_FORMAT_VERSION = 1
MANIFEST = "bundle.json"
PARTS = {"flow": "flow.pt", "cm": "cm.pt", "teacher": "teacher.pt"}
SAMPLER_PART = {"cm": "cm", "edm": "teacher"}


def default_bundle_path() -> Path:
    """The model shipped inside the package (``caloclouds/models/default``)."""
    return Path(__file__).resolve().parents[1] / "models" / "default"


def resolve_bundle_path(spec: str | Path) -> Path:
    return default_bundle_path() if str(spec) == "default" else Path(spec)


@dataclass
class ModelBundle:
    """A validated bundle folder; networks are loaded on first use (``flow()``, ``point_model()``)."""

    path: Path
    config: RunConfig
    calibration: PointCountCalibration
    files: dict[str, str]
    manifest: dict[str, Any]
    _cache: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    def has(self, part: str) -> bool:
        return part in self.files and (self.path / self.files[part]).is_file()

    def flow(self, *, device: str = "cpu") -> Any:
        """The Shower Flow, on ``device``."""
        from flows import load_shower_flow

        return self._load("flow", device, load_shower_flow)

    def point_model(self, sampler: str, *, device: str = "cpu") -> Any:
        """The PointWise Net for ``sampler`` ("cm" or "edm"), on ``device``."""
        from caloclouds.diffusion import load_point_model

        if sampler not in SAMPLER_PART:
            raise ConfigError(f"unknown sampler {sampler!r}; valid samplers are {sorted(SAMPLER_PART)}")
        return self._load(SAMPLER_PART[sampler], device, load_point_model)

    def _load(self, part: str, device: str, loader: Any) -> Any:
        if not self.has(part):
            raise InputFileError(self.path, f"the bundle has no {part!r} model ({PARTS[part]} missing)")
        key = (part, device)
        if key not in self._cache:
            self._cache[key] = loader(self.path / self.files[part], map_location=device)
        return self._cache[key]

    def with_calibration(self, calibration: PointCountCalibration) -> ModelBundle:
        return ModelBundle(self.path, self.config, calibration, self.files, self.manifest)


def load_bundle(spec: str | Path = "default") -> ModelBundle:
    """Open and validate a bundle folder (``"default"`` is the shipped model)."""
    path = resolve_bundle_path(spec)
    if not path.is_dir():
        raise InputFileError(path, "model bundle folder not found (give a folder made by the training commands, or 'default')")
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise InputFileError(path, f"not a model bundle: {MANIFEST} is missing")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise InputFileError(manifest_path, f"not valid JSON ({exc})") from None
    version = manifest.get("format_version")
    if version != BUNDLE_FORMAT_VERSION:
        raise InputFileError(
            manifest_path, f"bundle format version {version!r}; this caloclouds reads version {BUNDLE_FORMAT_VERSION}"
        )
    try:
        config = config_from_dict(manifest.get("config", {}))
    except ConfigError as exc:
        raise InputFileError(manifest_path, f"invalid config: {exc}", where="config") from None
    files = {k: v for k, v in manifest.get("files", PARTS).items() if k in PARTS}
    for part, name in files.items():  # only files inside the bundle folder: no '../', no absolute paths
        inside = isinstance(name, str) and (path / name).resolve().parent == path.resolve() and "/" not in name.replace("\\", "/")
        if not inside:
            raise InputFileError(manifest_path, f"files.{part} = {name!r} is not a file name inside the bundle folder", where="files")
    if "flow" not in files or not (path / files["flow"]).is_file():
        raise InputFileError(path, "the bundle has no Shower Flow (flow.pt)")
    if not any((path / files[p]).is_file() for p in ("cm", "teacher") if p in files):
        raise InputFileError(path, "the bundle has neither a consistency model (cm.pt) nor a teacher (teacher.pt)")
    calibration = PointCountCalibration.from_dict(manifest.get("calibration") or {})
    return ModelBundle(path, config, calibration, files, manifest)


def write_bundle_manifest(
    path: str | Path,
    config: RunConfig,
    *,
    calibration: PointCountCalibration | None = None,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Write (atomically) the ``bundle.json`` of a bundle folder whose .pt files are already there."""
    path = Path(path)
    files = {k: v for k, v in PARTS.items() if (path / v).is_file()}
    manifest = {
        "format_version": BUNDLE_FORMAT_VERSION,
        "config": config_to_dict(config),
        "files": files,
        "calibration": (calibration or PointCountCalibration()).to_dict(),
        "provenance": provenance or {},
    }
    with atomic_path(path / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    return path / MANIFEST


# -- assembling a bundle from training runs (``caloclouds bundle``) -------------------------------


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (read in 1 MiB blocks), for provenance."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _run_checkpoint(run: str | Path, names: tuple[str, ...], what: str) -> Path:
    """A checkpoint file, or the first of ``names`` inside a run folder."""
    run = Path(run)
    if run.is_file():
        return run
    for name in names:
        if (run / name).is_file():
            return run / name
    raise InputFileError(run, f"not a {what} run: no {' or '.join(names)} in the folder")


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _part_provenance(path: Path, ckpt: dict[str, Any]) -> dict[str, Any]:
    training = ckpt.get("training") or {}
    step = ckpt.get("step", training.get("step"))
    return {"source": str(path.resolve()), "sha256": file_sha256(path), "training_step": None if step is None else int(step),
            "kind": ckpt.get("kind")}


def _flow_command(run_dir: Path) -> str | None:
    """The train-flow command of a flow run, from its ``config.json`` (data, validation, steps)."""
    config = run_dir / "config.json"
    if not config.is_file():
        return None
    meta = json.loads(config.read_text())
    val = f" --val {meta['val']}" if meta.get("val") else ""
    return f"caloclouds train-flow --data {meta.get('data')}{val} --out {run_dir} (steps {meta.get('steps')})"


def assemble_bundle(
    out: str | Path,
    *,
    flow: str | Path,
    cm: str | Path,
    teacher: str | Path | None = None,
    data_files: tuple[str | Path, ...] = (),
    reference: str | Path | None = None,
    command: str | None = None,
    into_package: bool = False,
    overwrite: bool = False,
    seed: int = 0,
) -> tuple[ModelBundle, Any]:
    """Copy trained checkpoints into a new bundle folder, validate it, calibrate it, record provenance.

    The folder is built under a temporary name next to ``out`` and renamed when complete.

    Args:
        out: the new bundle folder.
        flow: a Shower Flow run folder (its ``best.pt``) or checkpoint.
        cm: a distillation run folder (its ``model.pt``) or checkpoint.
        teacher: optional EDM teacher run folder or checkpoint (for ``--sampler edm``).
        data_files: training data files whose SHA-256 go into the provenance.
        reference: Geant4 showers to fit the N calibration on (none: identity calibration).
        command: the command line that made the bundle (provenance).
        into_package: allow ``out`` inside the installed package's ``models`` folder.
        overwrite: replace an existing bundle folder.

    Returns:
        (the opened bundle, the calibration report or None).
    """
    import datetime
    import shutil

    import torch

    import caloclouds
    from caloclouds.io.atomic import temp_path_for

    out = Path(out)
    if _inside(out, default_bundle_path().parent) and not into_package:
        raise ConfigError(f"-o {out} is inside the installed package ({default_bundle_path().parent}); "
                          "pass --into-package to replace a shipped model")
    if out.exists() and not (out.is_dir() and (overwrite or not any(out.iterdir()))):
        raise ConfigError(f"-o {out} exists and is not an empty folder; pass --overwrite to replace it")
    sources = {"flow": _run_checkpoint(flow, ("best.pt", "last.pt"), "Shower Flow"),
               "cm": _run_checkpoint(cm, ("model.pt",), "consistency-model")}
    if teacher is not None:
        sources["teacher"] = _run_checkpoint(teacher, ("model.pt",), "EDM teacher")
    for f in (*data_files, *([reference] if reference else [])):
        if not Path(f).is_file():
            raise InputFileError(f, "data file not found")
    ckpts = {part: torch.load(path, map_location="cpu", weights_only=True) for part, path in sources.items()}
    expected_kind = {"flow": "shower_flow", "cm": "cm", "teacher": "edm"}
    for part, ckpt in ckpts.items():
        if not isinstance(ckpt, dict) or ckpt.get("kind") != expected_kind[part]:
            kind = ckpt.get("kind") if isinstance(ckpt, dict) else type(ckpt).__name__
            raise InputFileError(sources[part], f"expected a {expected_kind[part]!r} checkpoint for --{part}, got kind {kind!r}")
    config = config_from_dict(ckpts["cm"]["config"])
    config = dataclasses.replace(config, flow=config_from_dict({"flow": ckpts["flow"]["config"]["flow"]}).flow)
    flow_layers = int(ckpts["flow"]["preprocessing"]["n_layers"])
    if flow_layers != config.detector.n_layers:
        raise InputFileError(sources["flow"], f"the flow has {flow_layers} layers but the CM's detector "
                                              f"{config.detector.n_layers}")
    provenance: dict[str, Any] = {
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "caloclouds_version": caloclouds.__version__,
        "torch": torch.__version__,
        "parts": {part: _part_provenance(sources[part], ckpt) for part, ckpt in ckpts.items()},
        "training_commands": {"flow": _flow_command(sources["flow"].parent)},
        "data_files": {str(Path(f).resolve()): file_sha256(Path(f)) for f in data_files},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(out)
    tmp.mkdir()
    try:
        for part, path in sources.items():
            shutil.copyfile(path, tmp / PARTS[part])
        write_bundle_manifest(tmp, config, provenance=provenance)
        bundle = load_bundle(tmp)
        bundle.flow()  # validation: every part loads with its config
        for sampler in ("cm", "edm") if teacher is not None else ("cm",):
            bundle.point_model(sampler)
        report = None
        if reference is not None:
            from caloclouds.generation.calibrate import fit_point_count_calibration
            from caloclouds.io import ShowerFile

            with ShowerFile(reference) as f:
                showers = f.read(0, min(len(f), 2000))
            report = fit_point_count_calibration(bundle, showers, sampler="cm", device="cpu", seed=seed)
            provenance["calibration_reference"] = {"file": str(Path(reference).resolve()),
                                                   "sha256": file_sha256(Path(reference)), "showers": len(showers)}
            write_bundle_manifest(tmp, config, calibration=report.calibration, provenance=provenance)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return load_bundle(out), report
