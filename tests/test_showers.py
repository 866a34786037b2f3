from __future__ import annotations

import numpy as np
import pytest

from caloclouds.showers import Showers


def make(rng: np.random.Generator, n: int = 5) -> Showers:
    counts = rng.integers(0, 20, size=n)
    pts = rng.normal(size=(counts.sum(), 4)).astype(np.float32)
    pts[:, 2] = rng.integers(0, 30, size=len(pts))
    pts[:, 3] = np.abs(pts[:, 3])
    return Showers.from_counts(pts, counts, rng.uniform(10, 90, size=n), {"angle": rng.normal(size=(n, 2))})


def test_indexing_matches_per_shower_views(rng):
    s = make(rng, 8)
    for idx in ([3, 1, 3], np.array([True, False] * 4), slice(2, 6), slice(None, None, 2)):
        sub = s[idx]
        chosen = np.arange(8)[idx]
        assert len(sub) == len(chosen)
        for k, i in enumerate(chosen):
            np.testing.assert_array_equal(sub.shower_points(k), s.shower_points(i))
            assert sub.conditions["angle"][k].tolist() == s.conditions["angle"][i].tolist()
    assert len(s[-1]) == 1
    with pytest.raises(IndexError):
        s[8]


def test_iteration_concatenation_and_sums(rng):
    s = make(rng, 6)
    parts = list(s)
    assert len(parts) == 6
    joined = Showers.concatenate(parts)
    np.testing.assert_array_equal(joined.points, s.points)
    np.testing.assert_array_equal(joined.offsets, s.offsets)
    sums = s.visible_energy_mev()
    for i in range(6):
        assert sums[i] == pytest.approx(float(s.shower_points(i)[:, 3].astype(np.float64).sum()), rel=1e-9)
    layer = s.layer_sums(30)
    np.testing.assert_allclose(layer.sum(axis=1), sums, rtol=1e-9)
    assert s.layer_counts(30).sum() == len(s.points)


def test_select_energy_and_awkward_round_trip(rng):
    s = make(rng, 10)
    sel = s.select_energy(30, 60)
    assert np.all((sel.incident_energy_gev >= 30) & (sel.incident_energy_gev <= 60))
    back = Showers.from_awkward(s.to_awkward(), s.incident_energy_gev)
    np.testing.assert_array_equal(back.points, s.points)
    np.testing.assert_array_equal(back.offsets, s.offsets)


def test_inconsistent_offsets_are_rejected():
    with pytest.raises(ValueError, match="offsets"):
        Showers(np.zeros((3, 4)), np.array([0, 2]), np.array([10.0]))
    with pytest.raises(ValueError, match="decrease"):
        Showers(np.zeros((3, 4)), np.array([0, 2, 1, 3]), np.ones(3))


def test_value_checks():
    s = Showers.from_list([np.array([[0, 0, 1, -1.0]])], [10.0])
    assert "negative energy" in s.check_values()
    s = Showers.from_list([np.array([[np.nan, 0, 1, 1.0]])], [10.0])
    assert "NaN" in s.check_values()


def test_centre_of_gravity():
    s = Showers.from_list([np.array([[1, 2, 0, 1.0], [3, 4, 1, 3.0]])], [10.0])
    np.testing.assert_allclose(s.centre_of_gravity_mm(), [[2.5, 3.5]])


# -- the ragged helpers (issue 16, item 6: one helper for each copy) ------------------------------


@pytest.mark.parametrize("counts", [[3, 0, 2, 1], [0], [], [5]])
def test_shower_index_numpy_and_torch_agree(counts):
    import torch

    from caloclouds.showers import shower_index, shower_index_torch

    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    expected = np.array([i for i, c in enumerate(counts) for _ in range(c)], dtype=np.int64)
    got = shower_index(offsets)
    assert got.dtype == np.int64 and np.array_equal(got, expected)
    assert np.array_equal(shower_index_torch(torch.as_tensor(offsets)).numpy(), expected)
    s = Showers.from_counts(np.zeros((int(sum(counts)), 4)), np.asarray(counts, np.int64), np.ones(len(counts)))
    assert np.array_equal(s.shower_index, expected)


def test_rotate_about_beam_axis_numpy_and_torch():
    import torch

    from caloclouds.showers import rotate_about_beam_axis, shower_index

    offsets = np.array([0, 2, 3])
    x, y = np.array([1.0, 0.0, 2.0]), np.array([0.0, 1.0, 0.0])
    angle = np.array([np.pi / 2, 0.0])
    xr, yr = rotate_about_beam_axis(
        torch.as_tensor(x), torch.as_tensor(y), torch.as_tensor(angle), torch.as_tensor(shower_index(offsets))
    )
    np.testing.assert_allclose(xr.numpy(), [0.0, -1.0, 2.0], atol=1e-12)
    np.testing.assert_allclose(yr.numpy(), [1.0, 0.0, 0.0], atol=1e-12)
    xn, yn = rotate_about_beam_axis(x, y, angle, shower_index(offsets))
    np.testing.assert_allclose(xn, xr.numpy())
    np.testing.assert_allclose(yn, yr.numpy())


def test_standardised_w1():
    from scipy.stats import wasserstein_distance

    from caloclouds.showers import standardised_w1

    rng = np.random.default_rng(0)
    a, b = rng.normal(0.3, 1.0, 500), rng.normal(0.0, 2.0, 400)
    assert standardised_w1(a, b) == float(wasserstein_distance(a, b) / max(np.std(b), 1e-12))  # default: std(b)
    assert standardised_w1(a, b, scale=1.0) == float(wasserstein_distance(a, b))
    assert standardised_w1(a, b, scale=0.0) == 0.0
    assert np.isnan(standardised_w1(a[:0], b)) and np.isnan(standardised_w1(a, b, b_weights=np.zeros(len(b))))
    w = rng.uniform(0, 1, len(a))
    assert standardised_w1(a, b, scale=2.0, a_weights=w) == float(wasserstein_distance(a, b, w) / 2.0)
