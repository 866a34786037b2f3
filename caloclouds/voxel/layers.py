"""A small dedicated model of the per-layer energies given the incident energy.

The vector ``y = [log(E_l + floor) for each layer l, log(sum_l E_l)]`` is modelled as a Gaussian
whose mean is quadratic and whose per-component standard deviation is linear in ``t = log E_inc``
(least-squares fits), with a constant correlation matrix of the standardised residuals. A sample
takes its longitudinal shape from the layer components and is rescaled so that the layers sum to
the sampled total: the total's narrow spread is then kept exactly, instead of being blown up by
the log-normal tails of single layers. It is fitted in closed form on the training set, costs
nothing to train and lives in the voxel checkpoint as buffers. It is the fallback source of layer
energies when no Shower Flow is given; layers whose sampled energy is below zero come out empty.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["LayerEnergyModel"]

_MIN_STD = 1e-4  # Floor of the fitted per-layer std of log(E_l + floor).
_CORR_JITTER = 1e-5  # Added to the correlation diagonal before the Cholesky factorisation.


def _design(t: Tensor, degree: int) -> Tensor:
    return torch.stack([t**k for k in range(degree + 1)], dim=1)


class LayerEnergyModel(nn.Module):
    """Gaussian ``log(E_l + floor) | log E_inc`` with quadratic mean and linear std.

    Args:
        n_layers: number of layers L.
        floor_mev: the floor added before the log.
    """

    def __init__(self, n_layers: int, *, floor_mev: float = 0.1) -> None:
        super().__init__()
        self.floor_mev = float(floor_mev)
        self.register_buffer("t_mean", torch.zeros((), dtype=torch.float64))
        self.register_buffer("t_std", torch.ones((), dtype=torch.float64))
        self.n_layers = int(n_layers)
        # one component per layer plus the log of the total
        self.register_buffer("mean_coef", torch.zeros(3, n_layers + 1, dtype=torch.float64))
        self.register_buffer("std_coef", torch.zeros(2, n_layers + 1, dtype=torch.float64))
        self.register_buffer("corr_chol", torch.eye(n_layers + 1, dtype=torch.float64))

    def _t(self, incident_energy_gev: Tensor) -> Tensor:
        return (incident_energy_gev.double().log() - self.t_mean) / self.t_std

    @torch.no_grad()
    def fit(self, incident_energy_gev: Tensor, layer_energy_mev: Tensor) -> LayerEnergyModel:
        """Least-squares fit on (N,) energies and (N, L) layer energies; returns self."""
        t_raw = incident_energy_gev.double().log()
        self.t_mean.copy_(t_raw.mean())
        self.t_std.copy_(t_raw.std().clamp_min(_MIN_STD) if len(t_raw) > 1 else torch.ones(()))
        t = self._t(incident_energy_gev)
        layers = layer_energy_mev.double().clamp_min(0)
        total = layers.sum(dim=1, keepdim=True).clamp_min(self.floor_mev)
        y = torch.cat([(layers + self.floor_mev).log(), total.log()], dim=1)
        mean_coef = torch.linalg.lstsq(_design(t, 2), y).solution
        resid = y - _design(t, 2) @ mean_coef
        # E|r| = std * sqrt(2/pi) for a Gaussian: fit |r| linearly in t, rescale.
        abs_coef = torch.linalg.lstsq(_design(t, 1), resid.abs()).solution * (torch.pi / 2) ** 0.5
        std = (_design(t, 1) @ abs_coef).clamp_min(_MIN_STD)
        corr = torch.corrcoef((resid / std).T) if len(t) > 2 else torch.eye(y.shape[1], dtype=torch.float64)
        corr = torch.nan_to_num(corr) + _CORR_JITTER * torch.eye(y.shape[1], dtype=torch.float64)
        self.mean_coef.copy_(mean_coef)
        self.std_coef.copy_(abs_coef)
        self.corr_chol.copy_(torch.linalg.cholesky(corr))
        return self

    def mean_log(self, incident_energy_gev: Tensor) -> Tensor:
        """(B, L + 1) mean of ``[log(E_l + floor), log(E_total)]``."""
        return _design(self._t(incident_energy_gev), 2) @ self.mean_coef

    @torch.no_grad()
    def sample(self, incident_energy_gev: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """(B, L) float32 layer energies in MeV (>= 0)."""
        t = self._t(incident_energy_gev)
        std = (_design(t, 1) @ self.std_coef).clamp_min(_MIN_STD)
        z = torch.randn(len(t), self.corr_chol.shape[0], generator=generator, dtype=torch.float64, device=t.device)
        y = self.mean_log(incident_energy_gev) + std * (z @ self.corr_chol.T)
        layers = (y[:, : self.n_layers].exp() - self.floor_mev).clamp_min(0)
        scale = y[:, self.n_layers :].exp() / layers.sum(dim=1, keepdim=True).clamp_min(torch.finfo(layers.dtype).tiny)
        return (layers * scale).float()
