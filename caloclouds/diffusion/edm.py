"""EDM preconditioning and loss for ragged point clouds (Karras et al. 2022).

A ragged batch is the concatenation of the points of B showers, ``x`` (P, F), with a
:class:`RaggedCond` holding the per-shower conditions and the per-point shower index. Noise
levels are per shower (``sigma`` (B,)) or one scalar for all showers (sampling).

References:
    Karras, Aittala, Aila, Laine, "Elucidating the Design Space of Diffusion-Based Generative
    Models" (2022), Table 1 (preconditioning) and Sec. 5 (log-normal sigma, loss weighting).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from caloclouds.showers import shower_index_torch

__all__ = ["RaggedCond", "EDMDenoiser", "sample_log_normal_sigma", "per_shower_mean"]


@dataclass(frozen=True)
class RaggedCond:
    """Conditioning of a ragged batch.

    Attributes:
        features: (B, C) per-shower condition features (standardised).
        shower_index: (P,) int64 shower of each point, or None when B == 1.
    """

    features: Tensor
    shower_index: Tensor | None

    @property
    def n_showers(self) -> int:
        return self.features.shape[0]

    def per_point(self, values: Tensor) -> Tensor:
        """Per-shower (B,) values as a (P, 1) or broadcastable column; scalars pass through."""
        if values.ndim == 0:
            return values
        if self.shower_index is None:
            return values.reshape(1, 1)
        return values[self.shower_index][:, None]

    @classmethod
    def from_offsets(cls, features: Tensor, offsets: Tensor) -> RaggedCond:
        """Build from (B+1,) offsets (the shower index is omitted for a single shower)."""
        if features.shape[0] == 1:
            return cls(features, None)
        return cls(features, shower_index_torch(offsets))


def per_shower_mean(values: Tensor, cond: RaggedCond) -> Tensor:
    """Mean of per-point ``values`` (P,) over the points of each shower -> (B,)."""
    if cond.shower_index is None:
        return values.mean().reshape(1)
    b = cond.n_showers
    sums = torch.zeros(b, dtype=values.dtype, device=values.device).index_add_(0, cond.shower_index, values)
    counts = torch.bincount(cond.shower_index, minlength=b).to(values.dtype)
    return sums / counts.clamp_min(1)


def sample_log_normal_sigma(
    n: int,
    *,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """ln(sigma) ~ N(p_mean, p_std^2), shape (n,) (Karras et al. 2022, Sec. 5)."""
    z = torch.randn(n, generator=generator, device=device)
    return (p_mean + p_std * z).exp()


class EDMDenoiser(nn.Module):
    """Karras preconditioning ``D(x; sigma) = c_skip x + c_out F(c_in x, c_noise)``.

    Args:
        inner: the raw network ``F(x, c_noise, cond_features, shower_index)`` (a PointWiseNet).
        sigma_data: spread of the (normalised) data.
    """

    def __init__(self, inner: nn.Module, sigma_data: float = 0.5) -> None:
        super().__init__()
        self.inner = inner
        self.sigma_data = float(sigma_data)

    def scalings(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(c_skip, c_out, c_in)`` of Karras et al. (2022), Table 1, same shape as ``sigma``."""
        sd2 = self.sigma_data**2
        c_skip = sd2 / (sigma**2 + sd2)
        c_out = sigma * self.sigma_data / (sigma**2 + sd2).sqrt()
        c_in = 1 / (sigma**2 + sd2).sqrt()
        return c_skip, c_out, c_in

    @staticmethod
    def c_noise(sigma: Tensor) -> Tensor:
        """Noise-level input of the network, ln(sigma) / 4."""
        return sigma.log() / 4

    def _per_shower_sigma(self, sigma: Tensor, cond: RaggedCond, like: Tensor) -> Tensor:
        sigma = torch.as_tensor(sigma, dtype=like.dtype, device=like.device)
        return sigma.expand(cond.n_showers) if sigma.ndim == 0 else sigma

    def forward(self, x: Tensor, sigma: Tensor, *, cond: RaggedCond) -> Tensor:
        """Denoised points ``D(x; sigma)`` (P, F); ``sigma`` is a scalar or (B,) per shower."""
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        c_skip, c_out, c_in = self.scalings(sigma)
        sigma_b = self._per_shower_sigma(sigma, cond, x)
        f = self.inner(x * cond.per_point(c_in), self.c_noise(sigma_b), cond.features, cond.shower_index)
        return cond.per_point(c_skip) * x + cond.per_point(c_out) * f.to(x.dtype)

    def loss(self, x: Tensor, noise: Tensor, sigma: Tensor, *, cond: RaggedCond) -> Tensor:
        """Per-point EDM loss (P,), the mean over features of the lambda(sigma)-weighted error.

        ``|F(c_in x_n, c_noise) - (x - c_skip x_n) / c_out|^2`` with ``x_n = x + sigma noise``,
        which equals ``lambda(sigma) |D(x_n) - x|^2`` with the EDM weighting. Reduce it per shower
        with :func:`per_shower_mean`, then over showers.
        """
        sigma = self._per_shower_sigma(sigma, cond, x)
        c_skip, c_out, c_in = (cond.per_point(c) for c in self.scalings(sigma))
        noised = x + noise * cond.per_point(sigma)
        f = self.inner(noised * c_in, self.c_noise(sigma), cond.features, cond.shower_index)
        target = (x - c_skip * noised) / c_out
        return (f.float() - target.float()).pow(2).mean(dim=-1)
