"""Geometries shared by the projection tests, built once per session (skipped if the data is absent)."""

from __future__ import annotations

import pytest

import projection


@pytest.fixture(scope="session")
def hgcal(shared) -> projection.Geometry:  # noqa: ANN001
    return projection.get_geometry("hgcal", data_dir=shared("hgcal_ce_e_26layers.npz").parent)


@pytest.fixture(scope="session")
def ild_real(shared) -> projection.Geometry:  # noqa: ANN001
    return projection.get_geometry("ild-real", data_dir=shared("ild_ecal_barrel_cells.npz").parent)
