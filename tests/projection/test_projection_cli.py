"""The `project`, `plot-shower` and `bench-projection` verbs, and the cells file."""

from __future__ import annotations

import numpy as np
import pytest

import projection
from caloclouds.cli import main
from caloclouds.config import ILD_LIKE_DETECTOR
from caloclouds.io import read_showers, write_showers
from projection.cellfile import read_cells


@pytest.fixture
def small_file(shared, tmp_path):
    showers = read_showers(shared("g4_photons_val_fixed.h5"), 195, 205)
    path = tmp_path / "small.h5"
    write_showers(path, showers)
    return path, showers


def test_project_to_h5_conserves_energy(small_file, tmp_path, capsys) -> None:
    path, showers = small_file
    out = tmp_path / "cells.h5"
    assert (
        main(
            [
                "project",
                "--geometry",
                "ild",
                "--in",
                str(path),
                "-o",
                str(out),
                "--threshold-mev",
                "0.08",
                "--impact",
                "1.5",
                "-2",
            ]
        )
        == 0
    )
    assert "below threshold" in capsys.readouterr().out
    cells, energy, attrs = read_cells(out)
    assert attrs["geometry"] == "ild"
    np.testing.assert_allclose(energy, showers.incident_energy_gev)
    total = cells.energy_mev() + cells.lost_mev + cells.below_threshold_mev
    np.testing.assert_allclose(total, showers.visible_energy_mev(), rtol=1e-6)
    direct = projection.project(showers, projection.get_geometry("ild"), threshold_mev=0.08, impact_mm=(1.5, -2.0))
    np.testing.assert_array_equal(cells.cell_id, direct.cell_id)


def test_project_to_root(small_file, tmp_path, capsys) -> None:
    pytest.importorskip("uproot")
    path, showers = small_file
    out = tmp_path / "cells.root"
    assert main(["project", "--geometry", "hex:8", "--in", str(path), "-o", str(out), "--threshold-mip", "0.5"]) == 0
    import uproot

    with uproot.open(out) as f:
        tree = f["events"]
        assert tree.num_entries == len(showers)
        e = tree["cells_e_mev"].array(library="np")
    assert min(v.min() for v in e if len(v)) >= 0.5 * ILD_LIKE_DETECTOR.mip_mev


def test_project_bad_geometry_and_output(small_file, tmp_path, capsys) -> None:
    path, _ = small_file
    assert main(["project", "--geometry", "cms", "--in", str(path), "-o", str(tmp_path / "x.h5")]) == 2
    assert "valid names: ild, ild-real, hgcal" in capsys.readouterr().err
    assert main(["project", "--geometry", "ild", "--in", str(path), "-o", str(tmp_path / "x.csv")]) == 2
    assert "unknown extension '.csv'" in capsys.readouterr().err


def test_plot_shower_writes_png(small_file, tmp_path, capsys) -> None:
    path, _ = small_file
    out = tmp_path / "shower.png"
    assert (
        main(
            [
                "plot-shower",
                str(path),
                "--index",
                "5",
                "--geometry",
                "hex:10",
                "-o",
                str(out),
                "--layers",
                "8-13",
                "--dpi",
                "40",
            ]
        )
        == 0
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot-shower", str(path), "--index", "99", "--geometry", "ild", "-o", str(out)]) == 2


def test_bench_projection_runs(small_file, capsys) -> None:
    path, _ = small_file
    assert main(["bench-projection", "--in", str(path), "--geometry", "ild", "--showers", "20", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "M points/s" in out and "ild" in out
