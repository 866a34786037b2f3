"""Format detection, read_any and convert_file (including bad input and atomic output)."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from caloclouds.errors import InputFileError
from caloclouds.io import formats, read_any
from caloclouds.io.formats import convert_file, count_showers, detect_format
from caloclouds.io.hdf5 import read_showers, write_showers
from caloclouds.io.root import read_root, write_root
from caloclouds.showers import Showers


@pytest.fixture
def small() -> Showers:
    pts = np.array([[0, 0, 1, 0.5], [1, 1, 2, 0.25], [2, 2, 3, 1.0]], np.float32)
    return Showers.from_counts(pts, np.array([2, 1]), np.array([10.0, 20.0]))


@pytest.mark.parametrize(
    ("name", "fmt", "n"),
    [
        ("g4_photons_val_fixed.h5", "hdf5", 600),
        ("g4_raw_steps_sample.h5", "steps", 6),
        ("ild_caloclouds_mini_sample.hdf5", "caloclouds", 2),
        ("ild_single_photon.edm4hep.root", "edm4hep", 1),
    ],
)
def test_detect_shared_files(shared, name, fmt, n) -> None:
    path = shared(name)
    assert detect_format(path) == fmt
    assert count_showers(path) == n


def test_read_any_own_formats(tmp_path, small) -> None:
    write_showers(tmp_path / "a.h5", small)
    write_root(tmp_path / "a.root", small)
    assert detect_format(tmp_path / "a.h5") == "hdf5"
    assert detect_format(tmp_path / "a.root") == "root"
    for name in ("a.h5", "a.root"):
        back = read_any(tmp_path / name)
        np.testing.assert_array_equal(back.points, small.points)
        np.testing.assert_array_equal(back.offsets, small.offsets)


def test_read_any_shared_small_files(shared) -> None:
    assert read_any(shared("ild_caloclouds_mini_sample.hdf5")).n_points.tolist() == [163, 236]
    steps = read_any(shared("g4_raw_steps_sample.h5"))
    assert len(steps) == 6 and steps.layer.max() <= 29


def test_unknown_formats(tmp_path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(InputFileError, match=r"notes.txt: not an HDF5 or ROOT file; supported formats: hdf5 = "):
        read_any(text)
    fake = tmp_path / "fake.root"
    fake.write_text("not root at all")
    with pytest.raises(
        InputFileError, match=r"fake.root: not an HDF5 or ROOT file \(the .root extension but no ROOT header\)"
    ):
        read_any(fake)
    with pytest.raises(InputFileError, match=r"fake.root: not a ROOT file"):
        read_any(fake, format="edm4hep")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["foo"] = np.zeros(3)
    with pytest.raises(InputFileError, match=r"datasets \['foo'\], which match no known layout; supported formats"):
        read_any(other)
    with pytest.raises(InputFileError, match="unknown format 'csv'"):
        read_any(other, format="csv")
    with pytest.raises(InputFileError, match="missing.h5: file not found"):
        read_any(tmp_path / "missing.h5")


def test_truncated_files(tmp_path, small) -> None:
    for name, writer in (("t.h5", write_showers), ("t.root", write_root)):
        full = tmp_path / f"full_{name}"
        writer(full, small)
        data = full.read_bytes()
        cut = tmp_path / name
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(InputFileError, match=r"truncated") as info:
            read_any(cut)
        assert name in str(info.value) and "\n" not in str(info.value)


def test_convert_steps_to_root(shared, tmp_path) -> None:
    out = tmp_path / "steps.root"
    assert convert_file(shared("g4_raw_steps_sample.h5"), out) == (6, 13589)
    back = read_root(out)
    np.testing.assert_allclose(back.visible_energy_mev(), back.conditions["raw_visible_mev"], rtol=1e-4)


def test_interrupted_convert_leaves_no_file(tmp_path, small, monkeypatch) -> None:
    src = tmp_path / "src.h5"
    write_showers(src, small)

    def failing(*args, **kwargs):
        yield small
        raise KeyboardInterrupt

    monkeypatch.setattr(formats, "iter_any", failing)
    for name in ("out.h5", "out.root"):
        with pytest.raises(KeyboardInterrupt):
            convert_file(src, tmp_path / name)
        assert not (tmp_path / name).exists()
    # an existing output keeps its old content
    shutil.copy(src, tmp_path / "old.h5")
    with pytest.raises(KeyboardInterrupt):
        convert_file(src, tmp_path / "old.h5")
    np.testing.assert_array_equal(read_showers(tmp_path / "old.h5").points, small.points)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.h5", "src.h5"]


def test_convert_rejects_bad_output(tmp_path, small) -> None:
    src = tmp_path / "src.h5"
    write_showers(src, small)
    with pytest.raises(InputFileError, match=r"unknown output extension '.txt'"):
        convert_file(src, tmp_path / "out.txt")
    with pytest.raises(InputFileError, match="output would overwrite the input"):
        convert_file(src, src)
