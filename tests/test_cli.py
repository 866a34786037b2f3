"""The dispatcher: help, unknown verbs and device checks, all without tracebacks."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch

from caloclouds.cli import VERBS, main
from caloclouds.io import read_showers
from flows.sampling import EnergyRangeWarning


def test_help_lists_every_verb(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in VERBS:
        assert verb in out


def test_every_verb_has_help(capsys):
    for verb in VERBS:
        with pytest.raises(SystemExit) as exit_info:
            main([verb, "--help"])
        assert exit_info.value.code == 0
    assert "usage: caloclouds" in capsys.readouterr().out


def test_unknown_verb(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown verb 'frobnicate'" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_unavailable_and_unknown_devices(tmp_path, capsys):
    out = str(tmp_path / "x.h5")
    assert main(["generate", "--energies", "50", "-n", "1", "--device", "cuda", "-o", out]) == 2
    assert "no CUDA device" in capsys.readouterr().err
    assert main(["generate", "--energies", "50", "-n", "1", "--device", "gpu", "-o", out]) == 2
    assert "not a torch device" in capsys.readouterr().err


def test_energies_outside_the_training_range_are_refused_unless_asked_for(tmp_path, capsys) -> None:
    """One rule: outside the flow's training range (10-89.99 GeV, 1 % of its width of tolerance)
    generate refuses, before writing anything; --allow-extrapolation generates there with one warning,
    in one line above the progress bar (not Python's file:line form), not one per batch."""
    out = tmp_path / "w.h5"
    assert main(["generate", "--energies", "96", "-n", "1", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "incident energy 96 GeV is outside the model's training range 10-89.99 GeV" in err, err
    assert "--allow-extrapolation" in err and not out.exists()
    # inside the tolerance: no warning at all
    with warnings.catch_warnings():
        warnings.simplefilter("error", EnergyRangeWarning)
        assert main(["generate", "--energies", "10", "90.5", "-n", "1", "-o", str(out)]) == 0
    assert "warning" not in capsys.readouterr().err
    args = ["generate", "--energies", "96", "-n", "3", "--batch-size", "1", "--allow-extrapolation"]
    with warnings.catch_warnings():
        warnings.simplefilter("always", EnergyRangeWarning)  # a warning per batch would show three times
        assert main([*args, "-o", str(out), "--overwrite"]) == 0
    err = capsys.readouterr().err
    assert err.count("caloclouds generate: warning: incident energies 96-96 GeV reach outside") == 1, err
    assert "EnergyRangeWarning" not in err and "warnings.warn" not in err and ".py:" not in err
    assert read_showers(out).incident_energy_gev.tolist() == [96.0] * 3


def test_the_deprecated_sampler_is_a_note_and_the_new_options(tmp_path, capsys) -> None:
    """``--sampler edm`` goes through the one shim: a one-line note, then ``--model-part teacher
    --solver heun``; a clash with the new spelling is one line, and nothing is written."""
    args = ["generate", "--energies", "40", "-n", "2", "--steps", "2", "--seed", "3"]
    assert main([*args, "--sampler", "edm", "-o", str(tmp_path / "a.h5")]) == 0
    note = "caloclouds generate: note: --sampler edm is deprecated; use --model-part teacher --solver heun"
    assert note in capsys.readouterr().err
    assert main([*args, "--model-part", "teacher", "--solver", "heun", "-o", str(tmp_path / "b.h5")]) == 0
    assert "deprecated" not in capsys.readouterr().err
    a, b = read_showers(tmp_path / "a.h5"), read_showers(tmp_path / "b.h5")
    assert np.array_equal(a.points, b.points) and np.array_equal(a.offsets, b.offsets)
    assert main([*args, "--sampler", "edm", "--model-part", "cm", "-o", str(tmp_path / "c.h5")]) == 2
    assert "--sampler edm means --model-part teacher" in capsys.readouterr().err
    assert not (tmp_path / "c.h5").exists()


def test_an_existing_output_is_refused_before_any_work(tmp_path, capsys) -> None:
    out = tmp_path / "x.h5"
    out.write_bytes(b"keep")
    assert main(["generate", "--energies", "50", "-n", "1", "-o", str(out)]) == 2
    assert "--output" in capsys.readouterr().err and out.read_bytes() == b"keep"
    assert main(["generate", "--energies", "50", "-n", "1", "-o", str(tmp_path / "x.csv")]) == 2
    assert "unknown extension '.csv'" in capsys.readouterr().err


def test_every_verb_takes_threads_with_a_default_of_one(capsys) -> None:
    from caloclouds.cli import VERBS
    from caloclouds.cli.options import resolve_threads

    for verb in VERBS:
        with pytest.raises(SystemExit):
            main([verb, "--help"])
        assert "--threads" in capsys.readouterr().out, verb
    env = os.environ.pop("OMP_NUM_THREADS", None)
    try:
        assert resolve_threads(None) == 1 and resolve_threads(3) == 3
        os.environ["OMP_NUM_THREADS"] = "2"
        assert resolve_threads(None) == 2
    finally:
        os.environ.pop("OMP_NUM_THREADS", None) if env is None else os.environ.__setitem__("OMP_NUM_THREADS", env)


def test_help_is_a_table_of_contents(capsys) -> None:
    """``caloclouds --help`` lists every verb once, under its section, in the sections' order."""
    from caloclouds.cli import SECTIONS

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    listed = [verb for verbs in SECTIONS.values() for verb in verbs]
    assert sorted(listed) == sorted(VERBS)  # each verb in exactly one section
    positions = [out.index(f"\n{section}:\n") for section in SECTIONS]
    assert positions == sorted(positions)
    for section, verbs in SECTIONS.items():
        block = out[out.index(f"\n{section}:\n") :].split("\n\n", 1)[0]
        assert [line.split()[0] for line in block.strip().splitlines()[1:]] == list(verbs)
    assert "bench-flow" not in out  # deprecated verbs are not advertised


def test_old_bench_verbs_run_bench_with_a_target(capsys) -> None:
    """bench-flow (and bench-diffusion, bench-projection) run ``bench flow`` with a note, with their
    old options (--flow is --model); the output is the target's."""
    from flows import default_flow_path

    args = ["--repeats", "3", "--warmup", "1"]
    assert main(["bench-flow", "--flow", str(default_flow_path()), *args]) == 0
    captured = capsys.readouterr()
    assert "bench-flow is deprecated; use caloclouds bench flow" in captured.err
    assert "--flow is deprecated; use --model" in captured.err
    old = captured.out
    assert main(["bench", "flow", *args]) == 0
    new = capsys.readouterr().out
    assert old.splitlines()[0] == new.splitlines()[0] and "ms per call" in new and "1 thread(s)" in new
    assert main(["bench", "diffusion", "--model", "nowhere.pt"]) == 2
    capsys.readouterr()
    assert main(["bench", "--edm-steps", "2", "--teacher-steps", "3", "--json", "x.txt"]) == 2  # one shim, for all
    assert "--edm-steps is the deprecated spelling of --teacher-steps: give one of them" in capsys.readouterr().err


def test_deprecated_cells_and_energies_file_write_the_same_file(tmp_path, capsys) -> None:
    """--cells and --energies-file are the old spellings of --geometry and --energies-from: the same
    bytes, with a note each; giving both spellings of one option is an error."""
    energies = tmp_path / "e.txt"
    energies.write_text("# GeV\n25\n\n45.5\n")
    old = ["generate", "--energies-file", str(energies), "--cells", "ild", "-o", str(tmp_path / "old.h5")]
    new = ["generate", "--energies-from", str(energies), "--geometry", "ild", "-o", str(tmp_path / "new.h5")]
    assert main(old) == 0
    err = capsys.readouterr().err
    assert "--cells is deprecated; use --geometry" in err and "--energies-file is deprecated" in err
    assert main(new) == 0
    assert "deprecated" not in capsys.readouterr().err
    assert (tmp_path / "old.h5").read_bytes() == (tmp_path / "new.h5").read_bytes()
    clash = [*new[:-1], str(tmp_path / "x.h5"), "--cells", "hgcal"]
    assert main(clash) == 2 and "give one of them" in capsys.readouterr().err


def test_energies_from_reads_text_and_shower_files(tmp_path, shared) -> None:
    from caloclouds.errors import InputFileError
    from caloclouds.generation.energies import energies_from_file
    from caloclouds.io import ShowerFile

    reference = shared("g4_photons_val_uniform.h5")
    with ShowerFile(reference) as f:
        expected = np.asarray(f.incident_energy_gev[:7], dtype=np.float32)
    assert np.array_equal(energies_from_file(reference, n_showers=7), expected)
    text = tmp_path / "e.txt"
    text.write_text("\n".join(f"{e!r}" for e in expected.tolist()) + "\n# the end\n")
    assert np.array_equal(energies_from_file(text), expected)
    assert np.array_equal(energies_from_file(text, n_showers=3), expected[:3])
    with pytest.raises(InputFileError, match="fewer than -n 8"):
        energies_from_file(text, n_showers=8)
    (tmp_path / "bad.txt").write_text("12\nfifty\n")
    with pytest.raises(InputFileError, match="line 2"):
        energies_from_file(tmp_path / "bad.txt")
