"""ROOT output: branch layout, chunked writing, round trip, atomic writes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import uproot

from caloclouds.errors import InputFileError
from caloclouds.io.root import RootWriter, count_root, is_caloclouds_root, iter_root, read_root, write_root
from caloclouds.showers import Showers


def _showers(rng, n=5) -> Showers:
    counts = rng.integers(0, 20, n)
    pts = np.c_[
        rng.normal(0, 10, (counts.sum(), 2)), rng.integers(0, 30, counts.sum()), rng.uniform(0, 1, counts.sum())
    ]
    return Showers.from_counts(
        pts.astype(np.float32),
        counts,
        rng.uniform(10, 90, n),
        {
            "raw_visible_mev": rng.uniform(0, 1, n).astype(np.float32),
            "angles": rng.normal(size=(n, 2)).astype(np.float32),
        },
    )


def _cells(showers: Showers, rng) -> SimpleNamespace:
    counts = np.maximum(showers.n_points // 2, 0)
    h = int(counts.sum())
    offsets = np.r_[0, np.cumsum(counts)]
    return SimpleNamespace(
        offsets=offsets,
        cell_id=rng.integers(0, 10**12, h),
        layer=rng.integers(0, 30, h),
        x_mm=rng.normal(size=h),
        y_mm=rng.normal(size=h),
        z_mm=rng.uniform(0, 100, h),
        e_mev=rng.uniform(0, 1, h),
        lost_mev=rng.uniform(0, 1, len(showers)),
        below_threshold_mev=rng.uniform(0, 1, len(showers)),
    )


def test_round_trip_and_branches(tmp_path, rng) -> None:
    showers = _showers(rng)
    cells = _cells(showers, rng)
    path = tmp_path / "out.root"
    write_root(path, showers, cells=cells, attrs={"model": "test"})
    back = read_root(path)
    np.testing.assert_array_equal(back.points, showers.points)
    np.testing.assert_array_equal(back.offsets, showers.offsets)
    np.testing.assert_array_equal(back.incident_energy_gev, showers.incident_energy_gev)
    for k, v in showers.conditions.items():
        np.testing.assert_array_equal(back.conditions[k], v)
    assert is_caloclouds_root(path) and count_root(path) == 5
    with uproot.open(path) as f:
        tree = f["events"]
        expected = {
            "incident_energy_gev",
            "n_points",
            "points_x_mm",
            "points_y_mm",
            "points_layer",
            "points_e_mev",
            "n_cells",
            "cells_cell_id",
            "cells_x_mm",
            "cells_y_mm",
            "cells_z_mm",
            "cells_layer",
            "cells_e_mev",
            "lost_mev",
            "below_threshold_mev",
            "raw_visible_mev",
            "angles",
        }
        assert expected <= set(tree.keys())
        assert "per shower" in tree.title
        assert tree["points_layer"].typename == "int32_t[]" and tree["cells_layer"].typename == "int32_t[]"
        a = tree.arrays(["n_points", "n_cells", "cells_cell_id", "cells_e_mev"], library="np")
        assert a["n_points"].tolist() == showers.n_points.tolist()
        assert a["n_cells"].tolist() == np.diff(cells.offsets).tolist()
        np.testing.assert_array_equal(np.concatenate(a["cells_cell_id"]), cells.cell_id)
        meta = f["metadata"].arrays(library="np")
        assert meta["model"][0] == "test" and meta["schema_version"][0] == 2 and meta["cells"][0]


def test_baskets_are_zstd_compressed(tmp_path, rng, monkeypatch) -> None:
    """ZSTD level 1 (the fast setting, read by ROOT since 6.20); ZLIB level 1 where uproot has no ZSTD."""
    import caloclouds.io.root as root

    showers = _showers(rng, 40)
    for name, broken in (("zstd.root", False), ("zlib.root", True)):
        if broken:
            monkeypatch.setattr(uproot.ZSTD, "compress", lambda self, data: 1 / 0)
        write_root(tmp_path / name, showers, cells=_cells(showers, rng))
        with uproot.open(tmp_path / name) as f:
            algorithm = uproot.const.kZLIB if broken else uproot.const.kZSTD
            assert f.file.fCompress == algorithm * 100 + 1
            assert f["events"]["points_layer"].compressed_bytes < f["events"]["points_layer"].uncompressed_bytes
        np.testing.assert_array_equal(read_root(tmp_path / name).points, showers.points)
    assert isinstance(root._basket_compression(), uproot.ZLIB)


def _write_v1(path, showers, cells) -> None:
    """A file in the first schema (npoints, points_e_MeV, cells_lost_mev, JSON metadata)."""
    import json

    import awkward as ak

    names = ("x_mm", "y_mm", "layer", "e_MeV")
    data = {
        "incident_energy_gev": showers.incident_energy_gev,
        "points": ak.zip({c: ak.unflatten(showers.points[:, i].copy(), showers.n_points) for i, c in enumerate(names)}),
        "cells": ak.zip(
            {
                "cell_id": ak.unflatten(cells.cell_id, np.diff(cells.offsets)),
                "e_MeV": ak.unflatten(cells.e_mev, np.diff(cells.offsets)),
            }
        ),
        "cells_lost_mev": cells.lost_mev,
        "raw_visible_mev": showers.conditions["raw_visible_mev"],
    }
    with uproot.recreate(path) as f:
        f.mktree(
            "events",
            {k: (v.type.content if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()},
            counter_name=lambda c: "n" + c,
            field_name=lambda o, i: f"{o}_{i}",
        ).extend(data)
        f["caloclouds_meta"] = json.dumps(
            {"format": "caloclouds-root", "format_version": 1, "conditions": ["raw_visible_mev"]}
        )


def test_reads_schema_version_1(tmp_path, rng) -> None:
    showers = _showers(rng, 6)
    showers.conditions.pop("angles")
    cells = _cells(showers, rng)
    cells.e_mev = cells.e_mev.astype(np.float32)
    path = tmp_path / "v1.root"
    _write_v1(path, showers, cells)
    assert is_caloclouds_root(path)
    back = read_root(path)
    np.testing.assert_array_equal(back.points, showers.points)
    np.testing.assert_array_equal(back.conditions["raw_visible_mev"], showers.conditions["raw_visible_mev"])


def test_chunked_writing_equals_one_shot(tmp_path, rng) -> None:
    showers = _showers(rng, 40)
    with RootWriter(tmp_path / "chunks.root") as w:
        for chunk in showers.chunks(7):
            w.write(chunk)
        w.write(showers[:0])
        assert w.n_showers == 40
    back = Showers.concatenate(list(iter_root(tmp_path / "chunks.root", chunk_showers=9)))
    np.testing.assert_array_equal(back.points, showers.points)
    np.testing.assert_array_equal(back.offsets, showers.offsets)


def test_inconsistent_chunks_are_rejected(tmp_path, rng) -> None:
    showers = _showers(rng, 6)
    with pytest.raises(ValueError, match="cells must be given for every chunk"):
        with RootWriter(tmp_path / "x.root") as w:
            w.write(showers[:3], cells=_cells(showers[:3], rng))
            w.write(showers[3:])
    with pytest.raises(ValueError, match="cells has 6 showers but showers has 3"):
        write_root(tmp_path / "x.root", showers[:3], cells=_cells(showers, rng))
    assert not list(tmp_path.iterdir())


def test_interrupted_write_keeps_old_file(tmp_path, rng) -> None:
    path = tmp_path / "keep.root"
    old = _showers(rng, 3)
    write_root(path, old)
    with pytest.raises(RuntimeError, match="boom"):
        with RootWriter(path) as w:
            w.write(_showers(rng, 4))
            raise RuntimeError("boom")
    assert [p.name for p in tmp_path.iterdir()] == ["keep.root"]
    np.testing.assert_array_equal(read_root(path).points, old.points)
    fresh = tmp_path / "new.root"
    with pytest.raises(RuntimeError):
        with RootWriter(fresh) as w:
            raise RuntimeError("boom")
    assert not fresh.exists()


def test_foreign_root_file(tmp_path) -> None:
    path = tmp_path / "other.root"
    with uproot.recreate(path) as f:
        f["events"] = {"energy": np.ones(3)}
    assert not is_caloclouds_root(path)
    with pytest.raises(InputFileError, match=r"other.root\[events\]: missing branches \['incident_energy_gev'"):
        read_root(path)


def test_empty_file_round_trip(tmp_path) -> None:
    path = tmp_path / "empty.root"
    write_root(path, Showers.empty())
    assert len(read_root(path)) == 0 and count_root(path) == 0
