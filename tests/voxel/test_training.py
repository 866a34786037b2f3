"""A small voxel model trains, saves, loads and samples on CPU (and distils); the run folder, and exact
resume of the teacher and the distillation after a kill, a SIGTERM or the time budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from caloclouds.cli import main
from caloclouds.errors import CaloCloudsError
from caloclouds.voxel.config import VoxelConfig
from caloclouds.voxel.generate import generate_voxel_file
from caloclouds.voxel.mesh import get_mesh
from caloclouds.voxel.model import load_voxel_model
from caloclouds.voxel.training import distill_voxel_model, load_voxel_data, train_voxel_model
from tests.training_resume import assert_same_run, assert_same_weights, step_budget

TINY = VoxelConfig(
    channels=(4, 8), embedding=16, batch_size=8, checkpoint_every=10, val_showers=6, heun_steps=3, cm_sample_steps=1
)


@pytest.fixture(scope="module")
def voxels(tmp_path_factory):
    from tests.conftest import shared_file

    path = shared_file("g4_photons_val_fixed.h5")
    v = load_voxel_data(path, get_mesh("ds2"))
    return v[np.r_[0:10, 200:210, 400:410]]  # 10, 50 and 90 GeV


@pytest.fixture(scope="module")
def teacher(voxels, tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("voxel") / "teacher"
    lines: list[str] = []
    model = train_voxel_model(voxels, TINY, out=out, steps=20, log=lines.append)
    return model, out, lines


def test_small_model_trains_on_cpu(teacher) -> None:
    model, out, lines = teacher
    assert len(lines) == 2 and "val_loss" in lines[-1]
    for name in ("config.yaml", "checkpoint.pt", "model.pt", "metrics.csv", "curve.png"):
        assert (out / name).is_file(), name
    ckpt = torch.load(out / "model.pt", weights_only=True)
    assert ckpt["kind"] == "voxel-edm" and ckpt["step"] == 20 and "train_state" not in ckpt
    losses = [row["loss"] for row in ckpt["metrics"]]
    assert all(np.isfinite(losses)) and losses[-1] < 1.5
    assert all(np.isfinite(row["val_loss"]) for row in ckpt["metrics"])


def test_sample_has_the_requested_layer_energies(teacher) -> None:
    model = load_voxel_model(teacher[1])
    layers = torch.zeros(2, 30)
    layers[:, 3:20] = 50.0
    v = model.sample_voxels(
        torch.tensor([10.0, 90.0]), layer_energy_mev=layers, generator=torch.Generator().manual_seed(0)
    )
    assert v.shape == (2, 4320) and torch.all(v >= 0)
    sums = v.reshape(2, 30, 144).sum(-1)
    assert torch.all(sums[:, :3] == 0)
    torch.testing.assert_close(sums[:, 3:20], layers[:, 3:20], rtol=0.02, atol=0.0)  # minus voxels < threshold


def test_layer_model_scales_with_energy(teacher) -> None:
    model = teacher[0]
    g = torch.Generator().manual_seed(0)
    e10 = model.layer_model.sample(torch.full((200,), 10.0), generator=g).sum(1).mean()
    e90 = model.layer_model.sample(torch.full((200,), 90.0), generator=g).sum(1).mean()
    assert 5 < float(e90 / e10) < 12


def test_distil_and_generate(teacher, voxels, tmp_path) -> None:
    model, _, _ = teacher
    cm = distill_voxel_model(model, voxels[:8], out=tmp_path / "cm", steps=2, log=lambda s: None)
    assert cm.kind == "cm"
    out = tmp_path / "gen.h5"
    summary = generate_voxel_file(tmp_path / "cm", np.array([10.0, 50.0, 90.0]), out, batch_size=2)
    assert summary["n_showers"] == 3
    from caloclouds.io.hdf5 import read_showers

    showers = read_showers(out)
    assert len(showers) == 3 and showers.n_points.min() > 0


def test_generate_verb_takes_a_voxel_model(teacher, tmp_path, capsys) -> None:
    from caloclouds.cli import main
    from caloclouds.io.hdf5 import read_showers

    _, path, _ = teacher
    out = tmp_path / "vox.h5"
    assert main(["generate", "--model", str(path), "--energies", "50", "-n", "2", "--steps", "2", "-o", str(out)]) == 0
    assert "voxel-model showers" in capsys.readouterr().out
    assert len(read_showers(out)) == 2
    assert main(["generate", "--model", str(path), "--energies", "50", "-n", "2", "-o", str(tmp_path / "v.root")]) == 2
    assert "HDF5" in capsys.readouterr().err


def test_train_voxel_verb(shared, tmp_path, capsys) -> None:
    src = str(shared("g4_photons_val_fixed.h5"))
    cfg = tmp_path / "voxel.yaml"
    cfg.write_text(
        "voxel:\n  channels: [4]\n  embedding: 8\n  batch_size: 4\n  checkpoint_every: 2\n  val_showers: 2\n"
    )
    out = tmp_path / "m.pt"
    assert main(["train-voxel", src, "-o", str(out), "--config", str(cfg), "--dry-run"]) == 0
    assert "channels:\n  - 4" in capsys.readouterr().out
    assert (
        main(
            [
                "train-voxel",
                src,
                "-o",
                str(out),
                "--config",
                str(cfg),
                "--steps",
                "2",
                "--max-showers",
                "12",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    assert load_voxel_model(out).kind == "edm"  # the deprecated -o m.pt: run folder m, model.pt copied to m.pt
    assert (tmp_path / "m" / "checkpoint.pt").is_file()
    assert "deprecated" in capsys.readouterr().err
    base = ["train-voxel", src, "--config", str(cfg), "--max-showers", "12", "--threads", "1", "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "run"), "--steps", "2"]) == 0
    assert main([*base, "--distill", str(tmp_path / "run"), "--out", str(tmp_path / "cm"), "--steps", "1"]) == 0
    assert load_voxel_model(tmp_path / "cm").kind == "cm"
    assert main([*base, "--out", str(tmp_path / "run"), "--steps", "4"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "run"), "--steps", "4", "--resume"]) == 0
    assert torch.load(tmp_path / "run" / "model.pt", weights_only=True)["step"] == 4
    assert main([*base, "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "no checkpoint to resume" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "x"), "-o", str(tmp_path / "x.pt")]) == 2
    cfg.write_text("voxel:\n  chanels: [4]\n")
    assert main(["train-voxel", src, "-o", str(out), "--config", str(cfg)]) == 2
    assert "unknown key(s) ['chanels']" in capsys.readouterr().err


def test_bad_checkpoints_are_explained(tmp_path) -> None:
    from caloclouds.errors import InputFileError

    with pytest.raises(InputFileError, match="not found"):
        load_voxel_model(tmp_path / "missing.pt")
    other = tmp_path / "other.pt"
    torch.save({"format_version": 1, "kind": "flow", "state_dict": {}}, other)
    with pytest.raises(InputFileError, match="not a voxel model checkpoint"):
        load_voxel_model(other)
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(InputFileError, match="cannot read checkpoint"):
        load_voxel_model(junk)


def test_bad_weights_and_steps_are_explained(teacher, voxels, tmp_path, capsys) -> None:
    from caloclouds.cli import main
    from caloclouds.errors import InputFileError

    model = teacher[0]
    cm_path = tmp_path / "cm"
    distill_voxel_model(model, voxels[:4], out=cm_path, steps=1, log=lambda s: None)
    ckpt = torch.load(cm_path / "model.pt", weights_only=True)
    name = next(iter(ckpt["state_dict"]))
    ckpt["state_dict"][name] = torch.zeros(3, 1, 2)  # wrong shape: e.g. a file from an older version
    bad = tmp_path / "bad.pt"
    torch.save(ckpt, bad)
    with pytest.raises(InputFileError, match="weights do not match"):
        load_voxel_model(bad)
    assert (
        main(
            [
                "generate",
                "--model",
                str(cm_path),
                "--energies",
                "50",
                "-n",
                "1",
                "--steps",
                "99",
                "-o",
                str(tmp_path / "v.h5"),
            ]
        )
        == 2
    )
    assert "takes 1 to" in capsys.readouterr().err


def test_is_voxel_checkpoint(teacher, tmp_path) -> None:
    from caloclouds.voxel.model import is_voxel_checkpoint

    assert is_voxel_checkpoint(teacher[1])
    assert not is_voxel_checkpoint(tmp_path / "missing.pt")


def test_irregular_mesh_trains_through_glam(tmp_path) -> None:
    """A DS1-like (irregular) mesh is mapped by GLaM to the regular cylinder the U-Net works on."""
    from tests.conftest import shared_file

    cfg = VoxelConfig(
        mesh="ds1", channels=(4,), embedding=8, batch_size=4, checkpoint_every=2, val_showers=2, heun_steps=2
    )
    data = load_voxel_data(shared_file("g4_photons_val_fixed.h5"), get_mesh("ds1"), max_showers=10)
    model = train_voxel_model(data, cfg, out=tmp_path / "ds1", steps=2, log=lambda s: None)
    assert model.glam is not None and model.latent_mesh.shape == (30, 16, 9)
    layers = torch.from_numpy(data.layer_sums()[:2]).float()
    v = load_voxel_model(tmp_path / "ds1").sample_voxels(torch.tensor([10.0, 10.0]), layer_energy_mev=layers)
    assert v.shape == (2, 3404)
    sums = np.add.reduceat(v.double().numpy(), data.mesh.layer_offsets[:-1], axis=1)
    keep = layers.numpy() > 1.0  # layers with more than the voxel threshold can be checked
    np.testing.assert_allclose(sums[keep], layers.numpy()[keep], rtol=0.05)


def test_generate_voxel_model_takes_the_solver(teacher, tmp_path, capsys) -> None:
    """A voxel checkpoint is one model part: --solver picks among its solvers, the other part's are refused."""
    from caloclouds.cli import main
    from caloclouds.io import read_showers

    base = ["generate", "--model", str(teacher[1]), "--energies", "50", "-n", "2", "--steps", "2"]
    assert main([*base, "--solver", "euler", "-o", str(tmp_path / "euler.h5")]) == 0
    assert main([*base, "--model-part", "teacher", "-o", str(tmp_path / "heun.h5")]) == 0
    assert not np.array_equal(read_showers(tmp_path / "euler.h5").points, read_showers(tmp_path / "heun.h5").points)
    capsys.readouterr()
    assert main([*base, "--model-part", "cm", "-o", str(tmp_path / "x.h5")]) == 2
    assert "runs on the 'cm' weights" in capsys.readouterr().err and not (tmp_path / "x.h5").exists()


