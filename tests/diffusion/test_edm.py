from __future__ import annotations

import torch

from caloclouds.diffusion.consistency import ConsistencyDenoiser, consistency_distillation_loss
from caloclouds.diffusion.edm import EDMDenoiser, RaggedCond, per_shower_mean
from caloclouds.diffusion.pointwise import PointWiseNet
from caloclouds.diffusion.sampling import karras_sigmas


def _net(seed: int = 0) -> PointWiseNet:
    torch.manual_seed(seed)
    return PointWiseNet(hidden=(8, 16, 8), cond_features=2, fourier_features=8, time_features=8)


def test_scalings_match_karras_table() -> None:
    d = EDMDenoiser(_net(), sigma_data=0.5)
    sigma = torch.tensor([0.01, 0.5, 80.0])
    c_skip, c_out, c_in = d.scalings(sigma)
    torch.testing.assert_close(c_skip, 0.25 / (sigma**2 + 0.25))
    torch.testing.assert_close(c_out, sigma * 0.5 / (sigma**2 + 0.25).sqrt())
    torch.testing.assert_close(c_in, 1 / (sigma**2 + 0.25).sqrt())


def test_ragged_batch_loss_equals_each_shower_alone() -> None:
    d = EDMDenoiser(_net(), sigma_data=0.5)
    g = torch.Generator().manual_seed(0)
    counts = [5, 17, 1, 9]
    xs = [torch.randn(n, 4, generator=g) for n in counts]
    noises = [torch.randn(n, 4, generator=g) for n in counts]
    feats = torch.randn(len(counts), 2, generator=g)
    sigma = torch.tensor([0.05, 1.0, 3.0, 40.0])
    offsets = torch.tensor([0, *torch.tensor(counts).cumsum(0).tolist()])
    cond = RaggedCond.from_offsets(feats, offsets)
    batch = per_shower_mean(d.loss(torch.cat(xs), torch.cat(noises), sigma, cond=cond), cond)
    alone = torch.stack(
        [
            d.loss(xs[i], noises[i], sigma[i : i + 1], cond=RaggedCond(feats[i : i + 1], None)).mean()
            for i in range(len(counts))
        ]
    )
    torch.testing.assert_close(batch, alone, rtol=1e-5, atol=1e-6)
    # the denoiser itself is also independent of the other showers
    den = d(torch.cat(xs), sigma, cond=cond)
    torch.testing.assert_close(den[5:22], d(xs[1], sigma[1:2], cond=RaggedCond(feats[1:2], None)), rtol=1e-5, atol=1e-6)


def test_consistency_boundary_condition_is_exact() -> None:
    f = ConsistencyDenoiser(_net(), sigma_data=0.5, sigma_min=0.002)
    x = torch.randn(50, 4) * 3
    cond = RaggedCond.from_offsets(torch.randn(2, 2), torch.tensor([0, 20, 50]))
    assert torch.equal(f(x, torch.tensor(0.002), cond=cond), x)
    assert not torch.allclose(f(x, torch.tensor(1.0), cond=cond), x)


def test_distillation_loss_is_per_point_and_differentiable() -> None:
    teacher = EDMDenoiser(_net(1), 0.5).requires_grad_(False)
    student = ConsistencyDenoiser(_net(2), 0.5, sigma_min=0.002)
    target = ConsistencyDenoiser(_net(2), 0.5, sigma_min=0.002).requires_grad_(False)
    sigmas = karras_sigmas(18, 0.002, 80.0, 7.0, append_zero=False)
    cond = RaggedCond.from_offsets(torch.randn(3, 2), torch.tensor([0, 4, 10, 13]))
    x, noise = torch.randn(13, 4), torch.randn(13, 4)
    loss = consistency_distillation_loss(
        student, target, teacher, x, noise, torch.tensor([0, 8, 16]), sigmas, cond=cond
    )
    assert loss.shape == (13,) and torch.isfinite(loss).all()
    per_shower_mean(loss, cond).mean().backward()
    assert all(p.grad is not None for p in student.parameters())


def test_chunked_cpu_inference_equals_one_pass(monkeypatch) -> None:
    from caloclouds.diffusion import pointwise

    torch.manual_seed(0)
    net = PointWiseNet(hidden=(16, 32, 16))
    counts = torch.tensor([5, 0, 40, 17, 1])
    x = torch.randn(int(counts.sum()), 4)
    c_noise, cond = torch.randn(5), torch.randn(5, 2)
    index = torch.repeat_interleave(torch.arange(5), counts)
    whole = net(x, c_noise, cond, index).detach()  # autograd on: one pass
    monkeypatch.setattr(pointwise, "CPU_CHUNK_POINTS", 7)  # chunks cut through showers
    with torch.inference_mode():
        chunked = net(x, c_noise, cond, index)
    torch.testing.assert_close(chunked, whole, rtol=1e-6, atol=1e-6)
