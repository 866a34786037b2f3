"""Fixtures of the PointWise Net tests: a small synthetic shower file and a tiny config."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from caloclouds.config import RunConfig
from caloclouds.io import write_showers
from caloclouds.showers import Showers

TINY_HIDDEN = (16, 32, 16)  # network widths of the fast tests


def make_toy_showers(n_showers: int = 40, seed: int = 0) -> Showers:
    """Shower-like point clouds: Gaussian core, exponential-ish depth, log-normal energies."""
    rng = np.random.default_rng(seed)
    energy = rng.uniform(10, 90, n_showers).astype(np.float32)
    counts = (energy * 3 + rng.integers(0, 20, n_showers)).astype(np.int64)
    p = int(counts.sum())
    pitch = 5.088333 / 6
    xy = rng.standard_t(3, size=(p, 2)) * 4.0
    xy = (np.floor(xy / pitch) + 0.5) * pitch
    layer = np.clip(np.floor(rng.gamma(4.0, 3.5, p)), 0, 29)
    e = np.exp(rng.normal(-1.2, 1.2, p))
    points = np.column_stack([xy, layer, e]).astype(np.float32)
    return Showers.from_counts(points, counts, energy)


@pytest.fixture(scope="session")
def toy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("toy") / "toy.h5"
    write_showers(path, make_toy_showers())
    return path


@pytest.fixture
def tiny_config() -> RunConfig:
    cfg = RunConfig()
    return dataclasses.replace(
        cfg,
        diffusion=dataclasses.replace(
            cfg.diffusion,
            hidden=TINY_HIDDEN,
            fourier_features=16,
            time_features=16,
            batch_size=4,
            learning_rate=3e-3,
            checkpoint_every=1000,
        ),
        distillation=dataclasses.replace(
            cfg.distillation, batch_size=4, learning_rate=1e-3, checkpoint_every=1000, num_steps=8
        ),
    )


@pytest.fixture(autouse=True)
def _one_thread():
    """The CI machine has 2 shared cores: small tensors run fastest on one thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
