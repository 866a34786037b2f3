"""The conditional normalising flow of the Shower Flow (pyro), after CaloClouds II/3 (§2.2).

``ShowerFlowModel(cond)`` returns a pyro distribution over the D standardised statistics, so
``model(cond).log_prob(x)`` trains it and ``model(cond).sample()`` draws from it. The pattern is,
repeated ``n_blocks`` times:

    (affine coupling, permutation) x couplings_per_block, conditional spline, permutation

Every permutation is a registered buffer: the state dict alone rebuilds the flow, no global seed
is involved when a checkpoint is loaded.

References:
    Buss et al., "CaloClouds II: ultra-fast geometry-independent highly-granular calorimeter
    simulation", JINST 19 (2024) P04020, arXiv:2309.05704.
    Dinh et al., "Density estimation using Real NVP", arXiv:1605.08803.
    Durkan et al., "Neural Spline Flows", arXiv:1906.04032.
"""

from __future__ import annotations

import pyro.distributions as pdist
import pyro.distributions.transforms as T
import torch
from torch import Tensor, nn

from caloclouds.config import FlowConfig
from flows.transforms import ConditionalAffineCouplingTanh, ConditionalRQSpline

__all__ = ["ShowerFlowModel"]


class ShowerFlowModel(nn.Module):
    """Conditional flow over ``features`` dims given a ``context``-dim condition.

    Args:
        features: D, the number of modelled statistics.
        context: C, the condition width (1 for E_inc, plus extra conditions).
        config: depth, widths and spline settings (``FlowConfig``).
    """

    def __init__(self, features: int, context: int, config: FlowConfig) -> None:
        super().__init__()
        if features < 2:
            raise ValueError(f"'features' should be >= 2 for coupling layers, got {features}")
        self.features, self.context = features, context
        gen = torch.Generator().manual_seed(config.permutation_seed)  # only at construction
        self.couplings = nn.ModuleList()
        self.splines = nn.ModuleList()
        self.kinds: list[str] = []
        n_perm = 0
        for _ in range(config.n_blocks):
            for _ in range(config.couplings_per_block):
                self.couplings.append(ConditionalAffineCouplingTanh(features, context, config.coupling_hidden))
                self.kinds += ["coupling", "permute"]
                self.register_buffer(f"perm_{n_perm}", torch.randperm(features, generator=gen))
                n_perm += 1
            self.splines.append(
                ConditionalRQSpline(
                    features, context, config.spline_hidden, bins=config.spline_bins, bound=config.spline_bound
                )
            )
            self.kinds += ["spline", "permute"]
            self.register_buffer(f"perm_{n_perm}", torch.randperm(features, generator=gen))
            n_perm += 1
        self.register_buffer("base_loc", torch.zeros(features))
        self.register_buffer("base_scale", torch.ones(features))

    def transforms(self, cond: Tensor) -> list[T.Transform]:
        """The chain of transforms (base -> data) conditioned on ``cond`` (B, C)."""
        out: list[T.Transform] = []
        i_coupling = i_spline = i_perm = 0
        for kind in self.kinds:
            if kind == "coupling":
                out.append(self.couplings[i_coupling].condition(cond))
                i_coupling += 1
            elif kind == "spline":
                out.append(self.splines[i_spline].condition(cond))
                i_spline += 1
            else:
                out.append(T.Permute(getattr(self, f"perm_{i_perm}")))
                i_perm += 1
        return out

    def forward(self, cond: Tensor) -> pdist.TransformedDistribution:
        """The distribution of the D statistics given ``cond`` (B, C); batch shape (B,)."""
        if cond.ndim != 2 or cond.shape[1] != self.context:
            raise ValueError(f"'cond' should have shape (B, {self.context}), got {tuple(cond.shape)}")
        base = pdist.Normal(self.base_loc, self.base_scale).expand((cond.shape[0], self.features)).to_event(1)
        return pdist.TransformedDistribution(base, self.transforms(cond))

    def sample_from_noise(self, noise: Tensor, cond: Tensor) -> Tensor:
        """Push base noise (B, D) through the flow: the sample for that noise (for seeded sampling)."""
        x = noise
        for t in self.transforms(cond):
            x = t(x)
        return x
