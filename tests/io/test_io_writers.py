"""One writer protocol (issue 16): ``open_writer(path).write(showers, cells=None)`` for every format;
cells are written wherever they are asked for, or refused with one line naming the file. Files are
read back by the package's own readers (``iter_with_cells``, ``CellsReader``, ``read_calochallenge``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import projection
from caloclouds.errors import CaloCloudsError
from caloclouds.io import open_writer, read_showers
from caloclouds.io.cells import CellsReader
from caloclouds.io.formats import iter_with_cells
from caloclouds.io.writers import writer_format

THRESHOLD_MEV = 0.0735


@pytest.fixture(scope="module")
def showers_and_cells(shared):  # noqa: ANN001, ANN201
    showers = read_showers(shared("g4_photons_val_uniform.h5"), 0, 7)
    return showers, _cells(showers)


def _cells(showers):  # noqa: ANN001, ANN202
    return projection.project(showers, projection.get_geometry("ild"), threshold_mev=THRESHOLD_MEV)


def _write(path: Path, showers, cells, **options) -> None:  # noqa: ANN001
    """Two chunks (3 + 4 showers), with their cells when ``cells`` is given."""
    with open_writer(path, **options) as writer:
        for chunk in (showers[:3], showers[3:]):
            writer.write(chunk, cells=None if cells is None else _cells(chunk))


def _assert_same_cells(got, want) -> None:  # noqa: ANN001
    np.testing.assert_array_equal(np.asarray(got.offsets), want.offsets)
    for name in ("cell_id", "layer", "x_mm", "y_mm", "z_mm", "e_mev", "lost_mev", "below_threshold_mev"):
        np.testing.assert_allclose(np.asarray(getattr(got, name)), getattr(want, name), rtol=1e-6, err_msg=name)


@pytest.mark.parametrize("suffix", [".h5", ".root"])
def test_shower_files_keep_points_and_cells(tmp_path, showers_and_cells, suffix) -> None:
    showers, cells = showers_and_cells
    path = tmp_path / f"out{suffix}"
    _write(path, showers, cells)
    chunks = list(iter_with_cells(path))
    assert len(chunks) == 1
    back, back_cells = chunks[0]
    np.testing.assert_array_equal(back.points, showers.points)
    assert back_cells is not None, f"{suffix}: the cells were dropped"
    _assert_same_cells(back_cells, cells)


def test_cells_file_keeps_cells_and_energies(tmp_path, showers_and_cells) -> None:
    showers, cells = showers_and_cells
    path = tmp_path / "cells.h5"
    _write(path, showers, cells, format="cells", attrs={"geometry": "ild"})
    with CellsReader(path) as reader:
        assert len(reader) == len(showers)
        _assert_same_cells(reader.read(0, len(reader)), cells)
        _assert_same_cells(reader.read(3, 5), _cells(showers[3:5]))  # a chunk boundary inside the read
        np.testing.assert_array_equal(reader.incident_energy_gev(0, len(reader)), showers.incident_energy_gev)
        assert reader.attrs["geometry"] == "ild"


@pytest.mark.parametrize("fmt", ["hdf5", "cells"])
def test_hdf5_writers_shuffle_then_gzip_level_1(tmp_path, showers_and_cells, fmt) -> None:
    """The fast setting of both HDF5 writers (smaller files than gzip 4 alone, in 0.6 of its time)."""
    import h5py

    showers, cells = showers_and_cells
    path = tmp_path / "out.h5"
    _write(path, showers, cells, format=fmt)
    with h5py.File(path) as f:
        names = (
            ["cells/cell_id", "cells/e_mev", "cells/lost_mev", "points", "offsets"]
            if fmt == "hdf5"
            else ["cell_id", "e_mev", "lost_mev"]
        )
        for name in names:
            assert (f[name].compression, f[name].compression_opts, f[name].shuffle) == ("gzip", 1, True), name


def test_cells_file_without_cells_is_refused_naming_the_file(tmp_path, showers_and_cells) -> None:
    showers, _ = showers_and_cells
    path = tmp_path / "cells.h5"
    with pytest.raises(CaloCloudsError, match=rf"{path.name}: a cells file stores cell hits") as info:
        _write(path, showers, None, format="cells")
    assert "\n" not in str(info.value) and not path.exists()


def test_calochallenge_writer_keeps_the_protocol_and_refuses_cells(tmp_path, showers_and_cells) -> None:
    """The voxel package's writer (the data layer's open_writer knows no model formats)."""
    from caloclouds.voxel.calochallenge import CaloChallengeWriter, read_calochallenge
    from caloclouds.voxel.mesh import calochallenge_ds2_like
    from caloclouds.voxel.voxelize import voxelize

    showers, cells = showers_and_cells
    mesh = calochallenge_ds2_like()
    path = tmp_path / "voxels.h5"
    with CaloChallengeWriter(path, mesh) as writer:
        for chunk in (showers[:3], showers[3:]):
            writer.write(voxelize(chunk, mesh))
    voxels = voxelize(showers, mesh)
    back = read_calochallenge(path)
    np.testing.assert_allclose(back.energy_mev, voxels.energy_mev)
    np.testing.assert_allclose(back.incident_energy_gev, showers.incident_energy_gev, rtol=1e-6)
    refused = tmp_path / "refused.h5"
    with pytest.raises(
        CaloCloudsError, match=rf"{refused.name}: a CaloChallenge file stores voxel energies only"
    ) as info:
        with CaloChallengeWriter(refused, mesh) as writer:
            writer.write(voxels, cells=cells)
    assert "\n" not in str(info.value) and not refused.exists()
    with pytest.raises(CaloCloudsError, match=r"a\.root: a hdf5 file needs the extension \.h5 or \.hdf5"):
        CaloChallengeWriter(tmp_path / "a.root", mesh)


def test_formats_and_suffixes_are_checked(tmp_path) -> None:
    assert writer_format(tmp_path / "a.ROOT") == "root" and writer_format(tmp_path / "a.hdf5") == "hdf5"
    assert writer_format(tmp_path / "a.h5", "cells") == "cells"
    with pytest.raises(CaloCloudsError, match=r"a\.txt: unknown output extension '\.txt'"):
        open_writer(tmp_path / "a.txt")
    with pytest.raises(CaloCloudsError, match=r"unknown output format 'csv'; valid formats are hdf5, root, cells$"):
        open_writer(tmp_path / "a.h5", format="csv")
    with pytest.raises(CaloCloudsError, match=r"a\.root: a cells file needs the extension \.h5 or \.hdf5"):
        open_writer(tmp_path / "a.root", format="cells")
    with pytest.raises(CaloCloudsError, match=r"unknown output format 'calochallenge'"):
        open_writer(tmp_path / "a.h5", format="calochallenge")  # the voxel package's CaloChallengeWriter


def test_generate_cells_to_hdf5_writes_the_cells(tmp_path) -> None:
    """Regression (issue 16): ``generate --cells ild -o x.h5`` recorded ``cells: ild`` but wrote no cells."""
    from caloclouds.cli import main
    from caloclouds.generation.bundle import load_bundle
    from caloclouds.generation.pipeline import cell_threshold_mev

    out = tmp_path / "x.h5"
    assert main(["generate", "--energies", "20", "60", "-n", "2", "--cells", "ild", "-o", str(out)]) == 0
    chunks = list(iter_with_cells(out))
    showers, cells = chunks[0]
    assert len(chunks) == 1 and len(showers) == 4
    assert cells is not None, "generate --cells ild -o x.h5 wrote no cells"
    threshold = cell_threshold_mev(load_bundle("default").config)
    expected = projection.project(showers, projection.get_geometry("ild"), threshold_mev=threshold)
    _assert_same_cells(cells, expected)
    assert len(cells.e_mev) > 0 and np.all(cells.e_mev >= threshold)
