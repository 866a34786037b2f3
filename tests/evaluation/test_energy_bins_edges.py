"""The energy breakdown's ranges: half-open, except the last, which keeps its top energy."""

from __future__ import annotations

import numpy as np

from caloclouds.evaluation.comparison import energy_bin_indices


def test_the_top_energy_lands_in_the_last_range() -> None:
    energies = [np.array([10.0, 50.0, 90.0, 90.0, 30.0]), np.array([90.0, 90.0, 10.0, 60.0])]
    assert [len(i) for i in energy_bin_indices(energies, 60.0, 90.0, seed=0)] == [0, 0]
    top = energy_bin_indices(energies, 60.0, 90.0, seed=0, closed=True)
    assert [len(i) for i in top] == [2, 2]
    assert np.all(energies[0][top[0]] == 90.0)
    low = energy_bin_indices(energies, 10.0, 30.0, seed=0)
    assert [len(i) for i in low] == [1, 1]  # 30 GeV belongs to the next range
