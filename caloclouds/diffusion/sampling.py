"""Noise schedules, solvers and the one sampling entry point :func:`sample`.

A denoiser is any callable ``denoiser(x, sigma, *, cond) -> denoised`` (an :class:`EDMDenoiser`);
the solvers pass ``cond`` through without reading it, so they work unchanged on ragged batches
(``x`` (P, 4) with the per-point shower index inside ``cond``). Randomness comes in as a
``torch.Generator``. ``callback`` is called after each step with a dict of ``x``, ``i``, ``sigma``,
``sigma_next`` and ``denoised``.

Two choices are kept apart:

* which weights (the *model part*): ``"teacher"`` (an EDM denoiser, checkpoint kind ``"edm"``) or
  ``"cm"`` (its distilled consistency model);
* which solver (:data:`SOLVERS`): ``"heun"`` or ``"euler"`` integrate a teacher's probability-flow
  ODE on the Karras schedule; ``"consistency"`` runs a consistency model on its distillation grid.

Adding a solver touches only this file: write ``sample_<name>`` with the shared signature (``heun``
and ``euler`` are one function, :func:`sample_ode`, with and without the second-order correction)
and add a :class:`SolverSpec` to :data:`SOLVERS`. The deprecated ``sampler`` keyword (``"cm"``, or ``"edm"`` for
the teacher) names a model part; it goes through the one shim :func:`deprecated_sampler`.

References:
    Karras, Aittala, Aila, Laine, "Elucidating the Design Space of Diffusion-Based Generative
    Models" (2022); Song, Dhariwal, Chen, Sutskever, "Consistency Models" (2023).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from caloclouds.errors import ConfigError

__all__ = [
    "MODEL_PARTS",
    "SOLVERS",
    "ModelPart",
    "Solver",
    "SolverSpec",
    "consistency_sigmas",
    "default_solver",
    "deprecated_sampler",
    "karras_sigmas",
    "resolve_sampling",
    "sample",
    "sample_consistency",
    "sample_euler",
    "sample_heun",
    "sample_ode",
    "solver_sigmas",
]

Callback = Callable[[dict[str, Any]], None]
ModelPart = Literal["cm", "teacher"]
Solver = Literal["heun", "euler", "consistency"]

#: The model parts, and the checkpoint kind that holds each one.
MODEL_PARTS: dict[str, str] = {"cm": "cm", "teacher": "edm"}
# The deprecated ``sampler`` keyword's values and the model part each names; read only by deprecated_sampler.
_SAMPLER_PARTS: dict[str, str] = {"cm": "cm", "edm": "teacher"}


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


# ----------------------------------------------------------------------------
# Solvers of Karras et al. (2022): deterministic, on the teacher's denoiser.


@torch.no_grad()
def sample_ode(
    denoiser: Callable[..., Tensor],
    x: Tensor,
    sigmas: Tensor,
    *,
    cond: Any,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    second_order: bool = True,
) -> Tensor:
    """Implements Algorithms 1 (Heun steps, ``second_order``) and 2 (Euler steps) of Karras et al.
    (2022), deterministic (S_churn = 0).

    ``x`` is the starting noise already scaled by ``sigmas[0]``; ``generator`` is unused (shared
    signature). Each Euler step is corrected to a Heun step (a second network evaluation) when
    ``second_order`` and the next sigma is not 0, so the last step to sigma = 0 is an Euler step.
    """
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = denoiser(x, sigma, cond=cond)
        d = (x - denoised) / sigma
        x_next = x + d * (sigma_next - sigma)
        if second_order and sigma_next > 0:
            d_next = (x_next - denoiser(x_next, sigma_next, cond=cond)) / sigma_next
            x_next = x + (d + d_next) / 2 * (sigma_next - sigma)
        x = x_next
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigma, "sigma_next": sigma_next, "denoised": denoised})
    return x


#: Algorithm 1 (Heun steps) of Karras et al. (2022): :func:`sample_ode` with ``second_order``.
sample_heun = functools.partial(sample_ode, second_order=True)
#: Algorithm 2 (Euler steps) of Karras et al. (2022): :func:`sample_ode` without ``second_order``.
sample_euler = functools.partial(sample_ode, second_order=False)


# ----------------------------------------------------------------------------
# Multistep consistency sampling of Song et al. (2023), on a distilled model.


@torch.no_grad()
def sample_consistency(
    model: Callable[..., Tensor],
    x: Tensor,
    sigmas: Tensor,
    *,
    cond: Any,
    sigma_min: float | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """Implements Algorithm 1 (multistep consistency sampling) from Song et al. (2023).

    ``x`` is noise scaled by ``sigmas[0]``. The first evaluation maps it to data in one step; each
    further sigma (levels at or below ``sigma_min``, default ``model.sigma_min``, are skipped)
    re-noises to that level and maps back again.
    """
    if sigma_min is None:
        sigma_min = float(model.sigma_min)  # type: ignore[attr-defined]
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


# ----------------------------------------------------------------------------
# The solver table and the one entry point.


@dataclass(frozen=True)
class SolverSpec:
    """A solver: its function and the model part whose weights it runs on."""

    fn: Callable[..., Tensor]  # sample_<name>(denoiser, x, sigmas, *, cond, generator, callback)
    part: str  # "teacher": Karras schedule with a final 0; "cm": the distillation grid.


SOLVERS: dict[str, SolverSpec] = {
    "heun": SolverSpec(sample_heun, "teacher"),
    "euler": SolverSpec(sample_euler, "teacher"),
    "consistency": SolverSpec(sample_consistency, "cm"),
}


def _spec(solver: str) -> SolverSpec:
    if solver not in SOLVERS:
        raise ConfigError(f"unknown solver {solver!r}; valid solvers are {sorted(SOLVERS)}")
    return SOLVERS[solver]


def default_solver(part: str) -> str:
    """The solver used for a model part when none is asked for (the first in :data:`SOLVERS`)."""
    if part not in MODEL_PARTS:
        raise ConfigError(f"unknown model part {part!r}; valid parts are {sorted(MODEL_PARTS)}")
    return next(name for name, spec in SOLVERS.items() if spec.part == part)


def deprecated_sampler(sampler: str, *, model_part: str | None = None, stacklevel: int = 3) -> str:
    """The one shim for the deprecated ``sampler`` keyword: the model part it names (``"cm"``, or
    ``"teacher"`` for ``"edm"``, the teacher's old name), with a :class:`FutureWarning`. Each part's
    default solver is the old sampler's (consistency, heun).

    Raises:
        ConfigError: an unknown ``sampler``, or one that contradicts ``model_part``.
    """
    if sampler not in _SAMPLER_PARTS:
        raise ConfigError(
            f"unknown model part {sampler!r}; valid parts are {sorted(MODEL_PARTS)} "
            f"(and the deprecated sampler names {sorted(_SAMPLER_PARTS)})"
        )
    part = _SAMPLER_PARTS[sampler]
    if model_part is not None and model_part != part:
        raise ConfigError(f"sampler {sampler!r} means model part {part!r}, not {model_part!r}")
    warnings.warn(f"sampler={sampler!r} is deprecated; use model_part={part!r}", FutureWarning, stacklevel=stacklevel)
    return part


def resolve_sampling(*, model_part: str | None = None, solver: str | None = None) -> tuple[str, str]:
    """``(model_part, solver)`` from the options as given.

    Without any option: the consistency model with its solver. A solver alone picks its part; a
    part alone its default solver. Options that contradict each other raise :class:`ConfigError`.
    """
    if model_part is not None and model_part not in MODEL_PARTS:
        raise ConfigError(f"unknown model part {model_part!r}; valid parts are {sorted(MODEL_PARTS)}")
    if solver is None:
        model_part = model_part or "cm"
        return model_part, default_solver(model_part)
    part = _spec(solver).part
    if model_part is not None and model_part != part:
        raise ConfigError(
            f"solver {solver!r} runs on the {part!r} weights, not on {model_part!r}; "
            f"the {model_part!r} weights take {[n for n, s in SOLVERS.items() if s.part == model_part]}"
        )
    return part, solver


def solver_sigmas(
    solver: str,
    steps: int,
    *,
    sigma_min: float,
    sigma_max: float,
    rho: float,
    distill_levels: int,
    device: torch.device | str = "cpu",
) -> Tensor:
    """The noise levels ``solver`` takes for ``steps`` steps.

    Args:
        solver: a name in :data:`SOLVERS`.
        steps: solver steps (>= 1; consistency: at most ``distill_levels - 1``).
        sigma_min, sigma_max, rho: the Karras schedule.
        distill_levels: levels N of the distillation grid (consistency only).
    """
    if _spec(solver).part == "cm":
        levels = karras_sigmas(distill_levels, sigma_min, sigma_max, rho, append_zero=False, device=device)
        return consistency_sigmas(steps, levels)
    return karras_sigmas(steps, sigma_min, sigma_max, rho, device=device)


def sample(
    denoiser: Callable[..., Tensor],
    noise: Tensor,
    *,
    solver: Solver,
    sigmas: Tensor,
    cond: Any,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """Draw data from unit ``noise`` with ``solver`` over ``sigmas`` (from :func:`solver_sigmas`).

    Args:
        denoiser: ``denoiser(x, sigma, *, cond)``; the teacher for ``heun``/``euler``, the
            consistency model for ``consistency``.
        noise: standard normal noise of the output's shape (scaled here by ``sigmas[0]``).
        solver: a name in :data:`SOLVERS`.
        sigmas: the noise levels.
        cond: passed to the denoiser unread.
        generator: random source of the solver (consistency re-noising).
        callback: called after each step (see the module docstring).

    Returns:
        The sample, of the shape of ``noise``.
    """
    return _spec(solver).fn(denoiser, noise * sigmas[0], sigmas, cond=cond, generator=generator, callback=callback)
