"""The dispatcher: help, unknown verbs and device checks, all without tracebacks."""

from __future__ import annotations

import os

import pytest
import torch

from caloclouds.cli import VERBS, main


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


@pytest.mark.filterwarnings("always::flows.sampling.EnergyRangeWarning")
def test_a_warning_is_one_line_above_the_bar_not_python_s_form(tmp_path, capsys) -> None:
    assert main(["generate", "--energies", "96", "-n", "1", "-o", str(tmp_path / "w.h5")]) == 0
    err = capsys.readouterr().err
    assert "caloclouds generate: warning: incident energies 96-96 GeV reach outside" in err, err
    assert "EnergyRangeWarning" not in err and "warnings.warn" not in err and ".py:" not in err


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
