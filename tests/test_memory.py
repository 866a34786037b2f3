"""The process-wide malloc setting: made by the ``caloclouds`` command, never by library code."""

from __future__ import annotations

import platform

from caloclouds.memory import keep_freed_memory


def test_set_where_glibc_is_the_c_library():
    assert keep_freed_memory() is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")


def test_the_command_sets_it_and_the_generator_does_not(shared):
    """Generating through the library leaves the process's malloc alone; the command sets it once.

    Every call of the (cached) setting is a cache miss after ``cache_clear``, whoever makes it.
    """
    import numpy as np
    import torch

    from caloclouds.cli import main
    from caloclouds.generation.bundle import load_bundle
    from caloclouds.generation.generator import ShowerGenerator

    keep_freed_memory.cache_clear()
    showers = ShowerGenerator(load_bundle("default")).generate(
        np.array([40.0], dtype=np.float32), generator=torch.Generator().manual_seed(0)
    )
    assert len(showers) == 1 and showers.n_points[0] > 0
    assert keep_freed_memory.cache_info().misses == 0  # the library leaves the process alone
    assert main(["info", str(shared("g4_photons_val_fixed.h5"))]) == 0
    assert keep_freed_memory.cache_info().misses == 1
