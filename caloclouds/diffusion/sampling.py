"""Noise schedules and samplers: small pure functions of (denoiser, x, sigmas).

A denoiser is any callable ``denoiser(x, sigma, *, cond) -> denoised`` (an :class:`EDMDenoiser`);
the samplers pass ``cond`` through without reading it, so they work unchanged on ragged batches
(``x`` (P, 4) with the per-point shower index inside ``cond``). Randomness comes in as a
``torch.Generator``. ``callback`` is called after each step with a dict of ``x``, ``i``, ``sigma``,
``sigma_next`` and ``denoised``.

References:
    Karras, Aittala, Aila, Laine, "Elucidating the Design Space of Diffusion-Based Generative
    Models" (2022); Song, Dhariwal, Chen, Sutskever, "Consistency Models" (2023).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from caloclouds.errors import ConfigError

__all__ = ["karras_sigmas", "consistency_sigmas", "sample_euler", "sample_heun", "sample_consistency"]

Callback = Callable[[dict[str, Any]], None]


def karras_sigmas(
    n: int,
    sigma_min: float,
    sigma_max: float,
    rho: float = 7.0,
    *,
    append_zero: bool = True,
    device: torch.device | str = "cpu",
) -> Tensor:
    """The Karras noise schedule of ``n`` levels from sigma_max down to sigma_min (Eq. 5).

    Returns:
        (n + 1,) with a final 0 when ``append_zero``, else (n,).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64) if n > 1 else torch.zeros(1, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    if append_zero:
        sigmas = torch.cat([sigmas, sigmas.new_zeros(1)])
    return sigmas.to(device=device, dtype=torch.float32)


@torch.no_grad()
def sample_euler(
    denoiser: Callable[..., Tensor],
    x: Tensor,
    sigmas: Tensor,
    *,
    cond: Any,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """Implements Algorithm 2 (Euler steps) from Karras et al. (2022), deterministic.

    ``x`` is the starting noise already scaled by ``sigmas[0]``.
    """
    del generator  # deterministic sampler; kept for the shared signature
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = denoiser(x, sigma, cond=cond)
        d = (x - denoised) / sigma
        x = x + d * (sigma_next - sigma)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigma, "sigma_next": sigma_next, "denoised": denoised})
    return x


@torch.no_grad()
def sample_heun(
    denoiser: Callable[..., Tensor],
    x: Tensor,
    sigmas: Tensor,
    *,
    cond: Any,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """Implements Algorithm 1 (Heun steps) from Karras et al. (2022), deterministic (S_churn = 0).

    Two network evaluations per step, and a final Euler step when the next sigma is 0.
    """
    del generator
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = denoiser(x, sigma, cond=cond)
        d = (x - denoised) / sigma
        x_next = x + d * (sigma_next - sigma)
        if sigma_next > 0:
            d_next = (x_next - denoiser(x_next, sigma_next, cond=cond)) / sigma_next
            x_next = x + (d + d_next) / 2 * (sigma_next - sigma)
        x = x_next
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigma, "sigma_next": sigma_next, "denoised": denoised})
    return x


def consistency_sigmas(steps: int, levels: Tensor) -> Tensor:
    """The ``steps`` noise levels of multistep consistency sampling, picked from the distillation grid.

    A consistency model is trained only at the discrete levels of its distillation (``levels``,
    decreasing, without zero), so the re-noising levels are taken from that grid, evenly spaced in
    index: 1 step gives ``[levels[0]]``; K steps give K evaluations.

    Raises:
        ConfigError: ``steps`` is not in 1 .. len(levels) - 1.
    """
    if not 1 <= steps < len(levels):
        # a user setting (--steps): ConfigError is a ValueError that the CLI prints as one line
        raise ConfigError(f"consistency sampling takes 1 to {len(levels) - 1} steps, got {steps}")
    picks = torch.linspace(0, len(levels) - 1, steps + 1)[:-1].round().long()
    return levels[picks.to(levels.device)]


@torch.no_grad()
def sample_consistency(
    model: Callable[..., Tensor],
    x: Tensor,
    sigmas: Tensor,
    *,
    cond: Any,
    sigma_min: float,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """Implements Algorithm 1 (multistep consistency sampling) from Song et al. (2023).

    ``x`` is noise scaled by ``sigmas[0]``. The first evaluation maps it to data in one step; each
    further sigma (zeros are ignored) re-noises to that level and maps back again.
    """
    sigma0 = sigmas[0]
    x = model(x, sigma0, cond=cond)
    if callback is not None:
        callback({"x": x, "i": 0, "sigma": sigma0, "sigma_next": sigma0, "denoised": x})
    for i, sigma in enumerate(sigmas[1:], start=1):
        if sigma <= sigma_min:
            continue
        z_device = generator.device if generator is not None else x.device
        z = torch.randn(x.shape, generator=generator, device=z_device, dtype=x.dtype).to(x.device)
        x_t = x + z * (sigma**2 - sigma_min**2).sqrt()
        x = model(x_t, sigma, cond=cond)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigma, "sigma_next": sigma, "denoised": x})
    return x
