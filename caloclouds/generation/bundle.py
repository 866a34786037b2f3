"""The model bundle: one folder with everything generation needs.

::

    bundle.json   format version, config (plain dict), file names, N, radial and point-energy calibrations, provenance
    flow.pt       Shower Flow checkpoint          (flows.load_shower_flow)
    cm.pt         consistency model checkpoint     (caloclouds.diffusion.load_point_model)
    teacher.pt    EDM teacher checkpoint           (optional for generation with --model-part teacher)

Every ``.pt`` loads with ``torch.load(..., weights_only=True)``. :func:`load_bundle` validates the
folder and names the missing or incompatible part.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from caloclouds.config import RunConfig, config_from_dict, config_to_dict
from caloclouds.errors import ConfigError, InputFileError
from caloclouds.generation.calibration import PointCountCalibration, PointEnergyCalibration, RadialCalibration
from caloclouds.io.atomic import atomic_path

if TYPE_CHECKING:  # for the annotations only: the networks' modules are imported when a part is loaded
    from caloclouds.diffusion.model import PointModel
    from flows import ShowerFlow

__all__ = [
    "BUNDLE_FORMAT_VERSION",
    "ModelBundle",
    "default_bundle_path",
    "file_sha256",
    "inside_package",
    "load_bundle",
    "relative_path",
    "write_bundle_manifest",
]

BUNDLE_FORMAT_VERSION = 1
MANIFEST = "bundle.json"
PARTS = {"flow": "flow.pt", "cm": "cm.pt", "teacher": "teacher.pt"}


def default_bundle_path() -> Path:
    """The model shipped inside the package (``caloclouds/models/default``)."""
    return Path(__file__).resolve().parents[1] / "models" / "default"


def inside_package(path: str | Path) -> bool:
    """Whether ``path`` lies inside the installed package's ``models`` folder (a shipped model)."""
    try:
        Path(path).resolve().relative_to(default_bundle_path().parent.resolve())
    except ValueError:
        return False
    return True


def relative_path(path: str | Path) -> str:
    """``path`` relative to the working folder (e.g. ``../shared/data/x.h5``), as provenance records
    it: no machine's absolute paths."""
    import os

    return os.path.relpath(Path(path).resolve(), Path.cwd().resolve())


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
    radial: RadialCalibration = field(default_factory=RadialCalibration)
    _cache: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    @property
    def direction_aware(self) -> bool:
        """True when the model is conditioned on the direction of incidence (theta_deg, phi_deg)."""
        return bool(self.config.diffusion.direction) and "theta_deg" in tuple(self.config.flow.condition_names)

    @property
    def theta_range_deg(self) -> tuple[float, float]:
        """The polar angles (degrees) the model was trained on: (0, 0) for a normal-incidence model;
        where it comes from: :attr:`theta_range_source`."""
        if not self.direction_aware:
            return (0.0, 0.0)
        lo, hi = self._recorded_theta_range() or ANGLED_FILES_THETA_RANGE_DEG
        return (float(lo), float(hi))

    @property
    def theta_range_source(self) -> str:
        """Where :attr:`theta_range_deg` comes from, in words (the export's metadata says it)."""
        if not self.direction_aware:
            return "normal incidence only (the model has no direction conditioning)"
        if self._recorded_theta_range():
            return "the flow's training record (bundle.json provenance: trained_condition_ranges)"
        return (
            "not recorded in the bundle: the theta range of the angled Geant4 training files "
            "(g4_photons_angled_*.h5, theta uniform in 0-40 deg) with the normal-incidence files (theta = 0)"
        )

    def _recorded_theta_range(self) -> tuple[float, float] | None:
        ranges = (self.manifest.get("provenance") or {}).get("trained_condition_ranges") or {}
        recorded = ranges.get("theta_deg")
        if recorded is None:
            return None
        lo, hi = (float(v) for v in recorded)
        if not 0.0 <= lo <= hi < 90.0:
            msg = f"trained_condition_ranges.theta_deg {recorded} is not a range within [0, 90) degrees"
            raise InputFileError(self.path / MANIFEST, msg, where="provenance")
        return lo, hi

    @property
    def axis_depth_mm(self) -> tuple[float, ...]:
        """The depth (mm) at which each layer meets the inclined axis when points go back to the
        detector frame: the axis calibration (:mod:`caloclouds.generation.calibrate_axis`) where the
        bundle has one, else the middle of each silicon layer."""
        fitted = self.manifest.get("axis_depth_mm")
        return tuple(float(v) for v in fitted) if fitted else tuple(self.config.detector.layer_centre_z_mm)

    def with_axis_depth(self, depth_mm: tuple[float, ...]) -> ModelBundle:
        """The same bundle with another axis calibration (the networks are shared)."""
        manifest = {**self.manifest, "axis_depth_mm": [float(v) for v in depth_mm]}
        return ModelBundle(self.path, self.config, self.calibration, self.files, manifest, self.radial, self._cache)

    @property
    def energy_calibration(self) -> PointEnergyCalibration:
        """The point-energy calibration (:mod:`caloclouds.generation.calibration.energy`); the identity
        for a bundle without one (checked when the bundle is loaded)."""
        return PointEnergyCalibration.from_dict(self.manifest.get("energy_calibration"))

    def with_energy_calibration(self, energy: PointEnergyCalibration) -> ModelBundle:
        """The same bundle with another point-energy calibration (the networks are shared)."""
        manifest = {k: v for k, v in self.manifest.items() if k != "energy_calibration"}
        if not energy.is_identity:
            manifest["energy_calibration"] = energy.to_dict()
        return ModelBundle(self.path, self.config, self.calibration, self.files, manifest, self.radial, self._cache)

    def has(self, part: str) -> bool:
        return part in self.files and (self.path / self.files[part]).is_file()

    def flow(self, *, device: str = "cpu") -> ShowerFlow:
        """The Shower Flow, on ``device``."""
        from flows import load_shower_flow

        return self._load("flow", device, load_shower_flow)

    def point_model(self, model_part: str, *, device: str = "cpu") -> PointModel:
        """The PointWise Net of a model part (``"cm"`` or ``"teacher"``), on ``device``; ``"edm"``, the
        teacher's deprecated name, goes through :func:`caloclouds.diffusion.sampling.deprecated_sampler`."""
        from caloclouds.diffusion import load_point_model
        from caloclouds.diffusion.sampling import MODEL_PARTS, deprecated_sampler

        if model_part not in MODEL_PARTS:
            model_part = deprecated_sampler(model_part)
        return self._load(model_part, device, load_point_model)

    def _load(self, part: str, device: str, loader: Callable[..., Any]) -> Any:
        if not self.has(part):
            raise InputFileError(self.path, f"the bundle has no {part!r} model ({PARTS[part]} missing)")
        key = (part, device)
        if key not in self._cache:
            self._cache[key] = loader(self.path / self.files[part], map_location=device)
        return self._cache[key]

    def with_calibration(
        self, calibration: PointCountCalibration, radial: RadialCalibration | None = None
    ) -> ModelBundle:
        """The same bundle with another N calibration (and radial calibration, if given); the networks are shared."""
        return ModelBundle(
            self.path,
            self.config,
            calibration,
            self.files,
            self.manifest,
            self.radial if radial is None else radial,
            self._cache,
        )


