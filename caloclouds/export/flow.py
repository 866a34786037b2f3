"""A TorchScript-compatible copy of the Shower Flow's sampling path (pure torch, same weights).

The pyro flow (``flows.ShowerFlow``) builds pyro ``Transform`` objects on every call, which
TorchScript cannot compile. :class:`ScriptShowerFlow` runs ``flows.script.TransformChain`` (the
transforms' sampling maths on the same parameters) and ``flows.preprocessing.decode_statistics``
(the decoding that ``ShowerFlow.sample`` runs), so for the same base noise it returns the same n_l
and E_l as ``ShowerFlow.sample`` (tested bit for bit on the bundled flow).

A flow conditioned on the direction of incidence (``flow.condition_names: [theta_deg]``, issue 25)
takes θ in degrees as its one extra condition, after log E_inc, as ``ShowerFlow.sample(...,
extra_conditions=θ)`` does; a flow with any other extra condition is refused.

Only sampling (base -> data) is implemented: the export never evaluates a density.

References:
    Dinh et al., "Density estimation using Real NVP", arXiv:1605.08803 (affine coupling).
    Durkan et al., "Neural Spline Flows", arXiv:1906.04032 (rational-quadratic spline, eqs. 4-6).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from caloclouds.showers import THETA
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
        names = tuple(flow.config.condition_names)
        if names not in ((), (THETA,)) or pre.condition_dim != 1 + len(names):
            msg = (
                "the export supports flows conditioned on the energy alone or on the energy and "
                f"{THETA}; this one has {pre.condition_dim} conditions (extra: {list(names)})"
            )
            raise ValueError(msg)
        self.direction = names == (THETA,)  # theta_deg is the one extra condition
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

    def forward(
        self, incident_energy_gev: Tensor, noise: Tensor, theta_deg: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Shower statistics for base ``noise`` (B, D) at ``incident_energy_gev`` (B,) and, for a
        flow conditioned on the direction, ``theta_deg`` (B, 1) (None: 0, normal incidence).

        Returns:
            ``points_per_layer`` (B, L) int64 and ``energy_per_layer_mev`` (B, L) float32, as
            ``ShowerFlow.sample`` for the same noise.
        """
        points_per_layer, energy_per_layer, _ = self.sample_with_cog(incident_energy_gev, noise, theta_deg)
        return points_per_layer, energy_per_layer

    def sample_with_cog(
        self, incident_energy_gev: Tensor, noise: Tensor, theta_deg: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """As :meth:`forward`, plus the transverse centre of gravity ``cog_mm`` (B, 2) (for a flow
        conditioned on the direction, in the frame of the inclined axis)."""
        log_e = torch.log(incident_energy_gev).unsqueeze(1)
        if self.direction:  # FeaturePreprocessing.encode_condition: log E_inc, then theta_deg
            theta = torch.zeros_like(log_e) if theta_deg is None else theta_deg.reshape(-1, 1).to(log_e.dtype)
            log_e = torch.cat([log_e, theta], dim=1)
        cond = (log_e - self.condition_mean) / self.condition_std
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
