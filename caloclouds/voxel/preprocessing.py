"""Voxel preprocessing: per-layer energy fractions -> standardised logits, and back.

Following CaloDiffusion's ``layer-logit-norm``, each layer's voxels are divided by the layer energy
(so the U-Net learns where the energy goes, not how much), mapped through
``logit(alpha + (1 - 2 alpha) x)`` and standardised with one mean and std fitted on the training
set. The per-shower conditions are the standardised ``log E_inc`` and ``log(E_l + floor)`` of every
layer. The inverse clips negative fractions to zero, renormalises each layer to sum to one and
scales it to the requested layer energies, so the generated layer energies are exactly the
targets (from the Shower Flow or the layer-energy model) before the voxel threshold.

References:
    Amram, Pedro, CaloDiffusion (2023), Sec. 3.3 (preprocessing); ``layer-logit-norm`` in its code.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["VoxelNormaliser"]

_MIN_STD = 1e-6  # Guard for the std of constant features.


class VoxelNormaliser(nn.Module):
    """Forward and inverse maps between voxel images (MeV) and the U-Net's space.

    Args:
        n_layers: number of layers L.
        alpha: logit regulariser.
        floor_mev: layer energies enter the conditions as ``log(E_l + floor_mev)``.
    """

    def __init__(self, n_layers: int, *, alpha: float = 1e-6, floor_mev: float = 0.1) -> None:
        super().__init__()
        self.alpha, self.floor_mev = float(alpha), float(floor_mev)
        self.register_buffer("logit_mean", torch.zeros(()))
        self.register_buffer("logit_std", torch.ones(()))
        self.register_buffer("cond_mean", torch.zeros(1 + n_layers))
        self.register_buffer("cond_std", torch.ones(1 + n_layers))

    @property
    def n_layers(self) -> int:
        return self.cond_mean.numel() - 1

    def _logit(self, images_mev: Tensor) -> Tensor:
        layer = images_mev.sum(dim=(-2, -1), keepdim=True)
        frac = images_mev / layer.clamp_min(torch.finfo(images_mev.dtype).tiny)
        o = self.alpha + (1 - 2 * self.alpha) * frac.clamp(0, 1)
        return (o / (1 - o)).log()

    def _raw_features(self, incident_energy_gev: Tensor, layer_energy_mev: Tensor) -> Tensor:
        return torch.cat(
            [incident_energy_gev.log()[:, None], (layer_energy_mev.clamp_min(0) + self.floor_mev).log()], dim=1
        )

    @torch.no_grad()
    def fit(self, images_mev: Tensor, incident_energy_gev: Tensor) -> VoxelNormaliser:
        """Fit the standardisation on training images (N, L, A, R) in MeV; returns self."""
        logits = self._logit(images_mev.double())
        self.logit_mean.copy_(logits.mean())
        self.logit_std.copy_(logits.std().clamp_min(_MIN_STD))
        feats = self._raw_features(incident_energy_gev.double(), images_mev.double().sum(dim=(-2, -1)))
        self.cond_mean.copy_(feats.mean(0))
        self.cond_std.copy_(feats.std(0).clamp_min(_MIN_STD) if len(feats) > 1 else torch.ones_like(self.cond_std))
        return self

    def features(self, incident_energy_gev: Tensor, layer_energy_mev: Tensor) -> Tensor:
        """(B, 1 + L) standardised conditions of the U-Net."""
        raw = self._raw_features(
            incident_energy_gev.to(self.cond_mean.dtype), layer_energy_mev.to(self.cond_mean.dtype)
        )
        return (raw - self.cond_mean) / self.cond_std

    def forward(self, images_mev: Tensor, incident_energy_gev: Tensor) -> tuple[Tensor, Tensor]:
        """Images (B, L, A, R) MeV -> (standardised logits (B, 1, L, A, R), conditions (B, 1 + L))."""
        x = (self._logit(images_mev) - self.logit_mean) / self.logit_std
        feats = self.features(incident_energy_gev, images_mev.sum(dim=(-2, -1)))
        return x[:, None].to(images_mev.dtype), feats.to(images_mev.dtype)

    def inverse(self, x: Tensor, layer_energy_mev: Tensor, *, min_voxel_mev: float = 0.0) -> Tensor:
        """U-Net space (B, 1, L, A, R) -> images (B, L, A, R) in MeV with the given layer energies.

        Args:
            x: standardised logits.
            layer_energy_mev: (B, L) target energy of each layer (layers <= 0 come out empty).
            min_voxel_mev: voxels below this energy after rescaling are set to 0.
        """
        logits = x[:, 0].double() * self.logit_std + self.logit_mean
        frac = ((torch.sigmoid(logits) - self.alpha) / (1 - 2 * self.alpha)).clamp_min(0)
        total = frac.sum(dim=(-2, -1), keepdim=True)
        target = layer_energy_mev.double().clamp_min(0)[:, :, None, None]
        images = (
            torch.where(total > 0, frac / total.clamp_min(torch.finfo(total.dtype).tiny), torch.zeros_like(frac))
            * target
        )
        if min_voxel_mev > 0:
            images = torch.where(images >= min_voxel_mev, images, torch.zeros_like(images))
        return images.float()
