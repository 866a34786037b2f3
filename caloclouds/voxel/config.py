"""Configuration of the voxel diffusion model (a ``voxel:`` section of a YAML file, or its own file).

The voxel model has its own frozen dataclass so that it does not change the point-cloud
``RunConfig``. :func:`load_voxel_config` reads either a file whose top level is these keys or a
run config with a ``voxel:`` section; unknown keys are errors listing the valid keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caloclouds.config import _build, config_to_dict, read_yaml
from caloclouds.errors import ConfigError

__all__ = ["VoxelConfig", "voxel_config_from_dict", "voxel_config_to_dict", "load_voxel_config"]


@dataclass(frozen=True)
class VoxelConfig:
    """The voxel model, its preprocessing, EDM training and sampling."""

    mesh: str = "ds2"  # Data binning: "ds2", "ds1" (irregular, via GLaM) or a YAML/JSON mesh file.
    latent_mesh: str = "ds2"  # Regular cylinder the U-Net works on when `mesh` is irregular.
    channels: tuple[int, ...] = (8, 16, 32)  # U-Net channels per resolution level.
    blocks_per_level: int = 1  # Residual blocks per U-Net level (down and up).
    embedding: int = 64  # Width of the noise and condition embeddings (each).
    logit_alpha: float = 1e-6  # Voxel fraction x -> logit(alpha + (1 - 2 alpha) x) (CaloDiffusion).
    layer_floor_mev: float = 0.1  # Layer energies are modelled as log(E_l + floor).
    min_voxel_mev: float = 0.01  # Generated voxels below this energy are set to 0 (MeV).
    sigma_data: float = 1.0  # EDM sigma_data (voxel logits are standardised to 1).
    sigma_min: float = 0.002  # Smallest noise level of the Karras schedule.
    sigma_max: float = 80.0  # Largest noise level (start of sampling).
    rho: float = 7.0  # Karras schedule exponent.
    p_mean: float = -1.2  # ln(sigma) ~ N(p_mean, p_std^2) in training.
    p_std: float = 1.2  # ... and its std.
    batch_size: int = 16  # Showers per optimiser step.
    learning_rate: float = 1e-3  # Adam learning rate (cosine decay to 10 % over `steps`).
    grad_clip: float = 1.0  # Max gradient norm (0 = no clipping).
    steps: int = 20000  # Default number of optimiser steps.
    ema_power: float = 0.6667  # EMA warm-up: decay = 1 - (1 + step)^-power, capped below.
    ema_max: float = 0.999  # Cap of the EMA decay.
    augment: bool = True  # Random rotation (alpha roll) and reflection (alpha flip).
    heun_steps: int = 18  # Default Heun steps at sampling time.
    validation_showers: int = 200  # Showers of the training file held out for the validation loss.
    eval_every: int = 100  # Steps between validation losses, log rows and checkpoints.
    distill_steps: int = 2000  # Default optimiser steps of consistency distillation.
    distill_levels: int = 18  # Karras levels N of the teacher's Heun step in distillation.
    distill_target_ema: float = 0.95  # mu of the consistency target network EMA.
    cm_sample_steps: int = 2  # Default consistency-model sampling steps.

    def __post_init__(self) -> None:
        for name in (
            "blocks_per_level",
            "embedding",
            "batch_size",
            "steps",
            "heun_steps",
            "eval_every",
            "distill_steps",
            "distill_levels",
            "cm_sample_steps",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"voxel.{name} must be >= 1, got {getattr(self, name)}")
        if not self.channels or min(self.channels) < 1:
            raise ConfigError(
                f"voxel.channels must be a non-empty list of channel counts >= 1, got {list(self.channels)}"
            )
        if not 0 < self.logit_alpha < 0.5:
            raise ConfigError(f"voxel.logit_alpha must be in (0, 0.5), got {self.logit_alpha}")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ConfigError(f"voxel needs 0 < sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}")
        for name in ("layer_floor_mev", "sigma_data", "learning_rate", "rho"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"voxel.{name} must be > 0, got {getattr(self, name)}")
        for name in ("min_voxel_mev", "grad_clip", "validation_showers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"voxel.{name} must be >= 0, got {getattr(self, name)}")


def voxel_config_from_dict(data: dict[str, Any]) -> VoxelConfig:
    """Build a :class:`VoxelConfig` from a plain dict, checking keys and types with the run config's coercion."""
    if not isinstance(data, dict):
        raise ConfigError(f"the voxel config must be a mapping, got {type(data).__name__}")
    return _build(VoxelConfig, data, "voxel")


def voxel_config_to_dict(config: VoxelConfig) -> dict[str, Any]:
    """Plain dict (lists instead of tuples) for YAML, JSON and checkpoints."""
    return config_to_dict(config)


def load_voxel_config(path: str | Path) -> VoxelConfig:
    """Read the ``voxel:`` section of a YAML file (or the whole file if it has no such section)."""
    data = read_yaml(path)
    if isinstance(data, dict) and "voxel" in data:
        data = data["voxel"] or {}
    try:
        return voxel_config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
