"""Typed run configuration, loaded from YAML in one place.

``load_config(path) -> RunConfig`` is the only function that reads YAML. Everything below it takes
plain arguments or one of these frozen dataclasses. Unknown keys are errors that list the valid
keys, so a typo in a YAML file is never silently ignored.

Each section belongs to one part of the package:

* ``detector``: the calorimeter the data comes from (layers, silicon positions, cell pitch, MIP and
  cell threshold). It is passed explicitly to generation, projection and evaluation;
  :data:`ILD_LIKE_DETECTOR` (the defaults, the detector of ``../shared/data``) is the one named
  default of the public projection and evaluation functions.
* ``flow``: the Shower Flow (``flows/``).
* ``diffusion`` and ``distillation``: the PointWise Net, its EDM training and consistency distillation.
  The EDM training keys (:class:`TrainingConfig`) are the voxel model's too (``caloclouds.voxel.config``).
* ``evaluation``: cell-level validation.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from caloclouds.errors import ConfigError

__all__ = [
    "DetectorConfig",
    "ILD_LIKE_DETECTOR",
    "DEFAULT_EVALUATION",
    "LEGACY_KEYS",
    "FlowConfig",
    "TrainingConfig",
    "DiffusionConfig",
    "DistillationConfig",
    "EvaluationConfig",
    "GenerationConfig",
    "COG_MODES",
    "RunConfig",
    "load_config",
    "load_yaml_config",
    "read_yaml",
    "config_from_dict",
    "config_to_dict",
    "section_from_dict",
    "upgrade_legacy_keys",
    "warn_legacy_keys",
]

# Front face (mm) of each silicon layer of the ILD-like Si-W ECAL of ../shared/data/README.md.
_ILD_SILICON_FRONT_MM = (
    2.1,
    4.7,
    7.3,
    9.9,
    12.5,
    15.1,
    17.7,
    20.3,
    22.9,
    25.5,
    28.1,
    30.7,
    33.3,
    35.9,
    38.5,
    41.1,
    43.7,
    46.3,
    48.9,
    51.5,
    56.2,
    60.9,
    65.6,
    70.3,
    75.0,
    79.7,
    84.4,
    89.1,
    93.8,
    98.5,
)


@dataclass(frozen=True)
class DetectorConfig:
    """The sampling calorimeter the showers live in (local frame, shower axis +z, front face z = 0).

    ``mip_mev`` is the most probable value (MPV) of the energy of a cell crossed by one particle,
    measured on Geant4 with ``caloclouds evaluate --reference g4_photons_train.h5 --measure-mip``:
    the cells of the first three layers (single, near-normal tracks of the first e+e- pair) of the
    6000 training showers, projected on the ILD 5.088 mm grid without threshold, fitted with a
    Moyal (Landau) peak plus a linear continuum (``caloclouds/evaluation/mip.py``). Result:
    0.147 MeV (0.146-0.148 MeV over fit windows). The peak of all cells, inclined and
    overlapping tracks included, is at 0.167 MeV. ``cell_threshold_mip`` is the cell threshold
    of generation (``--cells``), projection and evaluation. Old configs gave both in the
    ``evaluation`` section; they are still read there (:data:`LEGACY_KEYS`).
    """

    name: str = "ild-like-siw"  # Free text, written to outputs.
    n_layers: int = 30  # Number of sensitive (silicon) layers.
    silicon_front_mm: tuple[float, ...] = _ILD_SILICON_FRONT_MM  # z of each silicon layer's front face.
    silicon_thickness_mm: float = 0.5  # Thickness of each silicon layer.
    cell_pitch_mm: float = 5.088333  # Readout cell size (square cells).
    subcells_per_cell: int = 6  # Clustering grid: 6 -> 6x6 sub-cells per cell ("x36" grid).
    mip_mev: float = 0.147  # Measured MIP MPV of one cell in MeV (see below).
    cell_threshold_mip: float = 0.5  # Cell threshold in MIPs: cells below 0.5 x mip_mev are dropped.
    half_width_mm: float = 200.0  # Transverse half size (|x|, |y|) of the calorimeter: generated points stay inside.

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
        for name in ("silicon_thickness_mm", "cell_pitch_mm", "half_width_mm"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"detector.{name} must be > 0, got {getattr(self, name)}")
        if self.subcells_per_cell < 1:
            raise ConfigError(f"detector.subcells_per_cell must be >= 1, got {self.subcells_per_cell}")
        if not self.mip_mev > 0:
            raise ConfigError(f"detector.mip_mev must be > 0, got {self.mip_mev}")
        if not self.cell_threshold_mip >= 0:
            raise ConfigError(f"detector.cell_threshold_mip must be >= 0, got {self.cell_threshold_mip}")

    @property
    def threshold_mev(self) -> float:
        """Cell threshold in MeV (``cell_threshold_mip`` x ``mip_mev``)."""
        return self.cell_threshold_mip * self.mip_mev


@dataclass(frozen=True)
class FlowConfig:
    """Shower Flow architecture and training (see flows/).

    Each of the ``n_blocks`` blocks is ``couplings_per_block`` x (affine coupling, permutation),
    then one conditional element-wise spline and a permutation.
    """

    n_blocks: int = 1  # Repetitions of the transform pattern.
    couplings_per_block: int = 4  # Affine coupling + permutation pairs per block.
    coupling_hidden: tuple[int, ...] = (128, 128)  # Hidden widths of each coupling's conditioner net.
    spline_hidden: tuple[int, ...] = (32, 32)  # Hidden widths of each spline's net (input: condition only).
    spline_bins: int = 8  # Bins of the conditional spline transforms.
    spline_bound: float = 4.0  # Splines act on [-bound, bound] (standardised units), identity outside.
    permutation_seed: int = 0  # Seed of the random permutations (stored as buffers, not re-drawn).
    condition_names: tuple[str, ...] = ()  # Extra per-shower condition datasets of the file (e.g. angles), after E_inc.
    batch_size: int = 512  # Showers per optimiser step.
    learning_rate: float = 1e-3  # Peak Adam learning rate.
    final_lr_factor: float = 0.01  # Cosine decay to learning_rate * final_lr_factor at the last step.
    weight_decay: float = 0.0  # Adam (L2) weight decay.
    grad_clip: float = 10.0  # Max global gradient norm, 0 = no clipping.
    steps: int = 4000  # Default number of optimiser steps.
    eval_every: int = 250  # Steps between validation losses, log rows and checkpoints.
    rotate_cog: bool = True  # Augment: rotate the CoG by a random angle about the shower axis.
    target_noise: float = 0.1  # Gaussian noise (standardised units) added to the training targets:
    # regularises a small training set and the sum-to-one layer fractions.
    chunk_showers: int = 1000  # Showers read at a time when computing the features of a file.
    range_margin: float = 1.0  # Samples are clamped to the training range widened by this many std.
    calibrate_profile: bool = True  # After training, scale each layer's fractions so the mean profile
    # of best.pt matches the training set (flows/calibration.py).
    calibration_samples: int = 4  # Flow samples per training shower for that calibration.

    def __post_init__(self) -> None:
        for name in (
            "n_blocks",
            "couplings_per_block",
            "spline_bins",
            "batch_size",
            "steps",
            "eval_every",
            "chunk_showers",
            "calibration_samples",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"flow.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("coupling_hidden", "spline_hidden"):
            if not getattr(self, name) or min(getattr(self, name)) < 1:
                raise ConfigError(f"flow.{name} must be a non-empty list of widths >= 1, got {getattr(self, name)}")
        for name in ("spline_bound", "learning_rate", "final_lr_factor"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"flow.{name} must be > 0, got {getattr(self, name)}")
        for name in ("weight_decay", "grad_clip", "range_margin", "target_noise"):
            if getattr(self, name) < 0:
                raise ConfigError(f"flow.{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class TrainingConfig:
    """The EDM training and sampling settings shared by the point-cloud and the voxel diffusion models.

    The base of :class:`DiffusionConfig` (section ``diffusion``) and
    :class:`caloclouds.voxel.config.VoxelConfig` (section ``voxel``): in YAML these keys stand in the
    model's section beside its own keys, and each model sets its own defaults (the ones below are the
    point-cloud model's). ``section`` names the section in error messages.
    """

    section: ClassVar[str] = "training"

    sigma_data: float = 0.5  # EDM sigma_data (features are standardised to this).
    sigma_min: float = 0.002  # Smallest noise level of the Karras schedule.
    sigma_max: float = 10.0  # Largest noise level (start of sampling); EDM paper: 80.
    rho: float = 3.0  # Karras schedule exponent; EDM paper: 7 (less accurate here at 13 steps).
    p_mean: float = -1.2  # Log-normal sigma sampling for training: mean of ln(sigma).
    p_std: float = 1.2  # ... and its std.
    batch_size: int = 32  # Showers per optimiser step (all ranks together).
    learning_rate: float = 1e-3  # Adam learning rate.
    grad_clip: float = 10.0  # Max gradient norm (0 = no clipping).
    steps: int = 100000  # Default number of optimiser steps.
    ema_power: float = 0.6667  # EMA warm-up: decay = 1 - (1 + step)^-power, capped below.
    ema_max: float = 0.9999  # Cap of the EMA decay.
    heun_steps: int = 13  # Default number of Heun steps at sampling time.
    checkpoint_every: int = 500  # Steps between validation losses, log rows and checkpoints.
    val_showers: int = 32  # Showers of the validation loss (diffusion: of the --val file; voxel: held out).

    def __post_init__(self) -> None:
        _check_optimiser(self.section, self)
        if self.heun_steps < 1:
            raise ConfigError(f"{self.section}.heun_steps must be >= 1, got {self.heun_steps}")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ConfigError(f"{self.section} needs 0 < sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}")
        for name in ("sigma_data", "p_std", "rho"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{self.section}.{name} must be > 0, got {getattr(self, name)}")
        if self.val_showers < 0:
            raise ConfigError(f"{self.section}.val_showers must be >= 0, got {self.val_showers}")


@dataclass(frozen=True)
class DiffusionConfig(TrainingConfig):
    """PointWise Net and its EDM training (see caloclouds/diffusion/); the training keys are
    :class:`TrainingConfig`'s."""

    section: ClassVar[str] = "diffusion"

    hidden: tuple[int, ...] = (32, 64, 128, 64, 32)  # Widths of the hidden ConcatSquash layers (CC3 size).
    fourier_features: int = 64  # Size of the Fourier embedding of c_noise = ln(sigma)/4.
    fourier_std: float = 16.0  # Std of the (frozen, random) Fourier frequencies.
    time_features: int = 64  # Width of the Linear after the Fourier embedding.
    extra_conditions: int = 0  # Per-shower condition features beyond (energy, n points).
    noise_groups: int = 8  # Noise levels per shower in training (points split at random).
    lr_decay_steps: int = 0  # Cosine decay of the LR over the last this many steps (0 = constant).
    final_lr_factor: float = 0.01  # ... down to learning_rate * final_lr_factor at the last step.
    rotate: bool = True  # Augment by a random rotation about the shower axis.
    xy_jitter: bool = True  # Jitter x, y uniformly inside the clustering sub-cell.
    # Per-layer conditioning: each (shower, layer) is one row of the network, conditioned on the
    # layer and its point count and energy (from the Shower Flow at generation time); the network
    # generates (x, y, e) per point, so depth comes exactly from the flow (no depth-rank assignment).
    per_layer: bool = False
    points_per_shower: int = 0  # Training: keep a random subset of about this many points per shower (0 = all).
    # Direction of incidence (per-layer models): points in the frame of the inclined axis, each row
    # also conditioned on tan(theta) (caloclouds/direction.py); angled training files need it.
    direction: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_lr_decay(self.section, self)
        for name in ("fourier_features", "time_features", "noise_groups", "val_showers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"diffusion.{name} must be >= 1, got {getattr(self, name)}")
        if not self.hidden or min(self.hidden) < 1:
            raise ConfigError(f"diffusion.hidden must be a non-empty list of widths >= 1, got {self.hidden}")
        if self.points_per_shower < 0 or self.extra_conditions < 0:
            raise ConfigError("diffusion.points_per_shower and diffusion.extra_conditions must be >= 0")
        if self.direction and not self.per_layer:
            raise ConfigError("diffusion.direction needs diffusion.per_layer: true")


@dataclass(frozen=True)
class DistillationConfig:
    """Consistency distillation of the EDM teacher (see caloclouds/diffusion/consistency.py)."""

    num_steps: int = 18  # Karras discretisation levels N of the teacher's Heun steps.
    target_ema: float = 0.95  # mu of the target network EMA (constant).
    batch_size: int = 32  # Showers per optimiser step (all ranks together).
    learning_rate: float = 1e-4  # Adam learning rate.
    lr_decay_steps: int = 0  # Cosine decay of the LR over the last this many steps (0 = constant).
    final_lr_factor: float = 0.01  # ... down to learning_rate * final_lr_factor at the last step.
    grad_clip: float = 10.0  # Max gradient norm (0 = no clipping).
    steps: int = 50000  # Default number of optimiser steps.
    init_from_teacher: bool = True  # Student and target start from the teacher's EMA weights.
    sample_steps: int = 1  # Default CM sampling steps (1 = one-step).
    checkpoint_every: int = 500  # Steps between checkpoints.

    def __post_init__(self) -> None:
        _check_optimiser("distillation", self)
        _check_lr_decay("distillation", self)
        if self.num_steps < 2 or self.sample_steps < 1:
            raise ConfigError(
                f"distillation needs num_steps >= 2 and sample_steps >= 1, got {self.num_steps}, {self.sample_steps}"
            )
        if not 0 <= self.target_ema < 1:
            raise ConfigError(f"distillation.target_ema must be in [0, 1), got {self.target_ema}")


def _check_optimiser(section: str, cfg: Any) -> None:
    """The optimiser settings of every training section (diffusion, distillation, voxel)."""
    for name in ("batch_size", "steps", "checkpoint_every"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{section}.{name} must be >= 1, got {getattr(cfg, name)}")
    if not cfg.learning_rate > 0:  # also refuses NaN
        raise ConfigError(f"{section}.learning_rate (--lr for the learning rate) must be > 0, got {cfg.learning_rate}")
    if not cfg.grad_clip >= 0:
        raise ConfigError(f"{section}.grad_clip must be >= 0, got {cfg.grad_clip}")


def _check_lr_decay(section: str, cfg: Any) -> None:
    """The cosine learning-rate decay of the diffusion and distillation sections."""
    if not cfg.final_lr_factor > 0:
        raise ConfigError(f"{section}.final_lr_factor must be > 0, got {cfg.final_lr_factor}")
    if cfg.lr_decay_steps < 0:
        raise ConfigError(f"{section}.lr_decay_steps must be >= 0, got {cfg.lr_decay_steps}")


@dataclass(frozen=True)
class EvaluationConfig:
    """Cell-level validation (see caloclouds/evaluation/).

    The MIP and the cell threshold are the detector's (:class:`DetectorConfig`).
    """

    geometry: str = "ild"  # Cells of the observables: a projection.get_geometry spec.
    radial_axis: str = "nominal"  # Radii about "nominal" (x = y = 0) or "cog" (each shower's x, y CoG).
    n_longitudinal_bins: int = 10  # Layer bins with reference hit-count decile edges.
    n_radial_bins: int = 10  # Radius bins with reference hit-count decile edges.
    n_batches: int = 10  # Disjoint shower batches for W1 mean +- std.
    classifier_folds: int = 10  # k of the k-fold classifier test (>= 3).
    classifier_hidden: tuple[int, ...] = (32, 16)  # Hidden widths of the classifier MLP.
    classifier_epochs: int = 30  # Epochs per fold; the best validation epoch is kept.
    classifier_batch_size: int = 256  # Showers per classifier step.
    classifier_learning_rate: float = 1e-3  # Adam learning rate of the classifier.
    fpd_min_samples: int = 20000  # Smallest FPD bootstrap size (clipped to the sample size).
    fpd_max_samples: int = 50000  # Largest FPD bootstrap size (clipped to the sample size).
    kpd_batch_size: int = 5000  # Showers per KPD batch (clipped to half the sample size).
    kpd_batches: int = 10  # KPD batches (median and 68 % half-width reported).
    kpd_degree: int = 4  # Degree of the KPD polynomial kernel (3 or 4).
    seed: int = 42  # Seed of the splits, batches, bootstraps and classifier.
    voxel_mesh: str = ""  # Also score FPD/KPD of CaloChallenge features on this mesh ("ds2"); "" = off.

    def __post_init__(self) -> None:
        positive = (
            "n_longitudinal_bins",
            "n_radial_bins",
            "n_batches",
            "classifier_epochs",
            "classifier_batch_size",
            "classifier_learning_rate",
            "fpd_min_samples",
            "fpd_max_samples",
            "kpd_batch_size",
            "kpd_batches",
            "kpd_degree",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"evaluation.{name} must be > 0, got {getattr(self, name)}")
        if self.radial_axis not in ("nominal", "cog"):
            raise ConfigError(f"evaluation.radial_axis must be 'nominal' or 'cog', got {self.radial_axis!r}")
        if self.classifier_folds < 3:
            raise ConfigError(f"evaluation.classifier_folds must be >= 3, got {self.classifier_folds}")
        if self.fpd_min_samples > self.fpd_max_samples:
            raise ConfigError(
                f"evaluation.fpd_min_samples ({self.fpd_min_samples}) must be <= "
                f"evaluation.fpd_max_samples ({self.fpd_max_samples})"
            )


#: Ways to fix the transverse position of generated showers (``caloclouds.generation.calibration``).
COG_MODES = ("rotate", "flow", "none")


@dataclass(frozen=True)
class GenerationConfig:
    """Generation-time calibration of the point clouds (``caloclouds.generation``), fitted on training data.

    The core sharing spreads the energy of points near the shower axis, where the clustered Geant4
    points sit one per 0.848 mm sub-cell around the four cells that meet at the axis, over four
    copies (see ``caloclouds.generation.calibration.share_core_energy``).
    """

    cog: str = "rotate"  # Transverse position: "rotate", "flow" or "none" (generate --cog).
    core_radius_mm: float = 0.0  # Points closer than this to the axis are shared; 0 = off.
    core_spread_mm: float = 0.0  # Copies at x +- s, y +- s, each with a quarter of the energy.

    def __post_init__(self) -> None:
        if self.cog not in COG_MODES:
            raise ConfigError(f"generation.cog must be one of {COG_MODES}, got {self.cog!r}")
        for name in ("core_radius_mm", "core_spread_mm"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ConfigError(f"generation.{name} must be a finite number >= 0, got {value}")


@dataclass(frozen=True)
class RunConfig:
    """The whole configuration of a model: detector plus one section per component."""

    detector: DetectorConfig = field(default_factory=DetectorConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    distillation: DistillationConfig = field(default_factory=DistillationConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert a YAML value to the annotated field type, with a clear error."""
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}")
        return section_from_dict(annotation, value, where)
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


def section_from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    """The dataclass ``cls`` from the plain dict ``data`` (section ``where`` of a config).

    Each value is checked and converted to the field's type; an unknown key is an error that lists
    the valid keys. The run config and the voxel config (``caloclouds.voxel.config``) are read so.
    """
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where or 'config'}; valid keys are {names}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


ILD_LIKE_DETECTOR = DetectorConfig()  # The ILD-like Si-W ECAL of ../shared/data (configs/ild_photons.yaml).
DEFAULT_EVALUATION = EvaluationConfig()  # The evaluation settings when none are given.

#: A table of renamed or moved config keys: (old section, old key) -> (new section, new key).
LegacyKeys = dict[tuple[str, str], tuple[str, str]]

#: Keys of older run configs, read at their new place.
LEGACY_KEYS: LegacyKeys = {
    ("evaluation", "mip_mev"): ("detector", "mip_mev"),
    ("evaluation", "cell_threshold_mip"): ("detector", "cell_threshold_mip"),
}


def upgrade_legacy_keys(data: dict[str, Any], legacy: LegacyKeys) -> tuple[dict[str, Any], list[str]]:
    """A copy of the sectioned dict ``data`` with the keys of ``legacy`` at their new place, and a
    note for each key moved (``"old.key is now new.key"``).

    The old and the new key may both be given only with the same value (else a ConfigError).
    ``data`` itself is not changed.
    """
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    notes = []
    for (old_section, old_key), (new_section, new_key) in legacy.items():
        section = out.get(old_section)
        if not isinstance(section, dict) or old_key not in section:
            continue
        value = section.pop(old_key)
        target = out.setdefault(new_section, {})
        if not isinstance(target, dict):
            continue  # section_from_dict reports the bad section
        if new_key in target and target[new_key] != value:
            raise ConfigError(
                f"{old_section}.{old_key} ({value!r}) and {new_section}.{new_key} ({target[new_key]!r}) "
                f"disagree; {old_section}.{old_key} is the old name of {new_section}.{new_key}: give only that"
            )
        target[new_key] = value
        notes.append(f"{old_section}.{old_key} is now {new_section}.{new_key}")
    return out, notes


def warn_legacy_keys(path: str | Path, notes: list[str]) -> None:
    """The deprecation note of a config file that uses old keys (a FutureWarning, shown to users)."""
    if notes:
        warnings.warn(
            f"{path}: old config key(s), still read: {'; '.join(notes)}. Rename them in the file.",
            FutureWarning,
            stacklevel=4,
        )


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Build a :class:`RunConfig` from a plain dict (as stored in checkpoints; old keys are read at
    their new place, :data:`LEGACY_KEYS`)."""
    return _run_config_from_dict(data)[0]


def _run_config_from_dict(data: dict[str, Any]) -> tuple[RunConfig, list[str]]:
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping, got {type(data).__name__}")
    upgraded, notes = upgrade_legacy_keys(data, LEGACY_KEYS)
    return section_from_dict(RunConfig, upgraded, ""), notes


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain-dict form of a config (lists instead of tuples), safe for YAML, JSON and torch.save."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(config))


def read_yaml(path: str | Path) -> Any:
    """The content of a YAML file ({} when empty), with a ConfigError for a missing or invalid file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None


def load_yaml_config(path: str | Path, parse: Callable[[Any], tuple[Any, list[str]]]) -> Any:
    """``parse`` (content -> (config, notes on old keys)) applied to the YAML file ``path``.

    Its ConfigError names the file; the notes become one deprecation note (:func:`warn_legacy_keys`).
    """
    data = read_yaml(path)
    try:
        config, notes = parse(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    warn_legacy_keys(path, notes)
    return config


def load_config(path: str | Path) -> RunConfig:
    """Read a YAML config file; missing sections and keys take their defaults, old keys
    (:data:`LEGACY_KEYS`) are read at their new place with a deprecation note."""
    return load_yaml_config(path, _run_config_from_dict)
