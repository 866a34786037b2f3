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
    return _export_on_one_thread(default_bundle, tmp_path_factory.mktemp("export") / "caloclouds_ddml.pt")


def _export_on_one_thread(bundle, path: Path) -> Path:  # noqa: ANN001
    """``export_torchscript(bundle, path)`` with torch on one thread while scripting; returns ``path``."""
    from caloclouds.export.torchscript import export_torchscript

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        export_torchscript(bundle, path)
    finally:
        torch.set_num_threads(threads)
    return path


@pytest.fixture(scope="session")
def direction_bundle(tmp_path_factory: pytest.TempPathFactory, make_tiny_bundle, shared):  # noqa: ANN001
    """A tiny direction-aware bundle (issue 25): flow conditioned on theta_deg, per-layer PointWise
    Net on tan(theta), trained for a few steps on 80 angled and 40 normal-incidence Geant4 showers."""
    from caloclouds.config import RunConfig
    from caloclouds.io import ShowerFile, write_showers
    from tests.tiny_models import tiny_direction_run_config

    root = tmp_path_factory.mktemp("direction_bundle")
    angled, normal = root / "angled.h5", root / "normal.h5"
    with ShowerFile(shared("g4_photons_angled_val.h5")) as f:
        write_showers(angled, f.read(0, 80))
    with ShowerFile(shared("g4_photons_val_fixed.h5")) as f:
        write_showers(normal, f.read(0, 40))
    data = [angled, normal]
    return make_tiny_bundle(root, tiny_direction_run_config(RunConfig()), data, flow_data=data, teacher_steps=20)


@pytest.fixture(scope="session")
def direction_exported(direction_bundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny direction-aware bundle exported to TorchScript."""
    from caloclouds.generation.bundle import load_bundle

    path = tmp_path_factory.mktemp("direction_export") / "caloclouds_ddml.pt"
    return _export_on_one_thread(load_bundle(direction_bundle), path)
