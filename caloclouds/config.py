"""Typed run configuration, loaded from YAML in one place.

``load_config(path) -> RunConfig`` is the only function that reads YAML. Everything below it takes
plain arguments or one of these frozen dataclasses. Unknown keys are errors that list the valid
keys, so a typo in a YAML file is never silently ignored.

Each section belongs to one part of the package:

* ``detector``: the calorimeter the data comes from (layers, silicon positions, cell pitch).
* ``flow``: the Shower Flow (``flows/``).
* ``diffusion`` and ``distillation``: the PointWise Net, its EDM training and consistency distillation.
* ``evaluation``: cell-level validation.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caloclouds.errors import ConfigError

__all__ = [
    "DetectorConfig",
    "FlowConfig",
    "DiffusionConfig",
    "DistillationConfig",
    "EvaluationConfig",
    "RunConfig",
    "load_config",
    "config_from_dict",
    "config_to_dict",
]

# Front face (mm) of each silicon layer of the ILD-like Si-W ECAL of ../shared/data/README.md.
_ILD_SILICON_FRONT_MM = (
    2.1, 4.7, 7.3, 9.9, 12.5, 15.1, 17.7, 20.3, 22.9, 25.5,
    28.1, 30.7, 33.3, 35.9, 38.5, 41.1, 43.7, 46.3, 48.9, 51.5,
    56.2, 60.9, 65.6, 70.3, 75.0, 79.7, 84.4, 89.1, 93.8, 98.5,
)


@dataclass(frozen=True)
class DetectorConfig:
    """The sampling calorimeter the showers live in (local frame, shower axis +z, front face z = 0)."""

    name: str = "ild-like-siw"              # Free text, written to outputs.
    n_layers: int = 30                      # Number of sensitive (silicon) layers.
    silicon_front_mm: tuple[float, ...] = _ILD_SILICON_FRONT_MM  # z of each silicon layer's front face.
    silicon_thickness_mm: float = 0.5       # Thickness of each silicon layer.
    cell_pitch_mm: float = 5.088333         # Readout cell size (square cells).
    subcells_per_cell: int = 6              # Clustering grid: 6 -> 6x6 sub-cells per cell ("x36" grid).
    mip_mev: float = 0.16                   # Most probable energy of a MIP in one cell of silicon.

    @property
    def subcell_pitch_mm(self) -> float:
        """Pitch of the clustering sub-cell grid in mm."""
        return self.cell_pitch_mm / self.subcells_per_cell

    @property
    def layer_centre_z_mm(self) -> tuple[float, ...]:
        """z of the middle of each silicon layer in mm."""
        return tuple(z + self.silicon_thickness_mm / 2 for z in self.silicon_front_mm)

    def __post_init__(self) -> None:
        if len(self.silicon_front_mm) != self.n_layers:
            msg = (
                f"detector.silicon_front_mm has {len(self.silicon_front_mm)} entries "
                f"but detector.n_layers is {self.n_layers}"
            )
            raise ConfigError(msg)
        if any(b <= a for a, b in zip(self.silicon_front_mm, self.silicon_front_mm[1:])):
            raise ConfigError("detector.silicon_front_mm must increase strictly")
        for name in ("silicon_thickness_mm", "cell_pitch_mm", "mip_mev"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"detector.{name} must be > 0, got {getattr(self, name)}")
        if self.subcells_per_cell < 1:
            raise ConfigError(f"detector.subcells_per_cell must be >= 1, got {self.subcells_per_cell}")


@dataclass(frozen=True)
class FlowConfig:
    """Shower Flow architecture and training (see flows/)."""

    n_blocks: int = 2                       # Repetitions of the transform pattern.
    hidden_factor: int = 4                  # Hidden width of the conditioner nets, in units of D.
    spline_bins: int = 8                    # Bins of the conditional spline transforms.
    extra_conditions: int = 0               # Extra condition features beyond the incident energy.
    batch_size: int = 512
    learning_rate: float = 1e-3
    steps: int = 20000                      # Default number of optimiser steps.


@dataclass(frozen=True)
class DiffusionConfig:
    """PointWise Net and its EDM training (see caloclouds/diffusion/)."""

    hidden: tuple[int, ...] = (64, 128, 256, 128, 64)  # Widths of the ConcatSquash layers.
    fourier_features: int = 64              # Size of the noise-level embedding.
    sigma_data: float = 0.5                 # EDM sigma_data (features are standardised to this).
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    p_mean: float = -1.2                    # Log-normal sigma sampling for training.
    p_std: float = 1.2
    batch_size: int = 64                    # Showers per optimiser step.
    learning_rate: float = 2e-4
    steps: int = 100000
    ema_power: float = 0.6667               # EMA warm-up: decay = 1 - (1 + step)^-power, capped below.
    ema_max: float = 0.9999
    heun_steps: int = 13                    # Default number of Heun steps at sampling time.


@dataclass(frozen=True)
class DistillationConfig:
    """Consistency distillation of the EDM teacher (see caloclouds/diffusion/consistency.py)."""

    num_steps: int = 18                     # Karras discretisation levels N.
    target_ema: float = 0.95                # mu of the target network EMA.
    batch_size: int = 64
    learning_rate: float = 1e-4
    steps: int = 50000


@dataclass(frozen=True)
class EvaluationConfig:
    """Cell-level validation (see caloclouds/evaluation/)."""

    cell_threshold_mip: float = 0.5         # Cell threshold in MIPs (MIP value from detector.mip_mev).
    n_batches: int = 10                     # Disjoint batches for W1 mean +- std.
    classifier_folds: int = 5


@dataclass(frozen=True)
class RunConfig:
    """The whole configuration of a model: detector plus one section per component."""

    detector: DetectorConfig = field(default_factory=DetectorConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    distillation: DistillationConfig = field(default_factory=DistillationConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert a YAML value to the annotated field type, with a clear error."""
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}")
        return _build(annotation, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        (item_type, _) = typing.get_args(annotation)
        return tuple(_coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return None if value is None else _coerce(value, args[0], where)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if annotation in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        if annotation is int and float(value) != int(value):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return annotation(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    return value


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where or 'config'}; valid keys are {names}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Build a :class:`RunConfig` from a plain dict (as stored in checkpoints)."""
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping, got {type(data).__name__}")
    return _build(RunConfig, data, "")


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain-dict form of a config (lists instead of tuples), safe for YAML, JSON and torch.save."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(config))


def load_config(path: str | Path) -> RunConfig:
    """Read a YAML config file; missing sections and keys take their defaults."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
