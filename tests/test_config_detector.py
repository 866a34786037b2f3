"""The detector section holds the MIP and the cell threshold (issue 16, item 4); old configs, with
both in the evaluation section, still load, onto the detector."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from caloclouds.config import (
    ILD_LIKE_DETECTOR,
    LEGACY_KEYS,
    DetectorConfig,
    EvaluationConfig,
    config_from_dict,
    config_to_dict,
    load_config,
)
from caloclouds.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_detector_holds_mip_threshold_layers_and_depths() -> None:
    det = ILD_LIKE_DETECTOR
    assert det == DetectorConfig() and det.n_layers == len(det.silicon_front_mm) == 30
    assert det.mip_mev == pytest.approx(0.147) and det.threshold_mev == pytest.approx(0.0735)
    names = {"mip_mev", "cell_threshold_mip"}
    assert names <= set(config_to_dict(det)) and not names & set(config_to_dict(EvaluationConfig()))


@pytest.mark.parametrize("name", ["ild_photons.yaml", "ild_photons_per_layer.yaml", "hgcal_like_26.yaml"])
def test_shipped_configs_give_the_detector_its_mip(name: str) -> None:
    det = load_config(ROOT / "configs" / name).detector
    assert det.mip_mev == pytest.approx(0.147) and det.threshold_mev == pytest.approx(0.0735)


def test_an_old_config_loads_with_its_values_moved(tmp_path: Path) -> None:
    old = {
        "evaluation": {"geometry": "ild", "mip_mev": 0.2, "cell_threshold_mip": 0.25, "n_batches": 4},
        "detector": {"name": "old"},
    }
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(old))
    with pytest.warns(FutureWarning, match=r"old\.yaml: old config key\(s\), still read: evaluation\.mip_mev is now"):
        config = load_config(path)
    assert config.detector.mip_mev == 0.2 and config.detector.cell_threshold_mip == 0.25
    assert config.detector.threshold_mev == pytest.approx(0.05) and config.evaluation.n_batches == 4
    assert set(LEGACY_KEYS) == {("evaluation", "mip_mev"), ("evaluation", "cell_threshold_mip")}
    # the same value in both places is fine, different values are one clear error
    assert config_from_dict({"evaluation": {"mip_mev": 0.2}, "detector": {"mip_mev": 0.2}}).detector.mip_mev == 0.2
    with pytest.raises(ConfigError, match=r"evaluation\.mip_mev \(0\.2\) and detector\.mip_mev \(0\.3\) disagree"):
        config_from_dict({"evaluation": {"mip_mev": 0.2}, "detector": {"mip_mev": 0.3}})
    with pytest.raises(ConfigError, match=r"detector\.mip_mev must be > 0, got 0"):
        config_from_dict({"evaluation": {"mip_mev": 0}})
    assert old == {
        "evaluation": {"geometry": "ild", "mip_mev": 0.2, "cell_threshold_mip": 0.25, "n_batches": 4},
        "detector": {"name": "old"},
    }  # the caller's dict is not changed


def test_the_shipped_bundle_written_before_the_move_loads() -> None:
    from caloclouds.generation.bundle import load_bundle

    detector = load_bundle("default").config.detector
    assert detector.mip_mev == pytest.approx(0.147) and detector.n_layers == 30
