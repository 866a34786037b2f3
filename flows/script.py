"""The sampling direction of the Shower Flow's transform chain in plain torch (TorchScript-able).

pyro builds its ``Transform`` objects on every call; for one shower that bookkeeping costs ~10 ms on
one CPU thread, far more than the maths. :class:`TransformChain` runs the same maths with the same
parameter tensors (it holds the flow's own networks, not copies), base noise -> standardised
statistics, exactly as ``ShowerFlowModel.sample_from_noise`` (tested bit for bit). ``ShowerFlow.sample``
uses it; the DDML export scripts it. Only base -> data: densities stay with pyro.

References:
    Dinh et al., "Density estimation using Real NVP", arXiv:1605.08803 (affine coupling).
    Durkan et al., "Neural Spline Flows", arXiv:1906.04032 (rational-quadratic spline, eqs. 4-6).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CouplingStep", "SplineStep", "TransformChain"]

# the same constant as flows.transforms (a softplus shift that gives derivative 1 at raw = 0)
_SOFTPLUS_ONE = 0.5413248546129181


def _constant(value: float, like: nn.Module) -> Tensor:
    """A 0-dim CPU tensor in the dtype of ``like``'s parameters. TorchScript runs ``tensor * float``
    as a scalar op that first converts the float to a tensor (~3 us per op at batch 1); a CPU 0-dim
    tensor of the same value is used the same way by the kernels (same bits, on any device)."""
    return torch.tensor(value, dtype=next(like.parameters()).dtype)


class CouplingStep(nn.Module):
    """Affine coupling (``flows.transforms._AffineCoupling._call``) followed by a permutation."""

    def __init__(self, net: nn.Module, split: int, scale_bound: float, perm: Tensor) -> None:
        super().__init__()
        self.net = net
        self.split = int(split)
        self.scale_bound = _constant(scale_bound, net)
        self.register_buffer("perm", perm.clone())

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        x1, x2 = x[:, : self.split], x[:, self.split :]
        shift, raw = self.net(torch.cat([x1, context], dim=-1)).chunk(2, dim=-1)
        log_scale = torch.tanh(raw / self.scale_bound) * self.scale_bound
        y = torch.cat([x1, torch.addcmul(shift, x2, torch.exp(log_scale))], dim=-1)
        return y.index_select(1, self.perm)


class SplineStep(nn.Module):
    """Rational-quadratic spline (``flows.transforms._RQSpline._call``) followed by a permutation."""

    def __init__(
        self,
        net: nn.Module,
        features: int,
        bins: int,
        bound: float,
        min_bin: float,
        min_derivative: float,
        perm: Tensor,
    ) -> None:
        super().__init__()
        self.net = net
        self.features, self.bins, self.bound = int(features), int(bins), float(bound)
        k = self.bins
        # the scalars of _RQSpline, computed in Python floats in the same order as there
        self.bin_scale = _constant((1 - min_bin * k) * 2 * bound, net)
        self.bin_offset = _constant(min_bin * 2 * bound, net)
        self.bound_t = _constant(bound, net)
        self.softplus_one = _constant(_SOFTPLUS_ONE, net)
        self.min_derivative = _constant(min_derivative, net)
        self.one = _constant(1.0, net)
        self.register_buffer("perm", perm.clone())

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        k, bound = self.bins, self.bound
        raw, d_raw = self.net(context).unflatten(-1, [self.features, 3 * k - 1]).split([2 * k, k - 1], dim=-1)
        wh = torch.softmax(raw.unflatten(-1, [2, k]), dim=-1) * self.bin_scale + self.bin_offset
        right = torch.cumsum(wh, dim=-1) - self.bound_t
        deriv = F.pad(F.softplus(d_raw + self.softplus_one) + self.min_derivative, [1, 1], value=1.0)
        x_inner = right[..., 0, :-1]
        rows = torch.cat([right - wh, wh, torch.stack([deriv[..., :-1], deriv[..., 1:]], dim=-2)], dim=-2)
        table = rows.transpose(-1, -2)  # (B, D, K, 6)
        xc = x.clamp(-bound, bound)
        idx = (xc.unsqueeze(-1) >= x_inner).sum(-1, keepdim=True).unsqueeze(-1)
        picked = torch.gather(table, -2, idx.expand(-1, -1, -1, 6)).squeeze(-2)
        x_k, y_k, w, h, d0, d1 = picked.unbind(-1)
        s = h / w
        xi = (xc - x_k) / w
        t = xi * (self.one - xi)
        denom = s + (d1 + d0 - (s + s)) * t  # s + s: 2 * s exactly, without a scalar op
        y = torch.where(xc == x, y_k + h * (s * xi * xi + d0 * t) / denom, x)
        return y.index_select(1, self.perm)


class TransformChain(nn.Module):
    """``ShowerFlowModel.sample_from_noise`` as plain modules: ``chain(noise, cond)`` (B, D), (B, C) -> (B, D)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        from flows import transforms as flow_transforms

        steps: list[nn.Module] = []
        i_coupling = i_spline = n_perm = 0
        kinds = list(model.kinds)
        for i, kind in enumerate(kinds):
            if kind == "permute":
                continue
            if i + 1 >= len(kinds) or kinds[i + 1] != "permute":
                raise ValueError(f"unexpected flow layout {kinds}: every transform must be followed by a permutation")
            perm = getattr(model, f"perm_{n_perm}")
            n_perm += 1
            if kind == "coupling":
                c = model.couplings[i_coupling]
                steps.append(CouplingStep(c.net, c.split, c.scale_bound, perm))
                i_coupling += 1
            elif kind == "spline":
                s = model.splines[i_spline]
                steps.append(
                    SplineStep(
                        s.net,
                        s.features,
                        s.bins,
                        s.bound,
                        flow_transforms._MIN_BIN,
                        flow_transforms._MIN_DERIVATIVE,
                        perm,
                    )
                )
                i_spline += 1
            else:
                raise ValueError(f"unknown flow transform kind {kind!r}")
        self.steps = nn.ModuleList(steps)

    def forward(self, noise: Tensor, cond: Tensor) -> Tensor:
        x = noise
        for step in self.steps:
            x = step(x, cond)
        return x
