"""Fixtures of the Shower Flow tests: a tiny flow trained once per session on real showers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from caloclouds.config import RunConfig
from tests.tiny_models import TINY_FLOW

TINY_STEPS = 200


def tiny_config(**overrides: object) -> RunConfig:
    """A flow small enough to train a few hundred steps in seconds."""
    flow = dataclasses.replace(TINY_FLOW, batch_size=64, steps=TINY_STEPS, eval_every=100, chunk_showers=250)
    return RunConfig(flow=dataclasses.replace(flow, **overrides))


@pytest.fixture
def make_tiny_config():
    """``make_tiny_config(**flow_overrides) -> RunConfig`` of a tiny flow."""
    return tiny_config


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, shared) -> Path:  # noqa: ANN001
    """Run folder of a tiny flow trained on the fixed-energy validation file (10, 50, 90 GeV)."""
    from flows.training import train_shower_flow

    data = shared("g4_photons_val_fixed.h5")
    out = tmp_path_factory.mktemp("tiny_flow")
    torch.set_num_threads(1)
    train_shower_flow(tiny_config(), data=data, val=data, out=out, progress=False, seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_flow(tiny_run: Path):
    from flows import load_shower_flow

    return load_shower_flow(tiny_run)
