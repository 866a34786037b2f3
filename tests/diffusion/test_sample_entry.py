"""The one sampling entry point: model part and solver chosen apart, bit-identical to the old code path.

The reference functions below are the sampling code of ``PointModel._draw`` and
``VoxelModel.sample_voxels`` as they were before ``sample(denoiser, noise, *, solver, ...)`` replaced
them (the ``"cm"``/``"edm"`` if/else): for the same seed and options the new path must give the
same tensors, to the bit.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from caloclouds.config import RunConfig
from caloclouds.diffusion import PointModel, PointNormaliser
from caloclouds.diffusion.checkpoint import build_denoiser
from caloclouds.diffusion.sampling import (
    SOLVERS,
    consistency_sigmas,
    deprecated_sampler,
    karras_sigmas,
    resolve_sampling,
    sample,
    sample_consistency,
    sample_heun,
    solver_sigmas,
)
from caloclouds.errors import CaloCloudsError, ConfigError
from caloclouds.voxel.config import VoxelConfig
from caloclouds.voxel.model import build_voxel_model

from .conftest import make_toy_showers

N_LAYERS = 30


def _point_model(kind: str, *, per_layer: bool = False) -> PointModel:
    """A small PointModel with random (not zero) weights, so every weight enters the comparison."""
    base = RunConfig()
    config = dataclasses.replace(
        base,
        diffusion=dataclasses.replace(
            base.diffusion, per_layer=per_layer, hidden=(16, 32, 16), fourier_features=16, time_features=16
        ),
        distillation=dataclasses.replace(base.distillation, num_steps=8),
    )
    torch.manual_seed(0)
    denoiser = build_denoiser(config.diffusion, kind, N_LAYERS)
    for p in denoiser.parameters():
        torch.nn.init.normal_(p, std=0.3)
    toy = make_toy_showers(20)
    normaliser = PointNormaliser.fit(
        toy.points,
        toy.offsets,
        toy.incident_energy_gev,
        n_layers=N_LAYERS,
        subcell_pitch_mm=0.848,
        sigma_data=0.5,
        per_layer=per_layer,
    )
    return PointModel(denoiser, normaliser, config, kind=kind)


def _old_point_draw(model: PointModel, cond, total: int, *, kind: str, steps: int | None, generator):  # noqa: ANN001
    """``PointModel._draw`` before the sampling entry point (the frozen reference)."""
    cfg = model.config.diffusion
    if steps is None:
        steps = model.config.distillation.sample_steps if kind == "cm" else cfg.heun_steps
    dev = model.device
    gen_dev = generator.device if generator is not None else dev
    noise = torch.randn(total, model.normaliser.n_features, generator=generator, device=gen_dev).to(dev)
    if kind == "cm":
        levels = karras_sigmas(
            model.config.distillation.num_steps, cfg.sigma_min, cfg.sigma_max, cfg.rho, append_zero=False, device=dev
        )
        sigmas = consistency_sigmas(steps, levels)
        return sample_consistency(
            model.denoiser, noise * sigmas[0], sigmas, cond=cond, sigma_min=cfg.sigma_min, generator=generator
        )
    sigmas = karras_sigmas(steps, cfg.sigma_min, cfg.sigma_max, cfg.rho, device=dev)
    return sample_heun(model.denoiser, noise * sigmas[0], sigmas, cond=cond)


@pytest.mark.parametrize("kind", ["cm", "edm"])
@pytest.mark.parametrize("steps", [None, 1, 3])
def test_point_model_sample_is_bit_identical_to_the_old_path(kind: str, steps: int | None) -> None:
    model = _point_model(kind)
    n_points, energy = torch.tensor([5, 0, 17]), torch.tensor([20.0, 50.0, 80.0])
    cond, offsets = model.conditioning(n_points, energy)
    with torch.inference_mode():
        ref = model.normaliser.inverse(
            _old_point_draw(
                model, cond, int(offsets[-1]), kind=kind, steps=steps, generator=torch.Generator().manual_seed(7)
            )
        )
    new, _ = model.sample(n_points, energy, steps=steps, generator=torch.Generator().manual_seed(7))
    named, _ = model.sample(
        n_points, energy, model_part=model.part, steps=steps, generator=torch.Generator().manual_seed(7)
    )
    assert torch.equal(new, ref) and torch.equal(named, ref)


@pytest.mark.parametrize("kind", ["cm", "edm"])
def test_point_model_sample_layers_is_bit_identical_to_the_old_path(kind: str) -> None:
    model = _point_model(kind, per_layer=True)
    counts = torch.zeros(2, N_LAYERS, dtype=torch.int64)
    counts[0, 3:9], counts[1, 10] = 4, 7
    energy = torch.tensor([30.0, 60.0])
    captured = {}

    def spy(cond, total, **kw):  # noqa: ANN001, ANN003
        captured["cond"], captured["total"] = cond, total
        return original(cond, total, **kw)

    original = model._draw
    model._draw = spy  # type: ignore[method-assign]
    new, _ = model.sample_layers(counts, counts * 1.5, energy, steps=2, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        x = _old_point_draw(
            model,
            captured["cond"],
            captured["total"],
            kind=kind,
            steps=2,
            generator=torch.Generator().manual_seed(3),
        )
    layer = torch.repeat_interleave(
        torch.nonzero(counts.reshape(-1) > 0).squeeze(1) % N_LAYERS, counts.reshape(-1)[counts.reshape(-1) > 0]
    )
    assert torch.equal(new, model.normaliser.inverse(x, layer))


def _voxel_model(kind: str):  # noqa: ANN202
    cfg = VoxelConfig(channels=(4, 8), embedding=16, heun_steps=3, cm_sample_steps=2, distill_levels=6)
    torch.manual_seed(1)
    model = build_voxel_model(cfg, kind=kind).eval()  # type: ignore[arg-type]
    for p in model.denoiser.parameters():
        torch.nn.init.normal_(p, std=0.1)
    return model


@pytest.mark.parametrize("kind", ["cm", "edm"])
def test_voxel_model_sample_is_bit_identical_to_the_old_path(kind: str) -> None:
    from caloclouds.voxel.adapter import ImageCond

    model = _voxel_model(kind)
    cfg = model.config
    energy = torch.tensor([20.0, 70.0])
    new = model.sample_voxels(energy, generator=torch.Generator().manual_seed(11))
    # the old sample_voxels body
    generator = torch.Generator().manual_seed(11)
    with torch.no_grad():
        layer_energy = model.layer_model.sample(energy, generator=generator)
        cond = ImageCond.for_images(model.normaliser.features(energy, layer_energy).float())
        noise = torch.randn((2, 1, *model.latent_mesh.shape), generator=generator)
        if kind == "edm":
            sigmas = karras_sigmas(cfg.heun_steps, cfg.sigma_min, cfg.sigma_max, cfg.rho)
            x = sample_heun(model.denoiser, noise * sigmas[0], sigmas, cond=cond, generator=generator)
        else:
            levels = karras_sigmas(cfg.distill_levels, cfg.sigma_min, cfg.sigma_max, cfg.rho, append_zero=False)
            sigmas = consistency_sigmas(cfg.cm_sample_steps, levels)
            x = sample_consistency(
                model.denoiser, noise * sigmas[0], sigmas, cond=cond, sigma_min=cfg.sigma_min, generator=generator
            )
        ref = model.from_latent(model.normaliser.inverse(x, layer_energy, min_voxel_mev=cfg.min_voxel_mev))
    assert torch.equal(new, ref)


def test_the_teacher_runs_with_euler_and_each_part_refuses_the_others_solvers() -> None:
    teacher, cm = _point_model("edm"), _point_model("cm")
    n_points, energy = torch.tensor([40]), torch.tensor([50.0])
    heun, _ = teacher.sample(n_points, energy, steps=4, generator=torch.Generator().manual_seed(0))
    euler, _ = teacher.sample(n_points, energy, solver="euler", steps=4, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(euler).all() and not torch.equal(euler, heun)
    with pytest.raises(CaloCloudsError, match="needs the 'teacher' weights"):
        cm.sample(n_points, energy, solver="heun")
    with pytest.raises(CaloCloudsError, match="needs the 'cm' weights"):
        teacher.sample(n_points, energy, solver="consistency")
    with pytest.raises(CaloCloudsError, match="needs an EDM teacher checkpoint"):
        cm.sample(n_points, energy, model_part="teacher")
    with pytest.raises(CaloCloudsError, match="valid parts"):
        cm.sample(n_points, energy, model_part="edm")  # the teacher's deprecated name is no model part
    with pytest.raises(ConfigError, match="valid solvers"):
        teacher.sample(n_points, energy, solver="rk4")  # type: ignore[arg-type]
    voxel = _voxel_model("edm")
    out = voxel.sample_voxels(torch.tensor([50.0]), solver="euler", steps=2, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out).all()
    with pytest.raises(ConfigError, match="runs on the 'cm' weights"):
        voxel.sample_voxels(torch.tensor([50.0]), solver="consistency")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, ("cm", "consistency")),
        ({"model_part": "teacher"}, ("teacher", "heun")),
        ({"solver": "euler"}, ("teacher", "euler")),
        ({"model_part": "cm", "solver": "consistency"}, ("cm", "consistency")),
    ],
)
def test_resolve_sampling(given: dict, expected: tuple[str, str]) -> None:
    assert resolve_sampling(**given) == expected


@pytest.mark.parametrize(
    ("given", "match"),
    [
        ({"model_part": "cm", "solver": "heun"}, "solver 'heun' runs on the 'teacher' weights"),
        ({"model_part": "edm"}, "valid parts"),
        ({"model_part": "student"}, "valid parts"),
        ({"solver": "rk4"}, "valid solvers"),
    ],
)
def test_resolve_sampling_refuses_clashes_and_unknown_names(given: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        resolve_sampling(**given)


@pytest.mark.parametrize(("sampler", "part"), [("cm", "cm"), ("edm", "teacher")])
def test_the_deprecated_sampler_is_a_warning_and_its_model_part(sampler: str, part: str) -> None:
    with pytest.warns(FutureWarning, match=f"sampler='{sampler}' is deprecated; use model_part='{part}'"):
        assert deprecated_sampler(sampler) == part
    with pytest.warns(FutureWarning):
        assert deprecated_sampler(sampler, model_part=part) == part
    other = "cm" if part == "teacher" else "teacher"
    with pytest.raises(ConfigError, match=f"sampler '{sampler}' means model part '{part}', not '{other}'"):
        deprecated_sampler(sampler, model_part=other)
    with pytest.raises(ConfigError, match="deprecated sampler names"):
        deprecated_sampler("ddim")


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_every_solver_runs_through_sample(solver: str) -> None:
    """The solver table is the only place a solver is named: each one runs through ``sample``."""
    model = _point_model("cm" if SOLVERS[solver].part == "cm" else "edm")
    cond, offsets = model.conditioning(torch.tensor([7, 3]), torch.tensor([30.0, 60.0]))
    cfg = model.config.diffusion
    sigmas = solver_sigmas(solver, 2, sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max, rho=cfg.rho, distill_levels=8)
    steps = []
    noise = torch.randn(int(offsets[-1]), 4, generator=torch.Generator().manual_seed(0))
    x = sample(
        model.denoiser,
        noise,
        solver=solver,
        sigmas=sigmas,
        cond=cond,  # type: ignore[arg-type]
        generator=torch.Generator().manual_seed(1),
        callback=steps.append,
    )
    assert x.shape == noise.shape and torch.isfinite(x).all() and len(steps) >= 1


def test_generate_cli_sampler_alias_equals_model_part(tmp_path) -> None:  # noqa: ANN001
    """``--sampler edm`` (deprecated) and ``--model-part teacher`` write the same showers; clashes are one line."""
    from caloclouds.cli import main
    from caloclouds.io import read_showers

    args = ["generate", "--energies", "40", "-n", "2", "--steps", "2", "--seed", "3"]
    assert main([*args, "--sampler", "edm", "-o", str(tmp_path / "a.h5")]) == 0
    assert main([*args, "--model-part", "teacher", "--solver", "heun", "-o", str(tmp_path / "b.h5")]) == 0
    assert main([*args, "--model-part", "teacher", "--solver", "euler", "-o", str(tmp_path / "c.h5")]) == 0
    a, b, c = (read_showers(tmp_path / f"{n}.h5") for n in "abc")
    assert np.array_equal(a.points, b.points) and np.array_equal(a.offsets, b.offsets)
    assert not np.array_equal(a.points, c.points)
    assert main([*args, "--sampler", "edm", "--model-part", "cm", "-o", str(tmp_path / "d.h5")]) == 2
    assert main([*args, "--model-part", "cm", "--solver", "euler", "-o", str(tmp_path / "d.h5")]) == 2
    assert main([*args, "--solver", "rk4", "-o", str(tmp_path / "d.h5")]) == 2  # checked by the SOLVERS table
    assert not (tmp_path / "d.h5").exists()


def test_bench_diffusion_takes_the_solver(capsys) -> None:  # noqa: ANN001
    from pathlib import Path

    from caloclouds.cli import main

    teacher = Path(__file__).resolve().parents[2] / "caloclouds" / "models" / "default" / "teacher.pt"
    base = ["bench-diffusion", "--model", str(teacher), "--points", "50", "--repeats", "1", "--steps", "2"]
    assert main([*base, "--solver", "euler"]) == 0
    assert "solver euler" in capsys.readouterr().out
    assert main([*base, "--solver", "consistency"]) == 2
    assert "needs the 'cm' weights" in capsys.readouterr().err


def test_point_model_noise_levels_are_built_once_per_setting() -> None:
    """``PointModel`` keeps the noise levels of each solver setting; draws with them are the old path's."""
    model = _point_model("cm")
    n_points, energy = torch.tensor([5, 17]), torch.tensor([20.0, 80.0])
    first, _ = model.sample(n_points, energy, steps=2, generator=torch.Generator().manual_seed(7))
    levels = model._sigmas("consistency", 2, model.device)
    assert model._sigmas("consistency", 2, model.device) is levels
    cfg = model.config.diffusion
    expected = solver_sigmas(
        "consistency",
        2,
        sigma_min=cfg.sigma_min,
        sigma_max=cfg.sigma_max,
        rho=cfg.rho,
        distill_levels=model.config.distillation.num_steps,
    )
    assert torch.equal(levels, expected)
    again, _ = model.sample(n_points, energy, steps=2, generator=torch.Generator().manual_seed(7))
    assert torch.equal(again, first)
    assert model._sigmas("consistency", 1, model.device).shape == (1,)
