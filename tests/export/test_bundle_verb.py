"""`caloclouds bundle`: a bundle from training run folders, validated, calibrated, with provenance."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from caloclouds.cli import main
from caloclouds.generation.bundle import default_bundle_path, load_bundle
from caloclouds.io import ShowerFile, write_showers
from tests.conftest import shared_file


@pytest.fixture
def runs(tmp_path):
    """Run folders laid out as train-flow, train-diffusion and distill leave them (from the parts of the
    normal-incidence model shipped beside the default, whose flow records no training files)."""
    src = default_bundle_path().parent / "ild_normal_incidence"
    for run, name, part in (
        ("flow", "best.pt", "flow.pt"),
        ("teacher", "model.pt", "teacher.pt"),
        ("cm", "model.pt", "cm.pt"),
    ):
        (tmp_path / run).mkdir()
        shutil.copy(src / part, tmp_path / run / name)
    (tmp_path / "flow" / "config.json").write_text(json.dumps({"data": "train.h5", "val": "val.h5", "steps": 1200}))
    return tmp_path


def test_bundle_from_runs_with_calibration_and_provenance(runs, tmp_path, capsys):
    reference = tmp_path / "val.h5"
    with ShowerFile(shared_file("g4_photons_val_uniform.h5")) as f:
        write_showers(reference, f.read(0, 120))
    out = tmp_path / "bundle"
    threads = torch.get_num_threads()
    try:
        code = main(
            [
                "bundle",
                "--flow",
                str(runs / "flow"),
                "--teacher",
                str(runs / "teacher"),
                "--cm",
                str(runs / "cm"),
                "-o",
                str(out),
                "--data",
                str(reference),
                "--reference",
                str(reference),
            ]
        )
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    assert "N calibration fitted" in capsys.readouterr().out
    bundle = load_bundle(out)
    assert not bundle.calibration.is_identity
    prov = bundle.manifest["provenance"]
    assert prov["command"].startswith("caloclouds bundle --flow")
    shipped = {
        part: torch.load(
            runs.parent / runs.name / {"flow": "flow/best.pt"}.get(part, f"{part}/model.pt"), weights_only=True
        )
        for part in ("flow", "cm", "teacher")
    }
    steps = {
        "flow": shipped["flow"]["training"]["step"],
        "cm": shipped["cm"]["step"],
        "teacher": shipped["teacher"]["step"],
    }
    assert {p: v["training_step"] for p, v in prov["parts"].items()} == steps
    assert all(len(v["sha256"]) == 64 for v in prov["parts"].values())
    assert list(prov["data_files"].values())[0] == prov["calibration_reference"]["sha256"]
    assert "train-flow --data train.h5 --val val.h5" in prov["training_commands"]["flow"]
    assert prov["created_utc"].endswith("+00:00")
    assert sorted(p.name for p in out.iterdir()) == ["bundle.json", "cm.pt", "flow.pt", "teacher.pt"]
    assert main(["generate", "--model", str(out), "--energies", "50", "-n", "2", "-o", str(tmp_path / "x.h5")]) == 0


def test_bundle_refuses_the_package_and_bad_runs(runs, tmp_path, capsys):
    base = ["bundle", "--flow", str(runs / "flow"), "--cm", str(runs / "cm")]
    inside = default_bundle_path().parent / "test_bundle_should_not_exist"
    assert main([*base, "-o", str(inside)]) == 2
    assert "inside the installed package" in capsys.readouterr().err and not inside.exists()
    assert (
        main(["bundle", "--flow", str(runs / "cm" / "model.pt"), "--cm", str(runs / "cm"), "-o", str(tmp_path / "b")])
        == 2
    )
    assert "expected a 'shower_flow' checkpoint for --flow" in capsys.readouterr().err
    assert main(["bundle", "--flow", str(runs / "flow"), "--cm", str(tmp_path), "-o", str(tmp_path / "b")]) == 2
    assert "not a consistency-model run: no model.pt" in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    assert main([*base, "-o", str(busy)]) == 2
    assert "--overwrite" in capsys.readouterr().err and (busy / "keep.txt").exists()
    assert main([*base, "-o", str(busy), "--overwrite"]) == 0
    assert not (busy / "keep.txt").exists() and (busy / "bundle.json").is_file()
    assert not list(tmp_path.glob(".*.tmp"))


def test_bundle_takes_flow_run_folders_of_both_layouts(runs, tmp_path):
    """A train-flow run folder as this version leaves it (model.pt = the best flow, next to
    checkpoint.pt) and one of an earlier version (best.pt, last.pt) give the same flow.pt."""
    new = tmp_path / "flow_new"
    new.mkdir()
    ckpt = torch.load(runs / "flow" / "best.pt", weights_only=True)
    ckpt["training"].update(data="train.h5", val="val.h5", steps=1200)  # what train-flow records today
    torch.save(ckpt, new / "model.pt")
    shutil.copy(runs / "cm" / "model.pt", new / "checkpoint.pt")  # never the file bundled
    (runs / "flow" / "last.pt").write_bytes(b"not the file bundled either")
    for name, flow in (("new", new), ("old", runs / "flow")):
        assert main(["bundle", "--flow", str(flow), "--cm", str(runs / "cm"), "-o", str(tmp_path / name)]) == 0
    assert (tmp_path / "new" / "flow.pt").read_bytes() == (new / "model.pt").read_bytes()
    assert (tmp_path / "old" / "flow.pt").read_bytes() == (runs / "flow" / "best.pt").read_bytes()
    assert load_bundle(tmp_path / "new").flow().preprocessing.n_layers == 30
    # provenance: the flow's own training record (new layout) or its config.json (old layout)
    commands = {
        name: load_bundle(tmp_path / name).manifest["provenance"]["training_commands"]["flow"]
        for name in ("new", "old")
    }
    for name, folder in (("new", new), ("old", runs / "flow")):
        assert commands[name] == f"caloclouds train-flow --data train.h5 --val val.h5 --out {folder} (steps 1200)"
