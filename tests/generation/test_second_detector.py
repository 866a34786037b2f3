"""The detector is data (issue 16, item 4): a second detector, the 26-layer HGCal-like stack of
``configs/hgcal_like_26.yaml``, flows through training, ``generate --cells``, ``project --config``
and ``evaluate --config`` with no ILD value used on the way.

The showers are real Geant4 showers of the shared data merged onto 26 layers (the linear map), and
the model is a tiny bundle trained on them here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from caloclouds.cli import main
from caloclouds.config import ILD_LIKE_DETECTOR, load_config
from caloclouds.generation.bundle import load_bundle
from caloclouds.io import read_showers, write_showers
from caloclouds.io.formats import iter_with_cells
from caloclouds.showers import Showers
from projection.cellfile import read_cells

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "hgcal_like_26.yaml"
pytestmark = pytest.mark.filterwarnings("ignore::flows.sampling.EnergyRangeWarning")  # tiny flow, 60 showers


def merge_layers(showers: Showers, n_layers: int) -> Showers:
    """The showers on ``n_layers`` layers: shower layer l -> floor(n_layers l / 30), points kept."""
    points = showers.points.copy()
    points[:, 2] = np.floor(points[:, 2] * n_layers / ILD_LIKE_DETECTOR.n_layers)
    return Showers(points, showers.offsets.copy(), showers.incident_energy_gev.copy())


@pytest.fixture(scope="module")
def detector():  # noqa: ANN201
    return load_config(CONFIG).detector


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, detector, shared) -> dict[str, Path]:  # noqa: ANN001
    root = tmp_path_factory.mktemp("hgcal_like")
    out = {"train": root / "train26.h5", "reference": root / "ref26.h5"}
    for key, name, n in (("train", "g4_photons_train.h5", 60), ("reference", "g4_photons_val_uniform.h5", 40)):
        write_showers(out[key], merge_layers(read_showers(shared(name), 0, n), detector.n_layers))
    return out


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, make_tiny_bundle, tiny_config, files) -> Path:  # noqa: ANN001
    config = tiny_config(load_config(CONFIG))  # the HGCal-like detector, tiny models
    root = tmp_path_factory.mktemp("bundle26")
    return make_tiny_bundle(root, config, files["train"], flow_data=files["train"], teacher_steps=20)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory, bundle, files) -> Path:  # noqa: ANN001
    out = tmp_path_factory.mktemp("gen26") / "gen26.h5"
    assert (
        main(
            [
                "generate",
                "--model",
                str(bundle),
                "--energies-from",
                str(files["reference"]),
                "--cells",
                "ild",
                "--batch-size",
                "16",
                "--allow-extrapolation",  # the 60 training showers span 12.5-88.4 GeV, the reference 10-90
                "-o",
                str(out),
            ]
        )
        == 0
    )
    return out


def _check_cells(cells, detector) -> None:  # noqa: ANN001
    """Cell hits on the detector's own grid: its layers, depths, pitch and threshold (not ILD's)."""
    layer = np.asarray(cells.layer)
    assert len(layer) > 0 and layer.max() < detector.n_layers
    np.testing.assert_allclose(np.asarray(cells.z_mm), np.asarray(detector.layer_centre_z_mm)[layer], atol=1e-4)
    index = np.asarray(cells.x_mm, np.float64) / detector.cell_pitch_mm - 0.5
    np.testing.assert_allclose(index, np.round(index), atol=1e-3)  # centres on the 10.18 mm grid
    assert np.asarray(cells.e_mev).min() >= detector.threshold_mev


def test_the_config_is_a_second_detector(detector) -> None:  # noqa: ANN001
    assert detector.name == "hgcal-like-26" and detector.n_layers == 26 != ILD_LIKE_DETECTOR.n_layers
    assert detector.cell_pitch_mm != ILD_LIKE_DETECTOR.cell_pitch_mm
    assert detector.subcell_pitch_mm == pytest.approx(ILD_LIKE_DETECTOR.subcell_pitch_mm)
    assert detector.threshold_mev == pytest.approx(0.0735)


def test_generate_uses_the_bundles_detector(bundle, generated, detector, files) -> None:  # noqa: ANN001
    assert load_bundle(bundle).config.detector == detector
    ((showers, cells),) = list(iter_with_cells(generated))
    assert len(showers) == 40 and showers.layer.max() < detector.n_layers
    np.testing.assert_array_equal(showers.incident_energy_gev, read_showers(files["reference"]).incident_energy_gev)
    assert cells is not None
    _check_cells(cells, detector)
    import h5py

    with h5py.File(generated) as f:
        assert f.attrs["detector"] == "hgcal-like-26" and f.attrs["n_layers"] == 26
        assert f.attrs["cell_threshold_mev"] == pytest.approx(detector.threshold_mev)


def test_project_with_the_config_gives_the_same_cells(generated, detector, tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "cells26.h5"
    assert (
        main(
            [
                "project",
                "--geometry",
                "ild",
                "--config",
                str(CONFIG),
                "--in",
                str(generated),
                "-o",
                str(out),
                "--threshold-mip",
                "0.5",
            ]
        )
        == 0
    )
    cells, _, attrs = read_cells(out)
    _check_cells(cells, detector)
    assert attrs["n_shower_layers"] == 26 and attrs["detector"] == "hgcal-like-26"
    assert attrs["threshold_mev"] == pytest.approx(detector.threshold_mev)
    ((_, written),) = list(iter_with_cells(generated))
    np.testing.assert_array_equal(cells.cell_id, written.cell_id)  # generate --cells projected the same way
    np.testing.assert_array_equal(cells.offsets, written.offsets)
    # without --config the ILD-like detector is assumed: 30 layers at other depths, 5.088 mm cells
    ild = tmp_path / "cells_ild.h5"
    assert main(["project", "--geometry", "ild", "--in", str(generated), "-o", str(ild)]) == 0
    assert not np.allclose(read_cells(ild)[0].x_mm[:50] % detector.cell_pitch_mm, detector.cell_pitch_mm / 2)


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # FPD of 20 showers on 25 features: singular
def test_evaluate_with_the_config(generated, files, tmp_path) -> None:  # noqa: ANN001
    run = yaml.safe_load(CONFIG.read_text())
    run["evaluation"].update(
        {
            "n_batches": 2,
            "classifier_folds": 3,
            "classifier_epochs": 1,
            "n_longitudinal_bins": 5,
            "n_radial_bins": 5,
            "kpd_batches": 2,
        }
    )
    config = tmp_path / "hgcal_like_fast.yaml"
    config.write_text(yaml.safe_dump(run))
    out = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--reference",
                str(files["reference"]),
                "--generated",
                str(generated),
                "--config",
                str(config),
                "--out",
                str(out),
                "--no-low-level",
                "--no-plots",
                "--no-fail-exit",  # a tiny model fails the verdict: this test is about the detector config
            ]
        )
        == 0
    )
    scores = json.loads((out / "scores.json").read_text())
    assert scores["detector"]["name"] == "hgcal-like-26" and scores["detector"]["n_layers"] == 26
    assert scores["threshold_mev"] == pytest.approx(0.0735)
    layer_edges = scores["bin_edges"]["layer"]
    assert max(layer_edges) <= 26 and min(layer_edges) >= 0
