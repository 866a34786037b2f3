"""`caloclouds bench` on the user's paths: model only, generate to ROOT and HDF5, the TorchScript export."""

from __future__ import annotations

import json

import torch

from caloclouds.cli import main
from caloclouds.generation.bench import speed_up


def test_bench_times_every_path_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    threads = torch.get_num_threads()
    try:
        assert main(["bench", "-n", "3", "--edm-steps", "0", "--g4-ms-per-shower", "500", "--json", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    text = capsys.readouterr().out
    assert "generate --batch-size 1 --geometry ild -o x.root" in text and "TorchScript export" in text
    assert "generate to ROOT / model only" in text and "speed-up vs Geant4" in text
    report = json.loads(out.read_text())
    ms = report["ms_per_shower"]
    assert set(ms) == {"model", "model_mean", "model+projection", "generate_root", "generate_hdf5", "torchscript"}
    assert all(v > 0 for v in ms.values())
    for key, gain in report["speed_up"].items():  # the table prints the same speed-ups as the JSON
        assert f"| {ms[key]:.2f} | {gain:.0f}x |" in text, key
    assert report["speed_up"]["model"] > 1  # Geant4 (500 ms) over the model (a few ms), not the inverse
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


def test_speed_up_is_how_many_times_faster_than_geant4() -> None:
    assert speed_up(500.0, 250.0) == 2.0 and speed_up(30.0, 120.0) == 0.25
    assert speed_up(None, 3.0) is None and speed_up(500.0, 0.0) is None  # no Geant4 time, or no time
