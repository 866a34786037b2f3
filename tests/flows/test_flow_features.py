"""Flow targets, the invertible preprocessing and the largest-remainder rounding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from caloclouds.showers import Showers
from flows.features import ShowerFeatures, compute_features, file_features
from flows.preprocessing import FeaturePreprocessing, largest_remainder_round


def _showers() -> Showers:
    a = np.array([[1.0, 0.0, 0, 2.0], [-1.0, 2.0, 1, 1.0], [0.0, 0.0, 1, 1.0], [5.0, 5.0, 7, 3.0]])  # layer 7 outside
    b = np.array([[0.5, -0.5, 2, 4.0]])
    return Showers.from_list([a, b], [10.0, 20.0])


def test_compute_features_counts_sums_and_cog() -> None:
    f = compute_features(_showers(), n_layers=3)
    np.testing.assert_array_equal(f.points_per_layer, [[1, 2, 0], [0, 0, 1]])
    np.testing.assert_allclose(f.energy_per_layer_mev, [[2.0, 2.0, 0.0], [0.0, 0.0, 4.0]])
    np.testing.assert_array_equal(f.n_points, [3, 1])  # the point outside the layers is ignored everywhere
    np.testing.assert_allclose(f.visible_energy_mev, [4.0, 4.0])
    np.testing.assert_allclose(f.cog_mm, [[0.25, 0.5], [0.5, -0.5]])
    assert f.conditions.shape == (2, 0)


def test_missing_condition_is_a_clear_error() -> None:
    from caloclouds.errors import InputFileError

    with pytest.raises(InputFileError, match="theta"):
        compute_features(_showers(), n_layers=3, condition_names=["theta"])


def test_file_features_chunked_and_cached(shared, tmp_path) -> None:
    path = shared("g4_photons_val_fixed.h5")
    f1 = file_features(path, n_layers=30, chunk_showers=250, cache_dir=tmp_path)
    cache = list(tmp_path.glob("features-g4_photons_val_fixed-*.npz"))
    assert len(cache) == 1
    f2 = file_features(path, n_layers=30, cache_dir=tmp_path)  # served from the cache
    f3 = file_features(path, n_layers=30, chunk_showers=1000)  # no cache, other chunking
    for a, b in ((f1, f2), (f1, f3)):
        np.testing.assert_array_equal(a.points_per_layer, b.points_per_layer)
        np.testing.assert_allclose(a.energy_per_layer_mev, b.energy_per_layer_mev)
    assert len(f1) == 600 and f1.n_layers == 30


def _synthetic(n: int = 400, layers: int = 6, seed: int = 0) -> ShowerFeatures:
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rng.uniform(0.5, 40, size=(n, layers)))
    counts[:, 0] = np.where(rng.random(n) < 0.3, 0, counts[:, 0])  # empty first layers, as in data
    counts[counts.sum(1) == 0, 1] = 1
    energy = np.where(counts > 0, counts * rng.gamma(2.0, 0.2, size=(n, layers)), 0.0)
    return ShowerFeatures(rng.uniform(10, 90, n), counts, energy, rng.normal(0, 0.3, (n, 2)), np.zeros((n, 0)))


def test_preprocessing_round_trip() -> None:
    f = _synthetic()
    pre = FeaturePreprocessing.fit(f)
    n_l, e_l, cog, energy, _ = pre.tensors_from(f)
    z = pre.encode(n_l, e_l, cog, energy)
    assert z.shape == (len(f), 4 + 2 * f.n_layers)
    torch.testing.assert_close(z.mean(0), torch.zeros(z.shape[1]), atol=1e-4, rtol=0)
    back = pre.decode(z, energy)
    np.testing.assert_array_equal(back["points_per_layer"].numpy(), f.points_per_layer)
    np.testing.assert_array_equal(back["n_points"].numpy(), f.n_points)
    np.testing.assert_allclose(back["energy_per_layer_mev"].numpy(), f.energy_per_layer_mev, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(back["visible_energy_mev"].numpy(), f.visible_energy_mev, rtol=1e-5)
    np.testing.assert_allclose(back["cog_mm"].numpy(), f.cog_mm, atol=1e-5)


def test_preprocessing_state_round_trip() -> None:
    pre = FeaturePreprocessing.fit(_synthetic())
    state = pre.to_state()
    again = FeaturePreprocessing.from_state(state)
    for k, v in pre.state_dict().items():
        torch.testing.assert_close(again.state_dict()[k], v)
    state["kinds"] = ["log"] * len(state["kinds"])
    with pytest.raises(ValueError, match="unsupported feature layout"):
        FeaturePreprocessing.from_state(state)


def test_decode_is_safe_for_any_input() -> None:
    pre = FeaturePreprocessing.fit(_synthetic())
    z = torch.tensor([[float("nan")] * pre.dim, [1e30] * pre.dim, [-1e30] * pre.dim, [-50.0] * pre.dim])
    out = pre.decode(z, torch.tensor([10.0, 50.0, 90.0, 1.0]))
    for v in out.values():
        assert torch.isfinite(v.float()).all()
    assert (out["n_points"] >= 1).all()
    assert torch.equal(out["points_per_layer"].sum(1), out["n_points"])
    assert (out["energy_per_layer_mev"] >= 0).all()
    assert (out["energy_per_layer_mev"][out["points_per_layer"] == 0] == 0).all()


def test_largest_remainder_round() -> None:
    gen = torch.Generator().manual_seed(0)
    frac = torch.rand(1000, 30, generator=gen) ** 4
    frac[:, :3] = 0
    frac[:, 10:20] = torch.randint(0, 3, (1000, 10), generator=gen) / 7.0  # many equal fractions
    frac = frac / frac.sum(1, keepdim=True)
    totals = torch.randint(1, 5000, (1000,), generator=gen)
    n = largest_remainder_round(frac, totals)
    assert n.dtype == torch.int64
    assert torch.equal(n.sum(1), totals)
    assert (n >= 0).all() and (n[:, :3] == 0).all()
    assert ((n - frac * totals.unsqueeze(1)).abs() < 1).all()


def test_largest_remainder_round_compiled_equals_python() -> None:
    """The flow rounds through caloclouds.rounding.largest_remainder_shares, in Python and compiled
    by TorchScript (the decoding of ShowerFlow.sample and of the export): the same split, equal
    fractional parts (ties) included."""
    gen = torch.Generator().manual_seed(1)
    jitter = torch.rand(500, 30, generator=gen) * (torch.rand(500, 30, generator=gen) < 0.5)
    frac = torch.randint(0, 4, (500, 30), generator=gen) + jitter  # half the entries integers: ties
    frac = frac / frac.sum(1, keepdim=True).clamp_min(1e-9)
    totals = torch.randint(1, 5000, (500,), generator=gen)
    scripted = torch.jit.script(largest_remainder_round)
    assert torch.equal(scripted(frac, totals), largest_remainder_round(frac, totals))
