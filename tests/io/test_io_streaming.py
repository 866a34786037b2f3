"""`info` and readers stream: memory stays bounded whatever the number of showers (issue 15)."""

from __future__ import annotations

import tracemalloc

import h5py
import numpy as np

from caloclouds.io import ShowerFile, ShowerWriter
from caloclouds.io.summary import summarise_file
from caloclouds.showers import Showers


def test_info_on_many_empty_showers_is_bounded(tmp_path, monkeypatch) -> None:
    import caloclouds.io.hdf5 as hdf5

    monkeypatch.setattr(hdf5, "INDEX_BLOCK_SHOWERS", 1 << 16)  # the index is read in blocks of this many
    n = 2_000_000  # offsets and energies alone: 24 MB
    path = tmp_path / "many.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("points", data=np.zeros((0, 4), np.float32))
        f.create_dataset("offsets", data=np.zeros(n + 1, np.int64), chunks=(65536,), compression="gzip")
        f.create_dataset("incident_energy_gev", data=np.full(n, 50.0, np.float32), chunks=(65536,), compression="gzip")
    tracemalloc.start()
    summary = summarise_file(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert summary.n_showers == n and summary.n_points == 0
    assert peak < 6_000_000, f"peak {peak / 1e6:.1f} MB"


def test_iter_chunks_bounds_points(tmp_path) -> None:
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 50, 300)
    pts = np.c_[rng.normal(size=(counts.sum(), 2)), rng.integers(0, 30, counts.sum()), rng.uniform(0, 1, counts.sum())]
    showers = Showers.from_counts(pts.astype(np.float32), counts, rng.uniform(10, 90, 300))
    with ShowerWriter(tmp_path / "s.h5") as w:
        for i in range(len(showers)):  # one call per shower: buffered
            w.write(showers[i : i + 1])
    with ShowerFile(tmp_path / "s.h5") as f:
        chunks = list(f.iter_chunks(100, max_points=500))
    assert all(len(c.points) <= 500 or len(c) == 1 for c in chunks)
    back = Showers.concatenate(chunks)
    np.testing.assert_array_equal(back.points, showers.points)
    np.testing.assert_array_equal(back.offsets, showers.offsets)
