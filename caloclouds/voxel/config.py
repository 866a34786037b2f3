"""Configuration of the voxel diffusion model (a ``voxel:`` section of a YAML file, or its own file).

The voxel model has its own frozen dataclass so that it does not change the point-cloud
``RunConfig``; its EDM training keys are the point-cloud diffusion's
(:class:`caloclouds.config.TrainingConfig`), with the voxel model's defaults.
:func:`load_voxel_config` reads either a file whose top level is these keys or a run config with a
``voxel:`` section; unknown keys are errors listing the valid keys. Two keys were renamed
(:data:`VOXEL_LEGACY_KEYS`): files and checkpoints with the old names still load, a file with a
deprecation note.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from caloclouds.config import (
    LegacyKeys,
    TrainingConfig,
    config_to_dict,
    load_yaml_config,
    section_from_dict,
    upgrade_legacy_keys,
)
from caloclouds.errors import ConfigError

__all__ = [
    "VoxelConfig",
    "VOXEL_LEGACY_KEYS",
    "voxel_config_from_dict",
    "voxel_config_to_dict",
    "load_voxel_config",
]

#: The voxel keys renamed to the point-cloud diffusion's names: old -> new.
VOXEL_LEGACY_KEYS: LegacyKeys = {
    ("voxel", "eval_every"): ("voxel", "checkpoint_every"),
    ("voxel", "validation_showers"): ("voxel", "val_showers"),
}


@dataclass(frozen=True)
class VoxelConfig(TrainingConfig):
    """The voxel model, its preprocessing and sampling; its EDM training is :class:`TrainingConfig`'s.

    The learning rate decays (cosine) over the whole run to ``learning_rate * 0.1``. The validation
    loss is taken on the last ``val_showers`` showers of the training file (at most a fifth of it),
    held out of the training.
    """

    section: ClassVar[str] = "voxel"

    mesh: str = "ds2"  # Data binning: "ds2", "ds1" (irregular, via GLaM) or a YAML/JSON mesh file.
    latent_mesh: str = "ds2"  # Regular cylinder the U-Net works on when `mesh` is irregular.
    channels: tuple[int, ...] = (8, 16, 32)  # U-Net channels per resolution level.
    blocks_per_level: int = 1  # Residual blocks per U-Net level (down and up).
    embedding: int = 64  # Width of the noise and condition embeddings (each).
    logit_alpha: float = 1e-6  # Voxel fraction x -> logit(alpha + (1 - 2 alpha) x) (CaloDiffusion).
    layer_floor_mev: float = 0.1  # Layer energies are modelled as log(E_l + floor).
    min_voxel_mev: float = 0.01  # Generated voxels below this energy are set to 0 (MeV).
    augment: bool = True  # Random rotation (alpha roll) and reflection (alpha flip).
    distill_steps: int = 2000  # Default optimiser steps of consistency distillation.
    distill_levels: int = 18  # Karras levels N of the teacher's Heun step in distillation.
    distill_target_ema: float = 0.95  # mu of the consistency target network EMA.
    cm_sample_steps: int = 2  # Default consistency-model sampling steps.
    # The voxel model's defaults of the training keys.
    sigma_data: float = 1.0  # Voxel logits are standardised to 1.
    sigma_max: float = 80.0
    rho: float = 7.0
    batch_size: int = 16
    grad_clip: float = 1.0
    steps: int = 20000
    ema_max: float = 0.999
    heun_steps: int = 18
    checkpoint_every: int = 100
    val_showers: int = 200

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("blocks_per_level", "embedding", "distill_steps", "distill_levels", "cm_sample_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"voxel.{name} must be >= 1, got {getattr(self, name)}")
        if not self.channels or min(self.channels) < 1:
            raise ConfigError(
                f"voxel.channels must be a non-empty list of channel counts >= 1, got {list(self.channels)}"
            )
        if not 0 < self.logit_alpha < 0.5:
            raise ConfigError(f"voxel.logit_alpha must be in (0, 0.5), got {self.logit_alpha}")
        if not self.layer_floor_mev > 0:
            raise ConfigError(f"voxel.layer_floor_mev must be > 0, got {self.layer_floor_mev}")
        if not self.min_voxel_mev >= 0:
            raise ConfigError(f"voxel.min_voxel_mev must be >= 0, got {self.min_voxel_mev}")


def _voxel_config_from_dict(data: dict[str, Any]) -> tuple[VoxelConfig, list[str]]:
    if not isinstance(data, dict):
        raise ConfigError(f"the voxel config must be a mapping, got {type(data).__name__}")
    upgraded, notes = upgrade_legacy_keys({"voxel": data}, VOXEL_LEGACY_KEYS)
    return section_from_dict(VoxelConfig, upgraded["voxel"], "voxel"), notes


def voxel_config_from_dict(data: dict[str, Any]) -> VoxelConfig:
    """Build a :class:`VoxelConfig` from a plain dict (as stored in checkpoints), checking keys and
    types as the run config does; the old key names (:data:`VOXEL_LEGACY_KEYS`) are read as the new."""
    return _voxel_config_from_dict(data)[0]


def voxel_config_to_dict(config: VoxelConfig) -> dict[str, Any]:
    """Plain dict (lists instead of tuples) for YAML, JSON and checkpoints."""
    return config_to_dict(config)


def load_voxel_config(path: str | Path) -> VoxelConfig:
    """Read the ``voxel:`` section of a YAML file (or the whole file if it has no such section); old
    key names are read with a deprecation note (a FutureWarning)."""
    return load_yaml_config(path, _voxel_config_from_file)


def _voxel_config_from_file(data: Any) -> tuple[VoxelConfig, list[str]]:
    if isinstance(data, dict) and "voxel" in data:
        data = data["voxel"] or {}
    return _voxel_config_from_dict(data)
