"""Consistency training (``distill --objective training``): the loss, its curriculum and level
distribution, a tiny real run, and exact resume."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from caloclouds.cli import main
from caloclouds.diffusion import load_point_model
from caloclouds.diffusion.consistency import (
    ConsistencyDenoiser,
    consistency_training_loss,
    ct_level_probabilities,
    ct_num_levels,
)
from caloclouds.diffusion.data import TrainingData
from caloclouds.diffusion.edm import RaggedCond, per_shower_mean
from caloclouds.diffusion.pointwise import PointWiseNet
from caloclouds.diffusion.sampling import karras_sigmas
from caloclouds.diffusion.training import distill, train_diffusion
from caloclouds.errors import CaloCloudsError
from tests.training_resume import step_budget

from .test_resume_exact import _layer_config


def _cm(seed: int) -> ConsistencyDenoiser:
    torch.manual_seed(seed)
    return ConsistencyDenoiser(PointWiseNet(hidden=(16, 32, 16)), 0.5, sigma_min=0.002)


def test_curriculum_doubles_the_levels_from_11_to_1281() -> None:
    total = 10000  # K' = 10000 // 8 = 1250
    assert [ct_num_levels(k, total) for k in (0, 1249, 1250, 2500, 8749, 8750, 9999)] == [
        11,
        11,
        21,
        41,
        641,
        1281,
        1281,
    ]
    assert ct_num_levels(10**6, total) == 1281 and ct_num_levels(0, 1) == 11
    assert all(ct_num_levels(k, 20) <= ct_num_levels(k + 1, 20) for k in range(30))


def test_level_probabilities_are_log_normal_over_the_pairs() -> None:
    sigmas = karras_sigmas(41, 0.002, 3.0, 3.0, append_zero=False)
    p = ct_level_probabilities(sigmas)
    assert p.shape == (40,) and (p > 0).all() and float(p.sum()) == pytest.approx(1.0, abs=1e-6)
    # the most likely pair is the one around exp(P_mean) = 0.33, per unit of ln(sigma)
    density = p / (sigmas[:-1].log() - sigmas[1:].log())
    best = int(density.argmax())
    assert float(sigmas[best + 1]) <= math.exp(-1.1) * 1.3 and float(sigmas[best]) >= math.exp(-1.1) / 1.3


def test_training_loss_is_per_point_nonnegative_and_differentiable() -> None:
    student, target = _cm(1), _cm(2).requires_grad_(False)
    sigmas = karras_sigmas(11, 0.002, 3.0, 3.0, append_zero=False)
    cond = RaggedCond.from_offsets(torch.randn(3, 2), torch.tensor([0, 4, 10, 13]))
    x, noise = torch.randn(13, 4), torch.randn(13, 4)
    loss = consistency_training_loss(student, target, x, noise, torch.tensor([0, 5, 9]), sigmas, cond=cond)
    assert loss.shape == (13,) and torch.isfinite(loss).all() and (loss >= 0).all()
    per_shower_mean(loss, cond).mean().backward()
    assert all(p.grad is not None for p in student.parameters())
    assert all(p.grad is None for p in target.parameters())


def test_training_loss_uses_the_same_noise_at_both_levels() -> None:
    """At the last pair the target is f(x + sigma_min z, sigma_min) = x + sigma_min z (boundary
    condition), so the unweighted L2 loss is |f(x + t z, t) - x - sigma_min z| with the same z."""
    student = _cm(3)
    sigmas = karras_sigmas(11, 0.002, 3.0, 3.0, append_zero=False)
    cond = RaggedCond.from_offsets(torch.randn(2, 2), torch.tensor([0, 5, 12]))
    x, noise = torch.randn(12, 4), torch.randn(12, 4)
    level = torch.tensor([9, 9])
    loss = consistency_training_loss(student, student, x, noise, level, sigmas, cond=cond, huber_c=0.0, weighted=False)
    with torch.no_grad():
        expected = (student(x + sigmas[9] * noise, sigmas[level], cond=cond) - (x + sigmas[10] * noise)).norm(dim=-1)
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-5, atol=1e-6)
    weighted = consistency_training_loss(student, student, x, noise, level, sigmas, cond=cond, huber_c=0.0)
    torch.testing.assert_close(weighted.detach(), expected / (sigmas[9] - sigmas[10]), rtol=1e-5, atol=1e-5)
    # the pseudo-Huber distance is below the L2 distance and close to it for large distances
    huber = consistency_training_loss(student, student, x, noise, level, sigmas, cond=cond, weighted=False)
    assert (huber.detach() <= expected).all() and torch.allclose(huber.detach(), expected, atol=2e-3)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, toy_file):  # noqa: ANN001, ANN201
    out = tmp_path_factory.mktemp("ct") / "teacher"
    train_diffusion(_layer_config(), TrainingData.from_file(toy_file), out, steps=5, progress=False)
    return out


def test_tiny_consistency_training_run_samples_finite_points(tmp_path, toy_file, teacher) -> None:  # noqa: ANN001
    data = TrainingData.from_file(toy_file)
    run = distill(teacher, data, tmp_path / "ct", objective="training", steps=40, progress=False, val=data)
    assert run.step == 40 and not run.stopped
    ck = torch.load(tmp_path / "ct" / "checkpoint.pt", weights_only=True)
    assert ck["kind"] == "cm" and ck["train_state"]["objective"] == "training"
    loss = torch.tensor(ck["loss_log"])
    assert loss.shape == (40,) and torch.isfinite(loss).all() and (loss >= 0).all()
    cm = load_point_model(tmp_path / "ct")
    counts = torch.zeros(3, 30, dtype=torch.int64)
    counts[1, :5], counts[2, 3] = 6, 7
    pts, _ = cm.sample_layers(
        counts, counts * 1.5, torch.tensor([20.0, 50.0, 80.0]), generator=torch.Generator().manual_seed(0)
    )
    assert pts.shape == (37, 4) and torch.isfinite(pts).all()
    with pytest.raises(ValueError, match="unknown objective"):
        distill(teacher, data, tmp_path / "x", objective="trainig", steps=1, progress=False)


def test_consistency_training_resumes_exactly(tmp_path, toy_file, teacher) -> None:  # noqa: ANN001
    """Cut by the time budget and resumed, the run ends as an uninterrupted one; the curriculum (N
    doubles every 2 of the 20 steps) follows the step count across the cut."""
    data = TrainingData.from_file(toy_file)
    cfg = _layer_config()
    cfg = dataclasses.replace(cfg, distillation=dataclasses.replace(cfg.distillation, checkpoint_every=5))
    kw = dict(config=cfg, objective="training", steps=20, progress=False, val=data)
    distill(teacher, data, tmp_path / "a", **kw)
    cut = distill(teacher, data, tmp_path / "b", time_budget_s=step_budget(8), **kw)
    assert cut.stopped == "time budget" and 0 < cut.step < 20
    with pytest.raises(CaloCloudsError, match="--objective training"):
        distill(teacher, data, tmp_path / "b", config=cfg, steps=20, progress=False, resume=True)
    distill(teacher, data, tmp_path / "b", resume=True, **kw)
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert a["loss_log"] == b["loss_log"] and b["step"] == 20
    for part in (a["state_dict"], a["train_state"]["model"]):
        other = b["state_dict"] if part is a["state_dict"] else b["train_state"]["model"]
        for k, v in part.items():
            torch.testing.assert_close(other[k], v, rtol=0, atol=0)
    assert torch.equal(a["train_state"]["rng"][0], b["train_state"]["rng"][0])


def test_cli_objective_training(tmp_path, toy_file, teacher, capsys) -> None:  # noqa: ANN001
    args = ["distill", "--teacher", str(teacher), "--data", str(toy_file), "--steps", "3", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "ct"), "--objective", "training"]) == 0
    assert "distill: step 3" in capsys.readouterr().out
    ck = torch.load(tmp_path / "ct" / "checkpoint.pt", weights_only=True)
    assert ck["train_state"]["objective"] == "training"
    with pytest.raises(SystemExit):
        main([*args, "--out", str(tmp_path / "x"), "--objective", "bogus"])
    with pytest.raises(SystemExit):
        main(["distill", "--help"])
    assert "--objective {distillation,training}" in capsys.readouterr().out
