"""The bundled model (caloclouds/models/default) loads and generates physical showers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from caloclouds.cli import main
from caloclouds.generation.bundle import load_bundle
from caloclouds.generation.generator import ShowerGenerator
from caloclouds.io import read_showers

BUNDLE = Path(__file__).resolve().parents[1] / "caloclouds" / "models" / "default"
N_LAYERS = 30


@pytest.fixture(scope="module")
def bundle():
    if not (BUNDLE / "bundle.json").is_file():
        pytest.fail(f"the shipped bundle {BUNDLE} is missing: `make demo` and the docs rely on it")
    return load_bundle("default")


def test_every_part_is_a_plain_checkpoint() -> None:
    manifest = json.loads((BUNDLE / "bundle.json").read_text())
    assert set(manifest["files"]) == {"flow", "teacher", "cm"}
    for name in manifest["files"].values():
        checkpoint = torch.load(BUNDLE / name, map_location="cpu", weights_only=True)
        assert isinstance(checkpoint, dict) and "state_dict" in checkpoint and "config" in checkpoint, name


def test_shipped_bundle_generates_physical_showers(bundle) -> None:  # noqa: ANN001
    assert bundle.has("flow") and bundle.has("cm") and bundle.has("teacher")
    assert not bundle.calibration.is_identity  # the shipped N calibration is fitted
    energies = np.array([10.0, 50.0, 90.0, 50.0], dtype=np.float32)
    torch.set_num_threads(1)
    gen = ShowerGenerator(bundle, device="cpu")
    showers = gen.generate(energies, generator=torch.Generator().manual_seed(0))
    assert len(showers) == 4 and showers.offsets[0] == 0 and showers.offsets[-1] == len(showers.points)
    np.testing.assert_array_equal(showers.incident_energy_gev, energies)
    points = showers.points
    assert np.isfinite(points).all() and (points[:, 3] >= 0).all()
    layer = points[:, 2]
    assert (layer == np.round(layer)).all() and layer.min() >= 0 and layer.max() < N_LAYERS
    n_points = np.diff(showers.offsets)
    assert (n_points > 100).all() and n_points[2] > n_points[0]  # 90 GeV holds more points than 10 GeV
    # sampling fraction of the ILD-like ECAL: about 3.0 % at 10 GeV, 2.7 % at 90 GeV (Geant4)
    fraction = showers.visible_energy_mev() / (1000.0 * energies)
    assert ((fraction > 0.02) & (fraction < 0.04)).all(), fraction
    # the same seed gives the same showers
    again = gen.generate(energies, generator=torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(again.points, showers.points)


def test_cli_generates_from_the_shipped_bundle(tmp_path, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "showers.h5"
    assert main(["generate", "--energies", "20", "60", "-n", "4", "--seed", "3", "-o", str(out)]) == 0
    capsys.readouterr()
    showers = read_showers(out)
    # -n is per energy
    assert len(showers) == 8 and sorted(showers.incident_energy_gev.tolist()) == [20.0] * 4 + [60.0] * 4
    assert np.isfinite(showers.points).all() and (showers.points[:, 3] >= 0).all()


def test_flow_warm_up_leaves_the_random_state_alone(bundle) -> None:  # noqa: ANN001
    """ShowerGenerator warms the flow up when it is built; torch.manual_seed(s) must still give the same showers."""
    flow = bundle.flow()
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    flow.warm_up()
    torch.testing.assert_close(torch.rand(3), expected)
    torch.manual_seed(9)
    first = ShowerGenerator(bundle).generate(np.array([40.0], dtype=np.float32))
    torch.manual_seed(9)
    again = ShowerGenerator(bundle).generate(np.array([40.0], dtype=np.float32))
    np.testing.assert_array_equal(first.points, again.points)


@pytest.mark.parametrize(
    ("folder", "config"),
    [
        ("default", "ild_photons_angled.yaml"),  # the shipped model: normal and oblique incidence
        ("ild_normal_incidence", "ild_photons_per_layer.yaml"),  # the one it replaced, its warm start
    ],
)
def test_configs_hold_the_exact_config_of_the_shipped_models(folder: str, config: str) -> None:
    from caloclouds.config import config_from_dict, load_config

    path = BUNDLE.parent / folder / "bundle.json"
    shipped = config_from_dict(json.loads(path.read_text())["config"])
    assert load_config(BUNDLE.parents[2] / "configs" / config) == shipped


def test_the_shipped_model_knows_the_direction(bundle) -> None:  # noqa: ANN001
    """Issue 25: one model for normal and oblique incidence, with its axis calibration; the normal-
    incidence model it replaced stays beside it (the warm start of campaign/rebuild.py --profile angled)."""
    assert bundle.direction_aware and bundle.theta_range_deg == (0.0, 40.0)
    assert bundle.manifest.get("axis_depth_mm") and len(bundle.axis_depth_mm) == N_LAYERS
    assert not load_bundle(BUNDLE.parent / "ild_normal_incidence").direction_aware


def test_the_shipped_model_leans_with_the_direction(bundle) -> None:  # noqa: ANN001
    """Issue 25 item 5: the per-layer CoG follows depth x tan(theta) as Geant4's does (0.92 tan(theta) per
    mm at 50 GeV, ../shared/data/README.md section 4), along phi and not across it."""
    from caloclouds.generation.calibrate_axis import layer_lean_mm

    torch.set_num_threads(1)
    gen = ShowerGenerator(bundle)
    z = np.asarray(bundle.config.detector.layer_centre_z_mm)
    for theta in (20.0, 40.0):
        showers = gen.generate(
            np.full(60, 50.0), theta_deg=theta, phi_deg=30.0, generator=torch.Generator().manual_seed(1)
        )
        lean = layer_lean_mm(showers, N_LAYERS)
        slope = np.polyfit(z[2:26], lean[2:26], 1)[0]  # mm of lean per mm of depth, per unit tan(theta)
        assert 0.85 < slope < 1.0, (theta, slope)
