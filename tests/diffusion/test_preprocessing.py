from __future__ import annotations

import numpy as np
import torch

from caloclouds.diffusion.preprocessing import PointNormaliser

from .conftest import make_toy_showers


def _fit() -> tuple[PointNormaliser, torch.Tensor]:
    s = make_toy_showers()
    norm = PointNormaliser.fit(
        s.points, s.offsets, s.incident_energy_gev, n_layers=30, subcell_pitch_mm=5.088333 / 6, sigma_data=0.5
    )
    return norm, torch.from_numpy(s.points)


def test_round_trip_continuous_depth() -> None:
    norm, pts = _fit()
    pts = pts.clone()
    pts[:, 2] += torch.rand(len(pts), generator=torch.Generator().manual_seed(0))  # continuous depth
    back = norm.inverse(norm.forward(pts))
    torch.testing.assert_close(back, pts, rtol=1e-4, atol=1e-4)


def test_round_trip_with_jitter_keeps_layer_and_subcell() -> None:
    norm, pts = _fit()
    back = norm.inverse(norm.forward(pts, jitter=True, generator=torch.Generator().manual_seed(1)))
    assert torch.equal(back[:, 2].floor(), pts[:, 2])
    half = norm.subcell_pitch_mm / 2 + 1e-3
    assert (back[:, :2] - pts[:, :2]).abs().max() <= half
    torch.testing.assert_close(back[:, 3], pts[:, 3], rtol=1e-4, atol=0)


def test_features_standardised_and_no_mirror() -> None:
    norm, pts = _fit()
    z = norm.forward(pts, jitter=True, generator=torch.Generator().manual_seed(2))
    std = z.std(dim=0)
    assert torch.all((std > 0.4) & (std < 0.6)), std
    # the map is monotonic increasing in every feature (no mirror image)
    order = torch.argsort(pts[:, 3])
    assert torch.all(torch.diff(z[order, 3]) >= 0)
    assert float(norm.inverse(torch.tensor([[1.0, 0.0, 0.0, 0.0]]))[0, 0]) > 0


def test_inverse_clamps_depth_and_dict_round_trip() -> None:
    norm, _ = _fit()
    out = norm.inverse(torch.tensor([[0.0, 0.0, 100.0, 0.0], [0.0, 0.0, -100.0, 0.0]]))
    assert 0 <= float(out[:, 2].min()) and float(out[:, 2].max()) < norm.n_layers
    assert PointNormaliser.from_dict(norm.to_dict()) == norm
    cond = norm.conditions(torch.tensor([10.0, 90.0]), torch.tensor([100, 300]))
    assert cond.shape == (2, 2) and np.isfinite(cond.numpy()).all()


def test_per_layer_features_are_standardised_too() -> None:
    """The per-layer fit standardises the point energy itself (it once took the layer means' spread)."""
    s = make_toy_showers()
    norm = PointNormaliser.fit(
        s.points,
        s.offsets,
        s.incident_energy_gev,
        n_layers=30,
        subcell_pitch_mm=5.088333 / 6,
        sigma_data=0.5,
        per_layer=True,
    )
    z = norm.forward(torch.from_numpy(s.points), jitter=True, generator=torch.Generator().manual_seed(3))
    assert z.shape[1] == 3
    torch.testing.assert_close(z.std(dim=0), torch.full((3,), 0.5), rtol=0.2, atol=0)
    assert abs(float(z[:, 2].mean())) < 0.05
    assert norm.log_e_point_mean != norm.log_e_mean
