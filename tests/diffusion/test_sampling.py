from __future__ import annotations

import pytest
import torch

from caloclouds.diffusion.sampling import (
    consistency_sigmas,
    karras_sigmas,
    sample_consistency,
    sample_euler,
    sample_heun,
)

WEIGHTS = torch.tensor([0.3, 0.7], dtype=torch.float64)
MEANS = torch.tensor([-1.0, 2.0], dtype=torch.float64)
STDS = torch.tensor([0.3, 0.5], dtype=torch.float64)


def exact_denoiser(x: torch.Tensor, sigma: torch.Tensor, *, cond: object) -> torch.Tensor:
    """E[x0 | x0 + sigma n] for the 1-D Gaussian mixture above."""
    assert cond == "passed through"
    v = STDS**2 + sigma.double() ** 2
    xd = x.double()
    log_r = torch.log(WEIGHTS) - 0.5 * torch.log(v) - 0.5 * (xd - MEANS) ** 2 / v
    r = torch.softmax(log_r, dim=-1)
    post = MEANS + STDS**2 / v * (xd - MEANS)
    return (r * post).sum(-1, keepdim=True).to(x.dtype)


def test_karras_sigmas() -> None:
    s = karras_sigmas(13, 0.002, 80.0, 7.0)
    assert s.shape == (14,) and s[-1] == 0
    torch.testing.assert_close(s[[0, 12]], torch.tensor([80.0, 0.002]))
    assert torch.all(torch.diff(s) < 0)
    with pytest.raises(ValueError, match="sigma_min"):
        karras_sigmas(5, 1.0, 0.5)


@pytest.mark.parametrize(("sampler", "steps", "tol"), [(sample_heun, 30, 0.03), (sample_euler, 80, 0.07)])
def test_exact_denoiser_reproduces_mixture_moments(sampler, steps, tol) -> None:  # noqa: ANN001
    g = torch.Generator().manual_seed(1)
    sigmas = karras_sigmas(steps, 0.002, 80.0, 7.0, device="cpu").double()
    mean = float((WEIGHTS * MEANS).sum())
    var = float((WEIGHTS * (STDS**2 + MEANS**2)).sum()) - mean**2
    # start from the moments of the exact noised marginal, so that only the solver is tested
    x = mean + torch.randn(20000, 1, generator=g, dtype=torch.float64) * (sigmas[0] ** 2 + var) ** 0.5
    calls = []
    out = sampler(exact_denoiser, x, sigmas, cond="passed through", callback=calls.append)
    assert len(calls) == steps
    assert abs(float(out.mean()) - mean) < tol
    assert abs(float(out.var()) / var - 1) < tol


def test_consistency_sampler_renoises_to_each_level() -> None:
    """Multistep sampling with the exact consistency function of Gaussian data N(m, s^2).

    The PF-ODE maps x at sigma to ``m + (x - m) sqrt(s^2 + sigma_min^2) / sqrt(s^2 + sigma^2)``, so the
    model sees inputs of variance s^2 + sigma^2 at every level only if the sampler re-noises by
    sqrt(sigma^2 - sigma_min^2): without noise, or with sqrt(sigma^2), the variances are off.
    """
    m, s, sigma_min = 0.7, 0.3, 0.5

    inputs = []

    def f(x: torch.Tensor, sigma: torch.Tensor, *, cond: object) -> torch.Tensor:
        inputs.append((float(sigma), x.clone()))
        return m + (x - m) * ((s**2 + sigma_min**2) / (s**2 + sigma.double() ** 2)) ** 0.5

    sigmas = torch.tensor([5.0, 2.0, 1.0, 0.4], dtype=torch.float64)  # 0.4 <= sigma_min: skipped
    g = torch.Generator().manual_seed(0)
    x = m + torch.randn(40000, 1, generator=g, dtype=torch.float64) * (s**2 + 25.0) ** 0.5
    out = sample_consistency(f, x, sigmas, cond=None, sigma_min=sigma_min, generator=g)
    assert [level for level, _ in inputs] == [5.0, 2.0, 1.0]
    for level, seen in inputs:
        assert abs(float(seen.mean()) - m) < 0.05 * (s**2 + level**2) ** 0.5
        assert abs(float(seen.var()) / (s**2 + level**2) - 1) < 0.03, level
    assert abs(float(out.mean()) - m) < 0.01 and abs(float(out.var()) / (s**2 + sigma_min**2) - 1) < 0.03


def test_multistep_consistency_levels_come_from_the_distillation_grid() -> None:
    levels = karras_sigmas(18, 0.002, 3.0, 3.0, append_zero=False)
    torch.testing.assert_close(consistency_sigmas(1, levels), levels[:1])
    two = consistency_sigmas(2, levels)
    assert len(two) == 2 and two[0] == levels[0] and two[1] in levels and two[1] > 0.002
    assert len(set(consistency_sigmas(5, levels).tolist())) == 5
    # every step is one evaluation: K steps call the model K times
    calls = []

    def f(x: torch.Tensor, sigma: torch.Tensor, *, cond: object) -> torch.Tensor:
        calls.append(float(sigma))
        return torch.zeros_like(x)

    sample_consistency(f, torch.randn(3, 4), consistency_sigmas(3, levels), cond=None, sigma_min=0.002)
    assert len(calls) == 3
    with pytest.raises(ValueError, match="1 to 17"):
        consistency_sigmas(18, levels)
