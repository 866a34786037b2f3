"""The compiled sampling path (flows/script.py, ShowerFlow.sample) against the pyro transforms, bit for bit."""

from __future__ import annotations

import torch
from torch import Tensor

from flows import ShowerFlow, load_shower_flow
from flows.preprocessing import decode_statistics


def _inputs(flow: ShowerFlow, n: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    lo, hi = flow.energy_range_gev
    energy = lo + (hi - lo) * torch.rand(n, generator=g)
    # wide noise: points inside and outside the splines' interval (the identity tails)
    noise = 3.0 * torch.randn(n, flow.preprocessing.dim, generator=g)
    return energy, flow.preprocessing.encode_condition(energy), noise


def test_chain_equals_pyro_transforms(tiny_flow: ShowerFlow) -> None:
    chain = tiny_flow._sampling_chain()
    with torch.inference_mode():
        for n, seed in [(1, 0), (1, 1), (1, 2), (64, 3)]:
            _, cond, noise = _inputs(tiny_flow, n, seed)
            assert torch.equal(chain(noise, cond), tiny_flow.model.sample_from_noise(noise, cond))


def test_sample_equals_reference_path(tiny_flow: ShowerFlow) -> None:
    """sample() = randn -> pyro transforms -> decode_statistics in plain Python, for batch 1 and more."""
    pre = tiny_flow.preprocessing
    for n, seed in [(1, 4), (1, 5), (17, 6)]:
        energy, cond, _ = _inputs(tiny_flow, n, seed)
        got = tiny_flow.sample(energy, generator=torch.Generator().manual_seed(seed))
        with torch.inference_mode():
            noise = torch.randn(n, pre.dim, generator=torch.Generator().manual_seed(seed))
            z = tiny_flow.model.sample_from_noise(noise, cond)
            points, energies, cog = decode_statistics(
                z, energy, pre.mean, pre.std, pre.lo, pre.hi, pre.fallback_frac, pre.point_frac_scale,
                pre.energy_frac_scale, pre.n_layers,
            )  # fmt: skip
        assert torch.equal(got.points_per_layer, points) and torch.equal(got.n_points, points.sum(1))
        assert torch.equal(got.energy_per_layer_mev, energies)
        assert torch.equal(got.visible_energy_mev, energies.sum(1))
        assert torch.equal(got.cog_mm, cog)


def test_chain_follows_replaced_parameters(tiny_run) -> None:
    flow = load_shower_flow(tiny_run)
    chain = flow._sampling_chain()
    assert flow._sampling_chain() is chain  # compiled once
    changed = {k: v + 0.01 if v.is_floating_point() else v for k, v in flow.model.state_dict().items()}
    flow.model.load_state_dict(changed, assign=True)  # new parameter tensors
    new_chain = flow._sampling_chain()
    assert new_chain is not chain
    _, cond, noise = _inputs(flow, 8, 7)
    with torch.inference_mode():
        assert torch.equal(new_chain(noise, cond), flow.model.sample_from_noise(noise, cond))
