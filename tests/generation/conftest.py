"""Fixtures of the generation tests."""

from __future__ import annotations

import pytest

from tests.tiny_models import tiny_run_config


@pytest.fixture(scope="session")
def tiny_config():
    """``tiny_config(base_run_config) -> RunConfig`` with tiny models (the detector of ``base`` kept)."""
    return tiny_run_config
