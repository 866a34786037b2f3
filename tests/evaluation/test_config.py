"""The evaluation section of the config."""

from __future__ import annotations

from pathlib import Path

import pytest

from caloclouds.config import EvaluationConfig, config_from_dict, load_config
from caloclouds.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_default_yaml_has_the_measured_mip() -> None:
    config = load_config(ROOT / "configs" / "ild_photons.yaml").evaluation
    assert config.mip_mev == pytest.approx(0.147)
    assert config.threshold_mev == pytest.approx(0.0735)
    assert config == EvaluationConfig(**{**config.__dict__})


@pytest.mark.parametrize(
    ("section", "match"),
    [
        ({"mip_mev": 0}, "mip_mev"),
        ({"radial_axis": "beam"}, "radial_axis"),
        ({"classifier_folds": 2}, "classifier_folds"),
        ({"fpd_min_samples": 10, "fpd_max_samples": 5}, "fpd_min_samples"),
        ({"threshold": 1}, "unknown key"),
    ],
)
def test_bad_values_are_rejected(section: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        config_from_dict({"evaluation": section})
