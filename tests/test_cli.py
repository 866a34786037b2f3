"""The dispatcher: help, unknown verbs and device checks, all without tracebacks."""

from __future__ import annotations

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
