"""Shared test fixtures.

Real data is read from ``../shared/data`` (or ``$CALOCLOUDS_DATA``); tests that need a file skip
cleanly when it is absent. Nothing is ever downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("CALOCLOUDS_DATA", ROOT.parent / "shared" / "data"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default="cpu", help="torch device for model tests (cpu or cuda)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.fixture
def device(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--device")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR


def shared_file(name: str) -> Path:
    """Path of a file in the shared data folder; skips the test if it is not there."""
    path = DATA_DIR / name
    if not path.is_file():
        pytest.skip(f"shared data file {path} not available")
    return path


@pytest.fixture(scope="session")
def shared():
    """``shared("g4_photons_train.h5")`` -> Path, skipping the test if the file is absent.

    The one way tests find the shared data (``$CALOCLOUDS_DATA``, else ``../shared/data``);
    session-scoped, so that module- and session-scoped fixtures can use it too."""
    return shared_file


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def train_tiny_bundle(root: Path, config, data, *, flow_data: Path, teacher_steps: int, val=None) -> Path:  # noqa: ANN001
    """Train a tiny flow (on ``flow_data``), EDM teacher and CM (10 steps, both on ``data``) under
    ``root`` on one thread and assemble them into the bundle folder ``root/model``."""
    import shutil

    import torch

    from caloclouds.diffusion.training import distill, train_diffusion
    from caloclouds.generation.bundle import write_bundle_manifest
    from flows.training import train_shower_flow

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_shower_flow(config, data=flow_data, out=root / "flow", progress=False)
        train_diffusion(config, data, root / "teacher", steps=teacher_steps, progress=False, val=val)
        distill(root / "teacher", data, root / "cm", steps=10, progress=False, val=val)
    finally:
        torch.set_num_threads(threads)
    bundle = root / "model"
    bundle.mkdir()
    shutil.copy(root / "flow" / "model.pt", bundle / "flow.pt")
    shutil.copy(root / "teacher" / "model.pt", bundle / "teacher.pt")
    shutil.copy(root / "cm" / "model.pt", bundle / "cm.pt")
    write_bundle_manifest(bundle, config)
    return bundle


@pytest.fixture(scope="session")
def make_tiny_bundle():
    """``make_tiny_bundle(root, config, data, flow_data=F, teacher_steps=N, val=None) -> bundle folder``."""
    return train_tiny_bundle