# θ of the angled Geant4 training files (../shared/data/README.md, section 4: θ uniform in 0-40°), for a
# direction-aware bundle whose flow did not record its training range
ANGLED_FILES_THETA_RANGE_DEG = (0.0, 40.0)


def load_bundle(spec: str | Path = "default") -> ModelBundle:
    """Open and validate a bundle folder (``"default"`` is the shipped model)."""
    path = resolve_bundle_path(spec)
    if not path.is_dir():
        raise InputFileError(
            path, "model bundle folder not found (give a folder made by the training commands, or 'default')"
        )
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
        inside = (
            isinstance(name, str)
            and (path / name).resolve().parent == path.resolve()
            and "/" not in name.replace("\\", "/")
        )
        if not inside:
            raise InputFileError(
                manifest_path, f"files.{part} = {name!r} is not a file name inside the bundle folder", where="files"
            )
    if "flow" not in files or not (path / files["flow"]).is_file():
        raise InputFileError(path, "the bundle has no Shower Flow (flow.pt)")
    if not any((path / files[p]).is_file() for p in ("cm", "teacher") if p in files):
        raise InputFileError(path, "the bundle has neither a consistency model (cm.pt) nor a teacher (teacher.pt)")

    def checked(parse: Callable[[Any], Any], key: str, what: str) -> Any:
        try:
            return parse(manifest.get(key))
        except (TypeError, ValueError, AttributeError) as exc:
            raise InputFileError(
                manifest_path, f"invalid {what}: {exc} (refit it with caloclouds calibrate)", where=key
            ) from None

    calibration = checked(lambda v: PointCountCalibration.from_dict(v or {}), "calibration", "N calibration")
    radial = checked(RadialCalibration.from_dict, "radial_calibration", "radial calibration")
    checked(PointEnergyCalibration.from_dict, "energy_calibration", "point-energy calibration")
    return ModelBundle(path, config, calibration, files, manifest, radial)


def write_bundle_manifest(
    path: str | Path,
    config: RunConfig,
    *,
    calibration: PointCountCalibration | None = None,
    radial: RadialCalibration | None = None,
    provenance: dict[str, Any] | None = None,
    axis_depth_mm: tuple[float, ...] | None = None,
    energy: PointEnergyCalibration | None = None,
) -> Path:
    """Write (atomically) the ``bundle.json`` of a bundle folder whose .pt files are already there
    (``axis_depth_mm``: the axis calibration of a direction-aware bundle, and ``energy``: the
    point-energy calibration, each written only when given)."""
    path = Path(path)
    files = {k: v for k, v in PARTS.items() if (path / v).is_file()}
    manifest = {
        "format_version": BUNDLE_FORMAT_VERSION,
        "config": config_to_dict(config),
        "files": files,
        "calibration": (calibration or PointCountCalibration()).to_dict(),
        "radial_calibration": (radial or RadialCalibration()).to_dict(),
        "provenance": provenance or {},
    }
    if axis_depth_mm is not None:
        manifest["axis_depth_mm"] = [float(v) for v in axis_depth_mm]
    if energy is not None and not energy.is_identity:
        manifest["energy_calibration"] = energy.to_dict()
    with atomic_path(path / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    return path / MANIFEST


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (read in 1 MiB blocks), for provenance."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
