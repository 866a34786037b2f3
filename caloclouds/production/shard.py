"""Make one shard on a worker: the code path of ``caloclouds generate`` with the shard's seed.

:func:`run_shard` is the Dask task. It runs torch on one thread (the showers' bits depend on the
thread count, so every worker must use the same one), draws the shard's energies with
:func:`caloclouds.generation.energies.incident_energies` and writes them with
:func:`caloclouds.generation.pipeline.generate_to_file`, which writes into a temporary file renamed
when complete. A shard file therefore equals ``caloclouds generate --seed <seed> -n <n> ...`` run
with one thread, byte for byte for HDF5.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

from caloclouds.production.plan import ProductionRequest, ShardSpec

__all__ = ["SHARD_THREADS", "run_shard", "shard_energies"]

SHARD_THREADS = 1  # torch threads of every shard (recorded in the manifest)


def shard_energies(request: ProductionRequest, *, n_showers: int, seed: int) -> np.ndarray:
    """The incident energies of a shard: what ``generate`` draws for ``-n n_showers --seed seed``."""
    from caloclouds.generation.energies import incident_energies

    return incident_energies(
        energy_range_gev=request.energy_range_gev,
        energies_gev=list(request.energies_gev) if request.energies_gev is not None else None,
        n_showers=n_showers,
        seed=seed,
    )


def run_shard(spec: ShardSpec) -> dict[str, Any]:
    """Generate shard ``spec`` into ``spec.path``; returns its manifest entry.

    Returns:
        ``index``, ``seed``, ``n_showers`` (showers in the file), ``file``, ``bytes``, ``sha256``,
        ``seconds`` (wall time of the task, model loading included) and ``worker`` (host:pid).
    """
    import torch

    from caloclouds.generation.bundle import file_sha256
    from caloclouds.generation.pipeline import generate_to_file
    from caloclouds.memory import keep_freed_memory

    start = time.perf_counter()
    torch.set_num_threads(SHARD_THREADS)
    keep_freed_memory()  # as the caloclouds command does: changes no number, saves page faults
    request = spec.request
    energies = shard_energies(request, n_showers=spec.n_showers, seed=spec.seed)
    summary = generate_to_file(spec.path, energies, seed=spec.seed, progress=False, **request.generation_options())
    path = Path(spec.path)
    return {
        "index": spec.index,
        "seed": spec.seed,
        "n_showers": summary.n_showers,
        "file": path.name,
        "bytes": path.stat().st_size,
        "sha256": file_sha256(path),
        "seconds": round(time.perf_counter() - start, 3),
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }
