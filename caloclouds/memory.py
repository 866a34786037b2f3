"""Process-wide memory settings for fast generation.

:func:`keep_freed_memory` has glibc's malloc keep freed memory for reuse. It changes the whole
process, so library code never calls it: the ``caloclouds`` command does, once, before any verb
runs, and a program of your own that generates shower by shower may call it too.
"""

from __future__ import annotations

import ctypes
import functools
import platform

__all__ = ["MMAP_THRESHOLD_BYTES", "TRIM_THRESHOLD_BYTES", "keep_freed_memory"]

# glibc's mallopt parameters (malloc.h) and the values keep_freed_memory sets
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 << 20  # the largest mmap threshold glibc accepts on 64-bit systems
TRIM_THRESHOLD_BYTES = 256 << 20


@functools.cache
def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for reuse instead of handing it back to the system.

    Every shower allocates and frees the same few 0.1-30 MB tensors (a network layer's
    activations are points x width floats). With glibc's default, adaptive thresholds these come
    from ``mmap`` or the top of the heap and go back to the system when freed, so the next shower
    faults the same pages in again: about 600 page faults and 2 ms of system time per shower at
    batch 1 (0.1 ms in batches of 1000). Served from the heap below ``MMAP_THRESHOLD_BYTES``, with
    the heap trimmed only beyond ``TRIM_THRESHOLD_BYTES`` of free memory, they are reused. The
    setting is the process's (made once; the ``caloclouds`` command makes it) and changes no number.

    Returns:
        True when set, False where the C library is not glibc (its own policy is kept).
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