RESUME_STEPS = 12
FITTED = ("layer_model.",)  # LayerEnergyModel.fit (LAPACK lstsq) differs in the last bit between fresh runs
RESUME_CONFIG = VoxelConfig(channels=(4,), embedding=8, batch_size=4, checkpoint_every=3, val_showers=4)


@pytest.fixture(scope="module")
def straight_voxel(voxels, tmp_path_factory):
    """An uninterrupted teacher and a distillation of RESUME_STEPS steps (the references)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("voxel_straight")
    quiet = {"steps": RESUME_STEPS, "seed": 3, "log": lambda s: None}
    teacher = train_voxel_model(voxels, RESUME_CONFIG, out=root / "teacher", **quiet)
    distill_voxel_model(teacher, voxels, out=root / "cm", **quiet)
    return root


@pytest.mark.parametrize("how", ["kill", "SIGTERM"])
def test_interrupted_voxel_teacher_resumes_to_the_uninterrupted_result(
    voxels, straight_voxel, tmp_path, monkeypatch, how
):
    """Killed during step 8 (no chance to save: it restarts from the checkpoint at step 6), or sent
    SIGTERM during step 5 (the step finishes, a checkpoint is written, the run stops): resumed, the
    weights, EMA, optimiser, random stream and metrics equal the uninterrupted run's."""
    import os
    import signal

    import caloclouds.voxel.training as training

    step = training.optimiser_step
    calls = []

    def interrupted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        if how == "kill" and len(calls) == 8:
            raise KeyboardInterrupt
        if how == "SIGTERM" and len(calls) == 5:
            os.kill(os.getpid(), signal.SIGTERM)
        return step(*args, **kwargs)

    quiet = {"steps": RESUME_STEPS, "seed": 3, "log": lambda s: None}
    monkeypatch.setattr(training, "optimiser_step", interrupted)
    if how == "kill":
        with pytest.raises(KeyboardInterrupt):
            train_voxel_model(voxels, RESUME_CONFIG, out=tmp_path / "cut", **quiet)
    else:
        _, result = training._teacher(
            voxels, RESUME_CONFIG, out=tmp_path / "cut", opts=training.VoxelRunOptions(**quiet)
        )
        assert result.stopped == "SIGTERM" and result.step == 5
    monkeypatch.setattr(training, "optimiser_step", step)
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["step"] == (6 if how == "kill" else 5)
    with pytest.raises(CaloCloudsError, match="--resume"):
        train_voxel_model(voxels, RESUME_CONFIG, out=tmp_path / "cut", **quiet)
    train_voxel_model(voxels, RESUME_CONFIG, out=tmp_path / "cut", resume=True, **quiet)
    assert_same_run(straight_voxel / "teacher", tmp_path / "cut", RESUME_STEPS, fitted=FITTED)
    assert_same_weights(straight_voxel / "teacher" / "model.pt", tmp_path / "cut" / "model.pt", fitted=FITTED)
    a = torch.load(straight_voxel / "teacher" / "model.pt", weights_only=True)["metrics"]
    b = torch.load(tmp_path / "cut" / "model.pt", weights_only=True)["metrics"]
    common = {r["step"] for r in a} & {r["step"] for r in b}
    assert [r["val_loss"] for r in a if r["step"] in common] == [r["val_loss"] for r in b if r["step"] in common]


def test_voxel_distillation_time_budget_and_resume(voxels, straight_voxel, tmp_path):
    teacher = load_voxel_model(straight_voxel / "teacher")
    quiet = {"steps": RESUME_STEPS, "seed": 3, "log": lambda s: None}
    budget = step_budget(RESUME_STEPS // 2)
    import caloclouds.voxel.training as training

    _, cut = training._distill(
        teacher, voxels, out=tmp_path / "cut", opts=training.VoxelRunOptions(time_budget_s=budget, **quiet)
    )
    assert cut.stopped == "time budget" and 0 < cut.step < RESUME_STEPS
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["step"] == cut.step
    distill_voxel_model(teacher, voxels, out=tmp_path / "cut", resume=True, **quiet)
    assert_same_run(straight_voxel / "cm", tmp_path / "cut", RESUME_STEPS, fitted=FITTED)
