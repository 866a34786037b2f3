"""A TorchScript-compatible copy of the Shower Flow's sampling path (pure torch, same weights).

The pyro flow (``flows.ShowerFlow``) builds pyro ``Transform`` objects on every call, which
TorchScript cannot compile. :class:`ScriptShowerFlow` runs ``flows.script.TransformChain`` (the
transforms' sampling maths on the same parameters) and ``flows.preprocessing.decode_statistics``
(the decoding that ``ShowerFlow.sample`` runs), so for the same base noise it returns the same n_l
and E_l as ``ShowerFlow.sample`` (tested bit for bit on the bundled flow).

Only sampling (base -> data) is implemented: the export never evaluates a density.

References:
    Dinh et al., "Density estimation using Real NVP", arXiv:1605.08803 (affine coupling).
    Durkan et al., "Neural Spline Flows", arXiv:1906.04032 (rational-quadratic spline, eqs. 4-6).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flows.preprocessing import decode_statistics
from flows.script import TransformChain

__all__ = ["ScriptShowerFlow"]


class ScriptShowerFlow(nn.Module):
    """Shower Flow sampling in TorchScript: (energy, base noise) -> n_l, E_l.

    Args:
        flow: a loaded ``flows.ShowerFlow`` (its networks are shared, its buffers copied).
    """

    def __init__(self, flow: nn.Module) -> None:
        super().__init__()
        model, pre = flow.model, flow.preprocessing
        if pre.condition_dim != 1:
            msg = (
                f"the export supports flows conditioned on the energy only; this one has {pre.condition_dim} conditions"
            )
            raise ValueError(msg)
        self.n_layers = int(pre.n_layers)
        self.dim = int(pre.dim)
        self.chain = TransformChain(model)
        for name in (
            "mean",
            "std",
            "lo",
            "hi",
            "condition_mean",
            "condition_std",
            "point_frac_scale",
            "energy_frac_scale",
            "energy_range_gev",
        ):
            self.register_buffer(name, getattr(pre, name).detach().clone().float())
        self.register_buffer("fallback_frac", pre.fallback_frac.detach().clone().float())

    def forward(self, incident_energy_gev: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        """Shower statistics for base ``noise`` (B, D) at ``incident_energy_gev`` (B,).

        Returns:
            ``points_per_layer`` (B, L) int64 and ``energy_per_layer_mev`` (B, L) float32, as
            ``ShowerFlow.sample`` for the same noise.
        """
        points_per_layer, energy_per_layer, _ = self.sample_with_cog(incident_energy_gev, noise)
        return points_per_layer, energy_per_layer

    def sample_with_cog(self, incident_energy_gev: Tensor, noise: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """As :meth:`forward`, plus the transverse centre of gravity ``cog_mm`` (B, 2)."""
        cond = (torch.log(incident_energy_gev).unsqueeze(1) - self.condition_mean) / self.condition_std
        return self.decode(self.chain(noise, cond), incident_energy_gev)

    def decode(self, z: Tensor, incident_energy_gev: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``FeaturePreprocessing.decode`` (n_l, E_l and the CoG x, y)."""
        return decode_statistics(
            z,
            incident_energy_gev,
            self.mean,
            self.std,
            self.lo,
            self.hi,
            self.fallback_frac,
            self.point_frac_scale,
            self.energy_frac_scale,
            self.n_layers,
        )
