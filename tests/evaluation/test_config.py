"""The evaluation section of the config: the measured MIP, a YAML round trip, and clear errors."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from caloclouds.config import EvaluationConfig, config_from_dict, config_to_dict, load_config
from caloclouds.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

#: A value other than the default for every field, so that a round trip that drops or mangles a
#: field, or ignores a YAML key and keeps the default, fails.
NON_DEFAULT = {
    "geometry": "hgcal",
    "radial_axis": "cog",
    "n_longitudinal_bins": 7,
    "n_radial_bins": 6,
    "n_batches": 5,
    "classifier_folds": 4,
    "classifier_hidden": [8, 4, 2],
    "classifier_epochs": 3,
    "classifier_batch_size": 64,
    "classifier_learning_rate": 2e-3,
    "fpd_min_samples": 100,
    "fpd_max_samples": 200,
    "kpd_batch_size": 50,
    "kpd_batches": 3,
    "kpd_degree": 3,
    "seed": 7,
    "voxel_mesh": "ds2",
}


def test_default_yaml_has_the_measured_mip() -> None:
    detector = load_config(ROOT / "configs" / "ild_photons.yaml").detector  # the MIP is the detector's
    assert detector.mip_mev == pytest.approx(0.147)
    assert detector.threshold_mev == pytest.approx(0.0735)


def test_every_field_is_exercised() -> None:
    assert set(NON_DEFAULT) == {f.name for f in fields(EvaluationConfig)}
    default = EvaluationConfig()
    for name, value in NON_DEFAULT.items():
        expected = tuple(value) if isinstance(value, list) else value
        assert getattr(default, name) != expected, f"NON_DEFAULT[{name!r}] is the default"


def test_yaml_round_trip_keeps_every_value(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"evaluation": NON_DEFAULT}))
    config = load_config(path).evaluation
    for name, value in NON_DEFAULT.items():
        expected = tuple(value) if isinstance(value, list) else value
        assert getattr(config, name) == expected, name
    assert isinstance(config.classifier_hidden, tuple) and isinstance(config.n_batches, int)
    # and back: config -> plain dict -> YAML -> config gives the same frozen dataclass
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(config_to_dict(load_config(path))))
    assert load_config(again) == load_config(path)
    assert config_to_dict(load_config(again))["evaluation"] == NON_DEFAULT


def test_shipped_config_round_trips(tmp_path: Path) -> None:
    for name in ("ild_photons.yaml", "ild_photons_per_layer.yaml"):
        config = load_config(ROOT / "configs" / name)
        copy = tmp_path / name
        copy.write_text(yaml.safe_dump(config_to_dict(config)))
        assert load_config(copy) == config, name


@pytest.mark.parametrize(
    ("section", "match"),
    [
        ({"n_batches": 0}, r"evaluation\.n_batches must be > 0, got 0"),
        ({"classifier_learning_rate": "fast"}, r"evaluation\.classifier_learning_rate must be a number, got 'fast'"),
        ({"radial_axis": "beam"}, r"evaluation\.radial_axis must be 'nominal' or 'cog', got 'beam'"),
        ({"classifier_folds": 2}, r"evaluation\.classifier_folds must be >= 3, got 2"),
        ({"classifier_hidden": "32"}, r"evaluation\.classifier_hidden must be a list, got '32'"),
        ({"classifier_hidden": [32, "a"]}, r"evaluation\.classifier_hidden\[1\] must be a number, got 'a'"),
        ({"n_batches": 2.5}, r"evaluation\.n_batches must be an integer, got 2\.5"),
        ({"seed": True}, r"evaluation\.seed must be a number, got True"),
        ({"fpd_min_samples": 10, "fpd_max_samples": 5}, r"fpd_min_samples \(10\) must be <= .*fpd_max_samples \(5\)"),
        ({"threshold": 1}, r"unknown key\(s\) \['threshold'\] in evaluation; valid keys are \[.*'radial_axis'"),
    ],
)
def test_bad_values_are_rejected(section: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        config_from_dict({"evaluation": section})


def test_bad_yaml_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"evaluation": {"radial_axis": "beam"}}))
    with pytest.raises(ConfigError, match=rf"{path.name}: evaluation\.radial_axis must be"):
        load_config(path)
    path.write_text("evaluation: [unclosed\n")
    with pytest.raises(ConfigError, match=rf"{path.name}: not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
