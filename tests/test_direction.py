"""The frame of the inclined shower axis (caloclouds/direction.py) and the direction-aware training
data, on real angled Geant4 showers (../shared/data/g4_photons_angled_val.h5)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from caloclouds.config import ILD_LIKE_DETECTOR, load_config
from caloclouds.direction import check_direction, from_axis_frame, tan_theta, to_axis_frame, wrap_phi_deg
from caloclouds.errors import InputFileError
from caloclouds.showers import Showers

LAYER_Z = np.asarray(ILD_LIKE_DETECTOR.layer_centre_z_mm)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def angled(shared) -> Showers:  # noqa: ANN001
    from caloclouds.io.formats import read_any

    return read_any(shared("g4_photons_angled_val.h5"))[:200]


def _layer_cog_x(showers: Showers, layer: int) -> np.ndarray:
    """Energy-weighted x of each shower in one layer (NaN where the layer is empty)."""
    inside = showers.layer == layer
    e = np.where(inside, showers.e_mev, 0.0)
    e_sum = showers.per_shower_sum(e)
    with np.errstate(invalid="ignore", divide="ignore"):
        return showers.per_shower_sum(showers.x_mm * e) / e_sum


def test_axis_frame_centres_every_layer(angled: Showers) -> None:
    """In the axis frame the per-layer CoG stays near 0; in the detector frame it drifts by z tan theta."""
    frame = to_axis_frame(angled, LAYER_Z)
    steep = angled.theta_deg > 25
    layer = 20  # z = 51.75 mm: the axis is 24-43 mm out at 25-40 degrees
    detector_r = np.hypot(*(angled.centre_of_gravity_mm().T))
    axis_x = _layer_cog_x(frame, layer)[steep]
    drift = LAYER_Z[layer] * tan_theta(angled.theta_deg[steep])
    assert np.nanmedian(np.abs(axis_x)) < 0.1 * np.median(drift)
    assert np.median(detector_r[steep]) > 10.0  # the detector-frame CoG is far from the beam axis


def test_axis_frame_round_trip(angled: Showers) -> None:
    frame = to_axis_frame(angled, LAYER_Z)
    shower = torch.from_numpy(angled.shower_index)
    x, y = from_axis_frame(
        torch.from_numpy(frame.x_mm.astype(np.float64)),
        torch.from_numpy(frame.y_mm.astype(np.float64)),
        torch.from_numpy(frame.layer),
        torch.from_numpy(tan_theta(angled.theta_deg))[shower],
        torch.from_numpy(np.radians(angled.phi_deg))[shower],
        torch.from_numpy(LAYER_Z),
    )
    np.testing.assert_allclose(x.numpy(), angled.x_mm, atol=1e-3)
    np.testing.assert_allclose(y.numpy(), angled.y_mm, atol=1e-3)


def test_turning_a_shower_and_phi_leaves_the_axis_frame_unchanged(angled: Showers) -> None:
    """The detector is symmetric about the beam axis: a shower turned by alpha is the shower at phi + alpha."""
    alpha = np.radians(73.0)
    c, s = np.cos(alpha), np.sin(alpha)
    points = angled.points.copy()
    points[:, 0], points[:, 1] = c * angled.x_mm - s * angled.y_mm, s * angled.x_mm + c * angled.y_mm
    turned = Showers(points, angled.offsets, angled.incident_energy_gev).with_direction(
        angled.theta_deg, angled.phi_deg + 73.0
    )
    a, b = to_axis_frame(angled, LAYER_Z), to_axis_frame(turned, LAYER_Z)
    np.testing.assert_allclose(a.points, b.points, atol=2e-3)


def test_normal_incidence_is_the_identity() -> None:
    showers = Showers.from_list([np.array([[1.0, 2.0, 3.0, 0.5], [-1.0, 0.5, 20.0, 1.0]])], [50.0])
    assert to_axis_frame(showers, LAYER_Z) is showers
    assert to_axis_frame(showers.with_direction(0.0, 123.0), LAYER_Z).points.tolist() == showers.points.tolist()


def test_angle_checks_and_wrapping() -> None:
    assert check_direction(np.array([0.0, 40.0]), np.array([10.0, 350.0]), "f.h5") is None
    assert "theta_deg -5" in check_direction(np.array([-5.0]), np.array([0.0]), "f.h5")
    assert "phi_deg nan" in check_direction(np.array([5.0]), np.array([np.nan]), "f.h5")
    np.testing.assert_allclose(
        wrap_phi_deg(np.array([0.0, 190.0, -180.0, 540.0, 359.0])), [0.0, -170.0, 180.0, 180.0, -1.0]
    )


def test_training_data_mixes_angled_and_normal_files(shared) -> None:  # noqa: ANN001
    from caloclouds.diffusion.data import TrainingData

    angled_path, normal_path = shared("g4_photons_angled_val.h5"), shared("g4_photons_val_fixed.h5")

    data = TrainingData.from_files([angled_path, normal_path], limit=1100, layer_z_mm=LAYER_Z)
    assert len(data) == 1100
    assert float(data.tan_theta[:1000].max()) > 0.5 and float(data.tan_theta[1000:].abs().max()) == 0.0
    with pytest.raises(InputFileError, match="g4_photons_angled_val.h5.*not conditioned on the direction"):
        TrainingData.from_files([angled_path], limit=10)


def test_augmentation_of_angled_showers_is_a_mirror(shared) -> None:  # noqa: ANN001
    """Angled showers keep x (the lean of the axis frame) and flip y at random; normal ones turn."""
    from caloclouds.diffusion.data import TrainingData

    angled_path = shared("g4_photons_angled_val.h5")

    data = TrainingData.from_files([angled_path], limit=50, layer_z_mm=LAYER_Z)
    idx = torch.arange(50)
    gen = torch.Generator().manual_seed(3)
    pts, _, _ = data._gather(idx, rotate=True, generator=gen)
    plain, _, _ = data._gather(idx, rotate=False, generator=gen)
    torch.testing.assert_close(pts[:, 0], plain[:, 0])
    torch.testing.assert_close(pts[:, 1].abs(), plain[:, 1].abs())
    flipped = (pts[:, 1] != plain[:, 1]) & (plain[:, 1] != 0)
    assert 0.2 < float(flipped.float().mean()) < 0.8


def test_warm_start_keeps_the_network_at_normal_incidence() -> None:
    """A direction-aware network warm-started from a normal-incidence one gives the same output at tan theta = 0."""
    from caloclouds.diffusion.checkpoint import build_inner
    from caloclouds.diffusion.run import warm_start

    config = load_config(ROOT / "configs" / "ild_photons_per_layer.yaml")
    torch.manual_seed(0)
    normal = build_inner(config.diffusion, 30)
    angled = build_inner(dataclasses.replace(config.diffusion, direction=True), 30)
    warm_start(angled, normal.state_dict())
    x, c_noise = torch.randn(7, 3), torch.randn(2)
    cond = torch.randn(2, 34)
    index = torch.tensor([0, 0, 1, 1, 1, 0, 1])
    with torch.no_grad():
        expected = normal(x, c_noise, cond, index)
        got = angled(x, c_noise, torch.cat([cond, torch.zeros(2, 1)], 1), index)
        tilted = angled(x, c_noise, torch.cat([cond, torch.ones(2, 1)], 1), index)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(tilted, expected)  # new columns start at zero weight
    with pytest.raises(Exception, match="warm start"):
        warm_start(normal, angled.state_dict())


def test_flow_features_of_mixed_files(shared) -> None:  # noqa: ANN001
    from caloclouds.io.formats import read_any
    from flows.features import compute_features

    angled_path, normal_path = shared("g4_photons_angled_val.h5"), shared("g4_photons_val_fixed.h5")

    angled = read_any(angled_path)[:100]
    normal = read_any(normal_path)[:100]
    f_angled = compute_features(angled, n_layers=30, condition_names=("theta_deg",), layer_z_mm=LAYER_Z)
    f_normal = compute_features(normal, n_layers=30, condition_names=("theta_deg",), layer_z_mm=LAYER_Z)
    np.testing.assert_allclose(f_angled.conditions[:, 0], angled.theta_deg)
    assert not f_normal.conditions.any()
    # the CoG is taken about the inclined axis: within a few mm, where the detector frame's is 10-40 mm out
    assert np.median(np.abs(f_angled.cog_mm[:, 0])) < 3.0
    with pytest.raises(InputFileError, match="not conditioned on the direction"):
        compute_features(angled, n_layers=30)
