"""`caloclouds bench` on the user's paths: model only, generate to ROOT and HDF5, the TorchScript export."""

from __future__ import annotations

import json

import torch

from caloclouds.cli import main


def test_bench_times_every_path_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    threads = torch.get_num_threads()
    try:
        assert main(["bench", "-n", "3", "--edm-steps", "0", "--g4-ms-per-shower", "500", "--json", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    text = capsys.readouterr().out
    assert "generate --batch-size 1 --cells ild -o x.root" in text and "TorchScript export" in text
    assert "generate to ROOT / model only" in text and "speed-up vs Geant4" in text
    report = json.loads(out.read_text())
    ms = report["ms_per_shower"]
    assert set(ms) == {"model", "model_mean", "model+projection", "generate_root", "generate_hdf5", "torchscript"}
    assert all(v > 0 for v in ms.values())
    assert report["speed_up"]["model"] == 500 / ms["model"]
    assert report["threads"] == 1 and report["batch"] == 1 and report["n"] == 3


def test_bench_skips_and_errors(tmp_path, capsys):
    threads = torch.get_num_threads()
    try:
        assert main(["bench", "-n", "2", "--edm-steps", "0", "--no-files", "--no-torchscript", "--cells", "none"]) == 0
        assert "generate --batch-size 1" not in capsys.readouterr().out
        assert main(["bench", "--g4-ms-per-shower", "0"]) == 2
        assert "--g4-ms-per-shower must be > 0" in capsys.readouterr().err
        assert main(["bench", "--json", str(tmp_path / "b.txt")]) == 2
        assert "unknown extension" in capsys.readouterr().err
    finally:
        torch.set_num_threads(threads)
