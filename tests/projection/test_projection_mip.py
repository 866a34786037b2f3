"""HGCal: the MIP threshold follows each cell's silicon thickness (issue 15)."""

from __future__ import annotations

import numpy as np
import pytest

import projection
from caloclouds.showers import Showers
from projection.mip import landau_mpv_mev, mip_mev_for_thickness


def test_landau_mpv_matches_known_values() -> None:
    mpv = landau_mpv_mev([500.0, 300.0, 200.0, 120.0])
    np.testing.assert_allclose(mpv, [0.1449, 0.0842, 0.0547, 0.0317], rtol=2e-3)
    assert mip_mev_for_thickness(500.0, reference_mip_mev=0.147) == pytest.approx(0.147)


def test_hgcal_threshold_per_thickness(shared) -> None:
    shared("hgcal_ce_e_26layers.npz")
    geometry = projection.get_geometry("hgcal")
    thickness = geometry.extras["silicon_thickness_um"]
    assert set(np.unique(thickness)) == {120.0, 200.0, 300.0}
    rng = np.random.default_rng(0)
    n = 4000
    pts = np.c_[rng.uniform(-150, 150, (n, 2)), rng.integers(0, 30, n), rng.exponential(0.05, n)].astype(np.float32)
    showers = Showers.from_counts(pts, [n], [50.0])
    raw = projection.project(showers, geometry)
    cut = projection.project(showers, geometry, threshold_mip=0.5, mip_mev=0.147)
    expected = raw.e_mev >= 0.5 * mip_mev_for_thickness(thickness[raw.cell_id], reference_mip_mev=0.147)
    np.testing.assert_array_equal(cut.cell_id, raw.cell_id[expected])
    assert cut.below_threshold_mev[0] == pytest.approx(raw.e_mev[~expected].sum(), rel=1e-5)
    assert len(np.unique(thickness[cut.cell_id])) == 3
    import torch

    hits = projection.project_torch(
        torch.from_numpy(showers.points), torch.from_numpy(showers.offsets), geometry, threshold_mip=0.5, mip_mev=0.147
    ).numpy()
    np.testing.assert_array_equal(hits.cell_id, cut.cell_id)
