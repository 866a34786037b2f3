"""Fixtures of the export tests: the bundled model, its TorchScript export (made once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def default_bundle():
    from caloclouds.generation.bundle import load_bundle

    return load_bundle("default")


@pytest.fixture(scope="session")
def exported(default_bundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled model exported to TorchScript (one thread while scripting)."""
    from caloclouds.export.torchscript import export_torchscript

    path = tmp_path_factory.mktemp("export") / "caloclouds_ddml.pt"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        export_torchscript(default_bundle, path)
    finally:
        torch.set_num_threads(threads)
    return path
