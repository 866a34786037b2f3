"""A TorchScript-compatible copy of the Shower Flow's sampling path (pure torch, same weights).

The pyro flow (``flows.ShowerFlow``) builds pyro ``Transform`` objects on every call, which
TorchScript cannot compile. :class:`ScriptShowerFlow` repeats the sampling maths of
``flows.transforms`` and ``flows.preprocessing.FeaturePreprocessing.decode`` with the same
parameter tensors, so for the same base noise it returns the same n_l and E_l as
``ShowerFlow.sample`` (tested bit for bit on the bundled flow).

Only sampling (base -> data) is implemented: the export never evaluates a density.

References:
    Dinh et al., "Density estimation using Real NVP", arXiv:1605.08803 (affine coupling).
    Durkan et al., "Neural Spline Flows", arXiv:1906.04032 (rational-quadratic spline, eqs. 4-6).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ScriptShowerFlow", "script_largest_remainder_round"]

# the same constants as flows.transforms (a softplus shift that gives derivative 1 at raw = 0)
_SOFTPLUS_ONE = 0.5413248546129181


def script_largest_remainder_round(fractions: Tensor, totals: Tensor) -> Tensor:
    """``flows.preprocessing.largest_remainder_round`` in TorchScript: (B, L) int64 rows summing to totals."""
    exact = fractions * totals.unsqueeze(1)
    base = torch.floor(exact)
    deficit = totals - base.sum(dim=1).to(torch.int64)
    rank = torch.sort(torch.sort(base - exact, dim=1).indices, dim=1).indices  # argsort(argsort)
    return base.to(torch.int64) + (rank < deficit.unsqueeze(1)).to(torch.int64)


class _CouplingStep(nn.Module):
    """Affine coupling (``flows.transforms._AffineCoupling._call``) followed by a permutation."""

    def __init__(self, net: nn.Module, split: int, scale_bound: float, perm: Tensor) -> None:
        super().__init__()
        self.net = copy.deepcopy(net)
        self.split = int(split)
        self.scale_bound = float(scale_bound)
        self.register_buffer("perm", perm.clone())

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        x1, x2 = x[:, : self.split], x[:, self.split :]
        params = self.net(torch.cat([x1, context], dim=-1)).chunk(2, dim=-1)
        shift, raw = params[0], params[1]
        log_scale = torch.tanh(raw / self.scale_bound) * self.scale_bound
        y = torch.cat([x1, torch.addcmul(shift, x2, torch.exp(log_scale))], dim=-1)
        return y.index_select(1, self.perm)


class _SplineStep(nn.Module):
    """Rational-quadratic spline (``flows.transforms._RQSpline._call``) followed by a permutation."""

    def __init__(self, net: nn.Module, features: int, bins: int, bound: float, min_bin: float,
                 min_derivative: float, perm: Tensor) -> None:
        super().__init__()
        self.net = copy.deepcopy(net)
        self.features, self.bins, self.bound = int(features), int(bins), float(bound)
        self.min_bin, self.min_derivative = float(min_bin), float(min_derivative)
        self.softplus_one = _SOFTPLUS_ONE
        self.register_buffer("perm", perm.clone())

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        k, bound = self.bins, self.bound
        params = self.net(context).unflatten(-1, [self.features, 3 * k - 1]).split([2 * k, k - 1], dim=-1)
        raw, d_raw = params[0], params[1]
        wh = torch.softmax(raw.unflatten(-1, [2, k]), dim=-1) * ((1 - self.min_bin * k) * 2 * bound) \
            + self.min_bin * 2 * bound
        right = torch.cumsum(wh, dim=-1) - bound
        x_inner = right[..., 0, :-1]
        deriv = F.pad(F.softplus(d_raw + self.softplus_one) + self.min_derivative, [1, 1], value=1.0)
        rows = torch.cat([right - wh, wh, torch.stack([deriv[..., :-1], deriv[..., 1:]], dim=-2)], dim=-2)
        table = rows.transpose(-1, -2)  # (B, D, K, 6)
        xc = x.clamp(-bound, bound)
        idx = (xc.unsqueeze(-1) >= x_inner).sum(-1, keepdim=True).unsqueeze(-1)
        picked = torch.gather(table, -2, idx.expand(xc.shape[0], xc.shape[1], 1, 6)).squeeze(-2)
        x_k, y_k, w, h = picked[..., 0], picked[..., 1], picked[..., 2], picked[..., 3]
        d0, d1 = picked[..., 4], picked[..., 5]
        s = h / w
        xi = (xc - x_k) / w
        t = xi * (1 - xi)
        denom = s + (d1 + d0 - 2 * s) * t
        y = torch.where(xc == x, y_k + h * (s * xi * xi + d0 * t) / denom, x)
        return y.index_select(1, self.perm)


class ScriptShowerFlow(nn.Module):
    """Shower Flow sampling in TorchScript: (energy, base noise) -> n_l, E_l.

    Args:
        flow: a loaded ``flows.ShowerFlow`` (its weights and buffers are copied).
    """

    def __init__(self, flow: nn.Module) -> None:
        super().__init__()
        from flows import transforms as flow_transforms

        model, pre = flow.model, flow.preprocessing
        if pre.condition_dim != 1:
            msg = f"the export supports flows conditioned on the energy only; this one has {pre.condition_dim} conditions"
            raise ValueError(msg)
        self.n_layers = int(pre.n_layers)
        self.dim = int(pre.dim)
        steps: list[nn.Module] = []
        i_coupling = i_spline = 0
        n_perm = 0
        kinds = list(model.kinds)
        for i, kind in enumerate(kinds):
            if kind == "permute":
                continue
            if kinds[i + 1] != "permute":
                msg = f"unexpected flow layout {kinds}: every transform must be followed by a permutation"
                raise ValueError(msg)
            perm = getattr(model, f"perm_{n_perm}")
            n_perm += 1
            if kind == "coupling":
                c = model.couplings[i_coupling]
                steps.append(_CouplingStep(c.net, c.split, c.scale_bound, perm))
                i_coupling += 1
            elif kind == "spline":
                s = model.splines[i_spline]
                steps.append(_SplineStep(s.net, s.features, s.bins, s.bound, flow_transforms._MIN_BIN,
                                         flow_transforms._MIN_DERIVATIVE, perm))
                i_spline += 1
            else:
                raise ValueError(f"unknown flow transform kind {kind!r}")
        self.steps = nn.ModuleList(steps)
        for name in ("mean", "std", "lo", "hi", "condition_mean", "condition_std", "point_frac_scale",
                     "energy_frac_scale", "energy_range_gev"):
            self.register_buffer(name, getattr(pre, name).detach().clone().float())
        self.register_buffer("fallback_frac", pre.fallback_frac.detach().clone().float())

    def forward(self, incident_energy_gev: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        """Shower statistics for base ``noise`` (B, D) at ``incident_energy_gev`` (B,).

        Returns:
            ``points_per_layer`` (B, L) int64 and ``energy_per_layer_mev`` (B, L) float32, as
            ``ShowerFlow.sample`` for the same noise.
        """
        cond = (torch.log(incident_energy_gev).unsqueeze(1) - self.condition_mean) / self.condition_std
        x = noise
        for step in self.steps:
            x = step(x, cond)
        return self.decode(x, incident_energy_gev)

    def decode(self, z: Tensor, incident_energy_gev: Tensor) -> tuple[Tensor, Tensor]:
        """``FeaturePreprocessing.decode`` (n_l, E_l only)."""
        z = torch.minimum(torch.maximum(torch.nan_to_num(z, nan=0.0), self.lo), self.hi)
        y = torch.addcmul(self.mean, z, self.std)
        n_layers = self.n_layers
        totals = torch.exp(y[:, :2])
        n_points = torch.round(totals[:, 0]).clamp_min(1.0).to(torch.int64)
        e_vis = totals[:, 1] * incident_energy_gev * 1000.0
        point_frac = torch.addcmul(self.fallback_frac, y[:, 4 : 4 + n_layers].clamp_min(0.0).square(),
                                   self.point_frac_scale)
        point_frac = point_frac / point_frac.sum(dim=1, keepdim=True)
        points_per_layer = script_largest_remainder_round(point_frac, n_points)
        energy_frac = torch.addcmul(self.fallback_frac, y[:, 4 + n_layers :].clamp_min(0.0).square(),
                                    self.energy_frac_scale)
        energy_frac = energy_frac * (points_per_layer > 0)
        energy_per_layer = energy_frac * (e_vis.unsqueeze(1) / energy_frac.sum(dim=1, keepdim=True))
        return points_per_layer, energy_per_layer
