"""Consistency models distilled from an EDM teacher (Song et al. 2023).

:class:`ConsistencyDenoiser` is an :class:`EDMDenoiser` with the boundary-condition
parameterisation ``c_skip = sd^2 / ((sigma - sigma_min)^2 + sd^2)``,
``c_out = (sigma - sigma_min) sd / sqrt(sigma^2 + sd^2)``, so that ``f(x, sigma_min) = x`` exactly.
:func:`consistency_distillation_loss` is the per-point CD loss with one teacher Heun step between
adjacent Karras levels.

References:
    Song, Dhariwal, Chen, Sutskever, "Consistency Models" (2023), Algorithm 2 (CD) and Eq. 7.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from caloclouds.diffusion.edm import EDMDenoiser, RaggedCond

__all__ = ["ConsistencyDenoiser", "consistency_distillation_loss", "teacher_heun_step"]


class ConsistencyDenoiser(EDMDenoiser):
    """Consistency function ``f(x, sigma)`` with ``f(x, sigma_min) = x``.

    Args:
        inner: the raw network (a PointWiseNet).
        sigma_data: spread of the data.
        sigma_min: the boundary noise level.
    """

    def __init__(self, inner: nn.Module, sigma_data: float = 0.5, *, sigma_min: float = 0.002) -> None:
        super().__init__(inner, sigma_data)
        self.sigma_min = float(sigma_min)

    def scalings(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Boundary-condition scalings (Song et al. 2023, Appendix C)."""
        sd2 = self.sigma_data**2
        shifted = sigma - self.sigma_min
        c_skip = sd2 / (shifted**2 + sd2)
        c_out = shifted * self.sigma_data / (sigma**2 + sd2).sqrt()
        c_in = 1 / (sigma**2 + sd2).sqrt()
        return c_skip, c_out, c_in


@torch.no_grad()
def teacher_heun_step(
    teacher: Callable[..., Tensor],
    x_t: Tensor,
    t: Tensor,
    t_next: Tensor,
    *,
    cond: RaggedCond,
) -> Tensor:
    """One Heun step of the probability-flow ODE from ``t`` to ``t_next`` (both (B,) per shower)."""
    tp, tnp = cond.per_point(t), cond.per_point(t_next)
    d = (x_t - teacher(x_t, t, cond=cond)) / tp
    x_euler = x_t + (tnp - tp) * d
    d_next = (x_euler - teacher(x_euler, t_next, cond=cond)) / tnp
    return x_t + (tnp - tp) * (d + d_next) / 2


def consistency_distillation_loss(
    student: Callable[..., Tensor],
    target: Callable[..., Tensor],
    teacher: Callable[..., Tensor],
    x: Tensor,
    noise: Tensor,
    level: Tensor,
    sigmas: Tensor,
    *,
    cond: RaggedCond,
) -> Tensor:
    """Per-point consistency-distillation loss (P,), mean squared error over features.

    Args:
        student: the consistency model being trained, ``f_theta``.
        target: its EMA, ``f_theta^-`` (no gradients).
        teacher: the EDM denoiser used for the ODE step.
        x: (P, F) clean data.
        noise: (P, F) standard normal noise.
        level: (B,) int64 index n in {0, ..., N-2} per shower into ``sigmas``.
        sigmas: (N,) Karras levels from sigma_max down to sigma_min (no trailing 0).
        cond: ragged conditioning.

    Returns:
        ``|f_theta(x_t, t) - f_theta^-(x_t', t')|^2`` averaged over features, per point, where
        ``t = sigmas[n]``, ``t' = sigmas[n+1]`` and ``x_t'`` is the teacher's Heun step from ``x_t``.
    """
    t, t_next = sigmas[level], sigmas[level + 1]
    x_t = x + noise * cond.per_point(t)
    x_next = teacher_heun_step(teacher, x_t, t, t_next, cond=cond)
    with torch.no_grad():
        target_out = target(x_next, t_next, cond=cond)
    student_out = student(x_t, t, cond=cond)
    return (student_out.float() - target_out.float()).pow(2).mean(dim=-1)
