"""The process-wide malloc setting: made by the ``caloclouds`` command, never by library code."""

from __future__ import annotations

import inspect
import platform

from caloclouds.memory import keep_freed_memory


def test_set_where_glibc_is_the_c_library():
    assert keep_freed_memory() is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")


def test_the_command_sets_it_and_the_generator_does_not(shared):
    from caloclouds.cli import main
    from caloclouds.generation import generator

    assert "keep_freed_memory(" not in inspect.getsource(generator)  # the library leaves the process alone
    keep_freed_memory.cache_clear()
    assert main(["info", str(shared("g4_photons_val_fixed.h5"))]) == 0
    assert keep_freed_memory.cache_info().misses == 1
