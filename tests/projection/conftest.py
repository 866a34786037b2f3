"""Geometries shared by the projection tests, built once per session (skipped if the data is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import projection

DATA_DIR = Path(os.environ.get("CALOCLOUDS_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))


def _data(name: str) -> Path:
    path = DATA_DIR / name
    if not path.is_file():
        pytest.skip(f"shared data file {path} not available")
    return path


@pytest.fixture(scope="session")
def hgcal() -> projection.Geometry:
    return projection.get_geometry("hgcal", data_dir=_data("hgcal_ce_e_26layers.npz").parent)


@pytest.fixture(scope="session")
def ild_real() -> projection.Geometry:
    return projection.get_geometry("ild-real", data_dir=_data("ild_ecal_barrel_cells.npz").parent)
