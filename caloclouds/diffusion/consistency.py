"""Consistency models: distilled from an EDM teacher, or trained without one (Song et al. 2023).

:class:`ConsistencyDenoiser` is an :class:`EDMDenoiser` with the boundary-condition
parameterisation ``c_skip = sd^2 / ((sigma - sigma_min)^2 + sd^2)``,
``c_out = (sigma - sigma_min) sd / sqrt(sigma^2 + sd^2)``, so that ``f(x, sigma_min) = x`` exactly.
:func:`consistency_distillation_loss` is the per-point CD loss with one teacher Heun step between
adjacent Karras levels. :func:`consistency_training_loss` is the per-point CT loss: both levels
are noised with the same noise, no teacher; with :func:`ct_num_levels` (the discretisation
curriculum) and :func:`ct_level_probabilities` (log-normal choice of the level) it is improved
consistency training.

References:
    Song, Dhariwal, Chen, Sutskever, "Consistency Models" (2023), Algorithm 2 (CD), Algorithm 3
    (CT) and Eq. 7.
    Song, Dhariwal, "Improved Techniques for Training Consistency Models" (2023): pseudo-Huber loss,
    weighting 1 / (sigma_{i+1} - sigma_i), no EMA in the target, exponential curriculum N(k),
    log-normal level sampling.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from caloclouds.diffusion.edm import EDMDenoiser, RaggedCond

__all__ = [
    "ConsistencyDenoiser",
    "consistency_distillation_loss",
    "consistency_training_loss",
    "ct_level_probabilities",
    "ct_num_levels",
    "teacher_heun_step",
]

CT_S0 = 10  # Initial number of CT discretisation intervals (Song & Dhariwal 2023).
CT_S1 = 1280  # Final number of CT discretisation intervals.
CT_P_MEAN = -1.1  # Mean of ln(sigma) of the log-normal level distribution.
CT_P_STD = 2.0  # Standard deviation of ln(sigma) of the log-normal level distribution.
CT_HUBER_C = 0.00054  # Pseudo-Huber constant per sqrt(feature): c = 0.00054 sqrt(d).


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


def ct_num_levels(step: int, total_steps: int, *, s0: int = CT_S0, s1: int = CT_S1) -> int:
    """Number of Karras levels N(k) at optimiser step ``step`` of ``total_steps`` (0-based).

    The exponential curriculum of Song & Dhariwal (2023), Eq. 11:
    ``N(k) = min(s0 * 2^floor(k / K'), s1) + 1`` with ``K' = floor(K / (log2 floor(s1 / s0) + 1))``.
    """
    doublings = math.floor(math.log2(s1 // s0)) + 1
    k_prime = max(total_steps // doublings, 1)
    return min(s0 * 2 ** (step // k_prime), s1) + 1


def ct_level_probabilities(sigmas: Tensor, *, p_mean: float = CT_P_MEAN, p_std: float = CT_P_STD) -> Tensor:
    """Probabilities (N-1,) of the level index n (pair ``sigmas[n] > sigmas[n+1]``) under a log-normal.

    ``p(n) ~ erf((ln sigmas[n] - p_mean) / (sqrt 2 p_std)) - erf((ln sigmas[n+1] - p_mean) / (sqrt 2 p_std))``
    (Song & Dhariwal 2023, Sec. 3.5), normalised; ``sigmas`` runs from sigma_max down to sigma_min.
    """
    cdf = torch.erf((sigmas.double().log() - p_mean) / (math.sqrt(2.0) * p_std))
    p = cdf[:-1] - cdf[1:]
    return (p / p.sum()).float()


def consistency_training_loss(
    student: Callable[..., Tensor],
    target: Callable[..., Tensor],
    x: Tensor,
    noise: Tensor,
    level: Tensor,
    sigmas: Tensor,
    *,
    cond: RaggedCond,
    huber_c: float | None = None,
    weighted: bool = True,
) -> Tensor:
    """Per-point consistency-training loss (P,): pseudo-Huber distance over features, weighted.

    Args:
        student: the consistency model being trained, ``f_theta``.
        target: the network of the target, without gradients: ``f_theta`` itself (improved CT) or
            an EMA of it (CT of Song et al. 2023).
        x: (P, F) clean data.
        noise: (P, F) standard normal noise, shared by both levels.
        level: (B,) int64 index n in {0, ..., N-2} per shower into ``sigmas``.
        sigmas: (N,) Karras levels from sigma_max down to sigma_min (no trailing 0).
        cond: ragged conditioning.
        huber_c: pseudo-Huber constant c (default ``0.00054 sqrt(F)``; 0 gives the L2 distance).
        weighted: multiply by ``1 / (t - t')``, the weighting of Song & Dhariwal (2023).

    Returns:
        ``lambda (sqrt(|f_theta(x + t z, t) - f_target(x + t' z, t')|^2 + c^2) - c)`` per point, where
        ``t = sigmas[n]``, ``t' = sigmas[n+1]`` and z is ``noise``: the unbiased one-sample estimate
        of the ODE step that distillation takes with a teacher (Algorithm 3).
    """
    c = CT_HUBER_C * math.sqrt(x.shape[-1]) if huber_c is None else float(huber_c)
    t, t_next = cond.per_point(sigmas[level]), cond.per_point(sigmas[level + 1])
    with torch.no_grad():
        target_out = target(x + noise * t_next, sigmas[level + 1], cond=cond)
    student_out = student(x + noise * t, sigmas[level], cond=cond)
    dist2 = (student_out.float() - target_out.float()).pow(2).sum(dim=-1)
    loss = (dist2 + c * c).sqrt() - c
    if weighted:
        loss = loss / (t - t_next).float().squeeze(-1)
    return loss
