from __future__ import annotations

import dataclasses

import pytest
import torch

from caloclouds.cli import main
from caloclouds.diffusion import load_point_model
from caloclouds.diffusion.data import TrainingData
from caloclouds.diffusion.training import distill, train_diffusion
from caloclouds.errors import CaloCloudsError


@pytest.fixture(scope="module")
def toy_data(toy_file) -> TrainingData:  # noqa: ANN001
    return TrainingData.from_file(toy_file)


def test_tiny_model_trains_and_both_samplers_return_finite_points(tmp_path, toy_data, tiny_config) -> None:  # noqa: ANN001
    teacher = train_diffusion(tiny_config, toy_data, tmp_path / "teacher", steps=100, progress=False)
    assert teacher.step == 100 and teacher.steps_run == 100
    ck = torch.load(tmp_path / "teacher" / "model.pt", weights_only=True)
    assert len(ck["loss_log"]) == 100 and "train_state" not in ck
    first, last = sum(ck["loss_log"][:20]) / 20, sum(ck["loss_log"][-20:]) / 20
    assert last < first

    n = torch.tensor([0, 50, 7])
    energy = torch.tensor([20.0, 50.0, 80.0])
    edm = load_point_model(tmp_path / "teacher")
    pts, offsets = edm.sample(n, energy, model_part="teacher", steps=4, generator=torch.Generator().manual_seed(0))
    assert pts.shape == (57, 4) and pts.dtype == torch.float32 and offsets.tolist() == [0, 0, 50, 57]
    assert torch.isfinite(pts).all() and (pts[:, 3] > 0).all()
    assert 0 <= float(pts[:, 2].min()) and float(pts[:, 2].max()) < 30

    cm_run = distill(tmp_path / "teacher", toy_data, tmp_path / "cm", config=tiny_config, steps=20, progress=False)
    assert cm_run.step == 20
    cm = load_point_model(tmp_path / "cm" / "model.pt")
    for steps in (None, 2):
        pts, offsets = cm.sample(n, energy, model_part="cm", steps=steps, generator=torch.Generator().manual_seed(0))
        assert pts.shape == (57, 4) and torch.isfinite(pts).all()
    with pytest.raises(CaloCloudsError, match="needs an EDM teacher"):
        cm.sample(n, energy, model_part="teacher")
    with pytest.raises(CaloCloudsError, match="needs a distilled"):
        edm.sample(n, energy, model_part="cm")


def test_resume_continues_step_count_and_loss_curve(tmp_path, toy_data, tiny_config) -> None:  # noqa: ANN001
    cfg = dataclasses.replace(tiny_config, diffusion=dataclasses.replace(tiny_config.diffusion, checkpoint_every=3))
    train_diffusion(cfg, toy_data, tmp_path / "straight", steps=6, seed=3, progress=False)
    train_diffusion(cfg, toy_data, tmp_path / "resumed", steps=3, seed=3, progress=False)
    with pytest.raises(CaloCloudsError, match="--resume"):
        train_diffusion(cfg, toy_data, tmp_path / "resumed", steps=6, seed=3, progress=False)
    result = train_diffusion(cfg, toy_data, tmp_path / "resumed", steps=6, seed=3, resume=True, progress=False)
    assert result.steps_run == 3 and result.step == 6
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert b["step"] == 6 and len(b["loss_log"]) == 6
    assert a["loss_log"] == b["loss_log"]
    for k, v in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][k], v, rtol=0, atol=0)


def test_distill_resume(tmp_path, toy_data, tiny_config) -> None:  # noqa: ANN001
    train_diffusion(tiny_config, toy_data, tmp_path / "t", steps=2, progress=False)
    cfg = dataclasses.replace(
        tiny_config, distillation=dataclasses.replace(tiny_config.distillation, checkpoint_every=2)
    )
    distill(tmp_path / "t", toy_data, tmp_path / "a", config=cfg, steps=4, progress=False)
    distill(tmp_path / "t", toy_data, tmp_path / "b", config=cfg, steps=2, progress=False)
    distill(tmp_path / "t", toy_data, tmp_path / "b", config=cfg, steps=4, resume=True, progress=False)
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert a["loss_log"] == b["loss_log"] and b["step"] == 4 and b["kind"] == "cm"
    with pytest.raises(CaloCloudsError, match="must be an EDM"):
        distill(tmp_path / "a", toy_data, tmp_path / "c", config=cfg, steps=1, progress=False)


@pytest.mark.parametrize("per_layer", [False, True], ids=["depth", "per-layer"])
def test_cli_verbs(tmp_path, toy_file, tiny_config, capsys, per_layer) -> None:  # noqa: ANN001
    import yaml

    from caloclouds.config import config_to_dict

    if per_layer:  # bench-diffusion's W1 check once failed on the shipped per-layer model (issue 26)
        from .test_resume_exact import _layer_config

        tiny_config = _layer_config()
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(config_to_dict(tiny_config)))
    common = ["--data", str(toy_file), "--steps", "3", "--batch-size", "2", "--no-progress"]
    assert main(["train-diffusion", "--config", str(cfg_path), "--out", str(tmp_path / "t"), *common]) == 0
    assert "train-diffusion: step 3" in capsys.readouterr().out
    assert main(["train-diffusion", "--config", str(cfg_path), "--out", str(tmp_path / "t"), *common]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["distill", "--teacher", str(tmp_path / "t"), "--out", str(tmp_path / "c"), *common]) == 0
    assert "distill: step 3" in capsys.readouterr().out
    args = [
        "bench-diffusion",
        "--model",
        str(tmp_path / "c"),
        "--points",
        "100",
        "--repeats",
        "2",
        "--reference",
        str(toy_file),
        "--energy",
        "50",
        "--tolerance",
        "40",
        "--n-showers",
        "5",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "median" in out and "| radius_mm |" in out
    assert main(["bench-diffusion", "--model", str(tmp_path / "missing.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_checkpoint_config_tolerates_other_sections_changing(tmp_path, toy_data, tiny_config) -> None:  # noqa: ANN001
    train_diffusion(tiny_config, toy_data, tmp_path / "t", steps=1, progress=False)
    ck = torch.load(tmp_path / "t" / "model.pt", weights_only=True)
    ck["config"]["detector"]["a_key_removed_since"] = 1.0
    ck["config"]["some_future_section"] = {"x": 1}
    torch.save(ck, tmp_path / "old.pt")
    model = load_point_model(tmp_path / "old.pt")
    assert model.config.diffusion.hidden == tiny_config.diffusion.hidden
    torch.save({"no": "format"}, tmp_path / "bad.pt")
    with pytest.raises(CaloCloudsError, match="format_version"):
        load_point_model(tmp_path / "bad.pt")


def test_bf16_autocast_runs_on_cpu(tmp_path, toy_data, tiny_config) -> None:  # noqa: ANN001
    result = train_diffusion(tiny_config, toy_data, tmp_path / "t", steps=2, bf16=True, progress=False)
    assert result.step == 2 and result.last_loss == result.last_loss  # not NaN
