"""Sampling invariants, seeding, energy range and save/load of a tiny trained Shower Flow."""

from __future__ import annotations

import warnings

import pytest
import torch

from flows import EnergyRangeWarning, FlowSample, ShowerFlow, load_shower_flow
from caloclouds.training.rundir import MODEL_NAME
from flows.checkpoint import FORMAT_VERSION


def _check_invariants(s: FlowSample, n: int, n_layers: int) -> None:
    assert s.points_per_layer.shape == (n, n_layers) and s.points_per_layer.dtype == torch.int64
    assert s.n_points.dtype == torch.int64
    assert torch.equal(s.points_per_layer.sum(1), s.n_points)
    assert (s.points_per_layer >= 0).all() and (s.n_points >= 1).all()
    assert (s.energy_per_layer_mev >= 0).all()
    torch.testing.assert_close(s.energy_per_layer_mev.sum(1), s.visible_energy_mev)
    assert (s.energy_per_layer_mev[s.points_per_layer == 0] == 0).all()
    assert s.cog_mm.shape == (n, 2)
    for t in (s.visible_energy_mev, s.energy_per_layer_mev, s.cog_mm):
        assert torch.isfinite(t).all()


def test_sampling_invariants_across_the_range(tiny_flow: ShowerFlow) -> None:
    lo, hi = tiny_flow.energy_range_gev
    energies = torch.cat([torch.tensor([lo, hi, lo, hi]), torch.linspace(lo, hi, 500)])
    s = tiny_flow.sample(energies, generator=torch.Generator().manual_seed(0))
    _check_invariants(s, len(energies), tiny_flow.n_layers)
    # trained on 10/50/90 GeV: more energy, more points and more visible energy
    assert s.n_points[-100:].float().mean() > s.n_points[4:104].float().mean()
    assert s.visible_energy_mev[-100:].mean() > s.visible_energy_mev[4:104].mean()


def test_batch_of_one(tiny_flow: ShowerFlow) -> None:
    s = tiny_flow.sample(torch.tensor([50.0]), generator=torch.Generator().manual_seed(3))
    _check_invariants(s, 1, tiny_flow.n_layers)


def test_same_seed_same_output(tiny_flow: ShowerFlow) -> None:
    e = torch.linspace(10, 90, 64)
    a = tiny_flow.sample(e, generator=torch.Generator().manual_seed(7))
    b = tiny_flow.sample(e, generator=torch.Generator().manual_seed(7))
    c = tiny_flow.sample(e, generator=torch.Generator().manual_seed(8))
    for field in ("points_per_layer", "energy_per_layer_mev", "cog_mm"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert not torch.equal(a.energy_per_layer_mev, c.energy_per_layer_mev)


def test_outside_training_range_warns_but_stays_valid(tiny_flow: ShowerFlow) -> None:
    with pytest.warns(EnergyRangeWarning, match="training range"):
        s = tiny_flow.sample(torch.tensor([0.1, 1.0, 500.0, 1e4]), generator=torch.Generator().manual_seed(0))
    _check_invariants(s, 4, tiny_flow.n_layers)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tiny_flow.sample(torch.tensor([10.0, 90.0]))  # the edges themselves do not warn


@pytest.mark.parametrize("bad", [0.0, -5.0, float("nan"), float("inf")])
def test_invalid_energy_is_rejected(tiny_flow: ShowerFlow, bad: float) -> None:
    with pytest.raises(ValueError, match="incident_energy_gev"):
        tiny_flow.sample(torch.tensor([50.0, bad]))


def test_checkpoint_is_plain_and_reload_needs_no_seed(tiny_run, tiny_flow: ShowerFlow) -> None:
    ckpt = torch.load(tiny_run / MODEL_NAME, weights_only=True)
    assert ckpt["format_version"] == FORMAT_VERSION
    assert {"config", "preprocessing", "state_dict"} <= set(ckpt)
    assert isinstance(ckpt["config"]["flow"], dict)
    assert any(k.startswith("perm_") for k in ckpt["state_dict"])
    e = torch.linspace(10, 90, 32)
    expected = tiny_flow.sample(e, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(12345)  # a different global seed must not matter
    again = load_shower_flow(tiny_run / MODEL_NAME)
    got = again.sample(e, generator=torch.Generator().manual_seed(1))
    assert torch.equal(got.points_per_layer, expected.points_per_layer)
    torch.testing.assert_close(got.energy_per_layer_mev, expected.energy_per_layer_mev)


def test_bad_checkpoint_is_a_clear_error(tmp_path) -> None:
    from caloclouds.errors import InputFileError

    with pytest.raises(InputFileError, match="not found"):
        load_shower_flow(tmp_path / "nope.pt")
    torch.save({"kind": "something_else"}, tmp_path / "other.pt")
    with pytest.raises(InputFileError, match="not a Shower Flow checkpoint"):
        load_shower_flow(tmp_path / "other.pt")


def test_extra_conditions(tiny_flow: ShowerFlow) -> None:
    import dataclasses

    from flows.features import ShowerFeatures
    from flows.preprocessing import FeaturePreprocessing

    import numpy as np

    rng = np.random.default_rng(0)
    n, layers = 50, 4
    counts = rng.integers(1, 20, (n, layers))
    f = ShowerFeatures(rng.uniform(10, 90, n), counts, counts * 0.5, rng.normal(size=(n, 2)), rng.normal(size=(n, 2)))
    flow = ShowerFlow(FeaturePreprocessing.fit(f), dataclasses.replace(tiny_flow.config, condition_names=("a", "b")))
    s = flow.sample(torch.tensor([20.0, 30.0]), extra_conditions=torch.zeros(2, 2))
    _check_invariants(s, 2, layers)
    with pytest.raises(ValueError, match="extra_conditions"):
        flow.sample(torch.tensor([20.0, 30.0]))


@pytest.mark.gpu
def test_cuda_sampling(tiny_run) -> None:
    flow = load_shower_flow(tiny_run, map_location="cuda")
    e = torch.linspace(10, 90, 100, device="cuda")
    a = flow.sample(e, generator=torch.Generator(device="cuda").manual_seed(0))
    b = flow.sample(e, generator=torch.Generator(device="cuda").manual_seed(0))
    assert a.points_per_layer.device.type == "cuda"
    assert torch.equal(a.points_per_layer, b.points_per_layer)
    _check_invariants(FlowSample(**{k: v.cpu() for k, v in a.__dict__.items()}), 100, flow.n_layers)
