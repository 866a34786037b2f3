"""A projection that loses more than 1 % of the energy says so, naming the cause (issue 26 item 11)."""

from __future__ import annotations

import pytest

import projection
from caloclouds.io import ShowerFile, write_showers
from projection.errors import ProjectionLossWarning
from projection.files import project_file


@pytest.fixture(scope="module")
def showers_file(shared, tmp_path_factory):  # noqa: ANN001, ANN201
    path = tmp_path_factory.mktemp("loss") / "s.h5"
    with ShowerFile(shared("g4_photons_val_fixed.h5")) as f:
        write_showers(path, f.read(190, 210))  # 50 and 90 GeV: deep showers reach layers 26-29
    return path


def test_layers_the_layer_map_drops_are_named(showers_file, shared, tmp_path) -> None:  # noqa: ANN001
    shared("hgcal_ce_e_26layers.npz")
    hgcal = projection.get_geometry("hgcal")
    with pytest.warns(ProjectionLossWarning, match=r"in shower layers that the 'identity' layer map sends to no layer"):
        summary = project_file(showers_file, tmp_path / "a.h5", hgcal, layer_map="identity")
    assert 0.01 < summary.unmapped_mev / summary.input_mev == pytest.approx(summary.lost_mev / summary.input_mev)


def test_a_gap_on_the_axis_is_named(showers_file, tmp_path) -> None:  # noqa: ANN001
    with pytest.warns(ProjectionLossWarning, match=r"outside the cells of square:5:8:1") as record:
        summary = project_file(showers_file, tmp_path / "b.h5", projection.get_geometry("square:5:8:1"))
    assert summary.lost_mev > 0.2 * summary.input_mev and "layer map" not in str(record[0].message)


def test_a_projection_that_keeps_the_energy_is_silent(showers_file, tmp_path) -> None:  # noqa: ANN001
    summary = project_file(showers_file, tmp_path / "c.h5", projection.get_geometry("ild"))  # warnings are errors here
    assert summary.lost_mev < 0.01 * summary.input_mev
