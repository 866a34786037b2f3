"""The EDM training section that the point-cloud diffusion and the voxel configs share, and the old
voxel key names (``eval_every``, ``validation_showers``) that still load."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from caloclouds.config import DiffusionConfig, TrainingConfig, config_to_dict, load_config
from caloclouds.errors import ConfigError
from caloclouds.voxel.config import VoxelConfig, load_voxel_config, voxel_config_from_dict, voxel_config_to_dict
from caloclouds.voxel.model import build_voxel_model, load_voxel_model

ROOT = Path(__file__).resolve().parents[1]

#: The voxel defaults as they were before the training section was shared (old key names).
OLD_VOXEL_DEFAULTS = {
    "mesh": "ds2",
    "latent_mesh": "ds2",
    "channels": [8, 16, 32],
    "blocks_per_level": 1,
    "embedding": 64,
    "logit_alpha": 1e-6,
    "layer_floor_mev": 0.1,
    "min_voxel_mev": 0.01,
    "sigma_data": 1.0,
    "sigma_min": 0.002,
    "sigma_max": 80.0,
    "rho": 7.0,
    "p_mean": -1.2,
    "p_std": 1.2,
    "batch_size": 16,
    "learning_rate": 1e-3,
    "grad_clip": 1.0,
    "steps": 20000,
    "ema_power": 0.6667,
    "ema_max": 0.999,
    "augment": True,
    "heun_steps": 18,
    "validation_showers": 200,
    "eval_every": 100,
    "distill_steps": 2000,
    "distill_levels": 18,
    "distill_target_ema": 0.95,
    "cm_sample_steps": 2,
}
RENAMED = {"eval_every": "checkpoint_every", "validation_showers": "val_showers"}


def _new_names(old: dict) -> dict:
    return {RENAMED.get(k, k): v for k, v in old.items()}


def test_the_training_keys_are_defined_once_for_both_models() -> None:
    names = {f.name for f in dataclasses.fields(TrainingConfig)}
    diffusion = {f.name for f in dataclasses.fields(DiffusionConfig)}
    voxel = {f.name for f in dataclasses.fields(VoxelConfig)}
    assert issubclass(DiffusionConfig, TrainingConfig) and issubclass(VoxelConfig, TrainingConfig)
    assert diffusion & voxel == names  # nothing else is common, and nothing common is renamed
    assert {"checkpoint_every", "val_showers", "heun_steps", "sigma_max"} <= names
    assert not set(RENAMED) & voxel


def test_each_model_keeps_its_defaults() -> None:
    assert voxel_config_to_dict(VoxelConfig()) == _new_names(OLD_VOXEL_DEFAULTS)
    d = DiffusionConfig()
    assert (d.sigma_max, d.rho, d.batch_size, d.checkpoint_every, d.val_showers, d.heun_steps) == (
        10.0,
        3.0,
        32,
        500,
        32,
        13,
    )


def test_old_voxel_yaml_loads_with_a_deprecation_note(tmp_path: Path) -> None:
    old = {"channels": [4], "embedding": 8, "eval_every": 7, "validation_showers": 3}
    new = tmp_path / "new.yaml"
    new.write_text(yaml.safe_dump({"voxel": _new_names(old)}))
    expected = load_voxel_config(new)  # no note (warnings are errors in the tests)
    assert expected.checkpoint_every == 7 and expected.val_showers == 3
    for i, content in enumerate(({"voxel": old}, old)):  # a voxel: section, or the keys at the top level
        path = tmp_path / f"old{i}.yaml"
        path.write_text(yaml.safe_dump(content))
        with pytest.warns(FutureWarning, match=r"voxel\.eval_every is now voxel\.checkpoint_every") as record:
            assert load_voxel_config(path) == expected
        assert "voxel.validation_showers is now voxel.val_showers" in str(record[0].message)
        assert str(path) in str(record[0].message)


def test_old_and_new_voxel_key_must_agree(tmp_path: Path) -> None:
    assert voxel_config_from_dict({"eval_every": 5, "checkpoint_every": 5}).checkpoint_every == 5
    with pytest.raises(ConfigError, match=r"voxel\.eval_every \(5\) and voxel\.checkpoint_every \(6\) disagree"):
        voxel_config_from_dict({"eval_every": 5, "checkpoint_every": 6})
    path = tmp_path / "bad.yaml"
    path.write_text("voxel:\n  eval_every: 0\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: voxel\.checkpoint_every must be >= 1, got 0"):
        load_voxel_config(path)


def test_a_voxel_checkpoint_written_with_the_old_names_loads(tmp_path: Path) -> None:
    """A checkpoint of the former format (its config with eval_every / validation_showers, in the
    former order) loads silently with the same weights."""
    config = VoxelConfig(channels=(4,), embedding=8, checkpoint_every=9, val_showers=5)
    model = build_voxel_model(config)
    ckpt = model.checkpoint(step=0)
    ckpt["config"] = {**OLD_VOXEL_DEFAULTS, "channels": [4], "embedding": 8, "eval_every": 9, "validation_showers": 5}
    path = tmp_path / "old_voxel.pt"
    torch.save(ckpt, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checkpoint cannot be edited: no note
        loaded = load_voxel_model(path)
    assert loaded.config == config
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_training_checks_name_the_model_section() -> None:
    with pytest.raises(ConfigError, match=r"voxel\.learning_rate \(--lr for the learning rate\) must be > 0"):
        VoxelConfig(learning_rate=0.0)
    with pytest.raises(ConfigError, match=r"diffusion needs 0 < sigma_min < sigma_max, got 20\.0, 10\.0"):
        DiffusionConfig(sigma_min=20.0)
    with pytest.raises(ConfigError, match=r"voxel\.p_std must be > 0"):
        VoxelConfig(p_std=0.0)
    with pytest.raises(ConfigError, match=r"diffusion\.lr_decay_steps must be >= 0"):
        DiffusionConfig(lr_decay_steps=-1)
    # the voxel model may hold out no showers; the point-cloud model's validation needs one
    assert VoxelConfig(val_showers=0).val_showers == 0
    with pytest.raises(ConfigError, match=r"diffusion\.val_showers must be >= 1, got 0"):
        DiffusionConfig(val_showers=0)


@pytest.mark.parametrize(
    "name", ["ild_photons.yaml", "ild_photons_per_layer.yaml", "ild_photons_per_layer_small.yaml", "hgcal_like_26.yaml"]
)
def test_shipped_run_configs_load_without_a_note(name: str) -> None:
    config = load_config(ROOT / "configs" / name)
    assert isinstance(config.diffusion, TrainingConfig)
    assert config_to_dict(config)["diffusion"]["checkpoint_every"] == config.diffusion.checkpoint_every
