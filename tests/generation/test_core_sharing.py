"""Core energy sharing (``generation.core_radius_mm``): what it keeps, what it changes, and where it is applied."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from caloclouds.config import ConfigError, GenerationConfig, config_from_dict
from caloclouds.generation.bundle import load_bundle
from caloclouds.generation.calibration import share_core_energy
from caloclouds.generation.generator import ShowerGenerator
from caloclouds.showers import shower_index_torch

# the normal-incidence model shipped until 2026-12-08, whose generation shares its core (cog: flow)
SHIPPED = Path(__file__).resolve().parents[2] / "caloclouds" / "models" / "ild_normal_incidence"


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    n = torch.tensor([40, 0, 25])
    layers = [torch.sort(torch.randint(0, 30, (int(k),), generator=g)).values for k in n]
    xy = torch.randn(int(n.sum()), 2, generator=g) * 4.0
    e = torch.rand(int(n.sum()), generator=g) * 5
    points = torch.cat([xy, torch.cat(layers).float()[:, None], e[:, None]], dim=1)
    offsets = torch.zeros(4, dtype=torch.long)
    offsets[1:] = torch.cumsum(n, 0)
    return points, offsets


def _share(points: torch.Tensor, offsets: torch.Tensor, radius_mm: float) -> tuple[torch.Tensor, torch.Tensor]:
    return share_core_energy(points, shower_index_torch(offsets), len(offsets) - 1, radius_mm, 1.0)


def _per_layer(points: torch.Tensor, offsets: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    shower = torch.repeat_interleave(torch.arange(len(offsets) - 1), offsets[1:] - offsets[:-1])
    key = shower * 30 + points[:, 2].long()
    return torch.zeros(90, dtype=torch.float64).index_add_(0, key, values.double())


def test_sharing_keeps_energy_and_position_of_every_layer() -> None:
    points, offsets = _batch()
    out, new_offsets = _share(points, offsets, 3.0)
    core = torch.hypot(points[:, 0], points[:, 1]) < 3.0
    assert int(core.sum()) > 3  # the test shares something
    assert torch.equal(
        new_offsets[1:] - new_offsets[:-1],
        (offsets[1:] - offsets[:-1])
        + torch.tensor([3 * int(core[offsets[b] : offsets[b + 1]].sum()) for b in range(3)]),
    )
    e, e2 = points[:, 3], out[:, 3]
    torch.testing.assert_close(_per_layer(out, new_offsets, e2), _per_layer(points, offsets, e))
    for col in (0, 1):  # energy-weighted x and y of each (shower, layer): the CoG does not move
        torch.testing.assert_close(
            _per_layer(out, new_offsets, e2 * out[:, col]),
            _per_layer(points, offsets, e * points[:, col]),
            atol=1e-4,
            rtol=1e-5,
        )
    for b in range(3):  # still grouped by ascending layer within each shower
        layers = out[new_offsets[b] : new_offsets[b + 1], 2]
        assert torch.all(layers[1:] >= layers[:-1])
    far = out[torch.repeat_interleave(~core, 1 + 3 * core.long())]
    torch.testing.assert_close(far, points[~core])  # points outside the radius are untouched


def test_shared_copies_sit_at_plus_minus_spread() -> None:
    points = torch.tensor([[0.5, -0.2, 4.0, 8.0], [10.0, 0.0, 4.0, 1.0]])
    out, offsets = _share(points, torch.tensor([0, 2]), 3.0)
    assert offsets.tolist() == [0, 5]
    torch.testing.assert_close(out[:4, :2], torch.tensor([[-0.5, -1.2], [1.5, -1.2], [-0.5, 0.8], [1.5, 0.8]]))
    assert out[:4, 3].tolist() == [2.0] * 4 and out[:4, 2].tolist() == [4.0] * 4
    torch.testing.assert_close(out[4], points[1])


def test_radius_zero_is_the_identity() -> None:
    points, offsets = _batch()
    out, new_offsets = _share(points, offsets, 0.0)
    assert out is points and torch.equal(new_offsets, offsets)


def test_generation_settings_are_checked() -> None:
    assert config_from_dict({}).generation == GenerationConfig()  # old configs: rotate, no sharing
    with pytest.raises(ConfigError, match="generation.cog"):
        config_from_dict({"generation": {"cog": "sideways"}})
    with pytest.raises(ConfigError, match="generation.core_spread_mm"):
        config_from_dict({"generation": {"core_spread_mm": float("nan")}})


def test_shipped_bundle_shares_its_core_and_follows_the_flow_cog() -> None:
    bundle = load_bundle(SHIPPED)
    settings = bundle.config.generation
    assert settings.cog == "flow" and settings.core_radius_mm > 0
    torch.set_num_threads(1)
    energies = np.array([20.0, 80.0], dtype=np.float32)
    gen = ShowerGenerator(bundle)
    assert gen.cog == "flow"
    shared = gen.generate(energies, generator=torch.Generator().manual_seed(2))
    drawn = ShowerGenerator(bundle, share_core=False).generate(energies, generator=torch.Generator().manual_seed(2))
    assert (shared.n_points > drawn.n_points).all()
    np.testing.assert_allclose(shared.visible_energy_mev(), drawn.visible_energy_mev(), rtol=1e-5)
    np.testing.assert_allclose(shared.centre_of_gravity_mm(), drawn.centre_of_gravity_mm(), atol=1e-3)
    # an explicit cog overrides the bundle's
    assert ShowerGenerator(bundle, cog="rotate").cog == "rotate"
    plain = dataclasses.replace(bundle.config, generation=GenerationConfig())
    assert plain.generation.core_radius_mm == 0.0
