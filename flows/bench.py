"""Timing of Shower Flow sampling (the flow's share of the per-shower generation budget)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from flows.sampling import ShowerFlow

__all__ = ["bench_sampling"]


def bench_sampling(
    flow: ShowerFlow,
    *,
    batch: int = 1,
    repeats: int = 1000,
    warmup: int = 50,
    energy_range_gev: tuple[float, float] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Time ``flow.sample`` for batches of ``batch`` showers at random energies.

    Args:
        flow: the Shower Flow.
        batch: showers per call.
        repeats: timed calls.
        warmup: untimed calls first.
        energy_range_gev: energies are drawn uniformly here (default: the training range).
        seed: seed of the energies and the samples.

    Returns:
        ``{"median_ms", "p10_ms", "p90_ms", "mean_ms", "cpu_median_ms", "per_shower_us", ...}``:
        wall time per call; ``cpu_median_ms`` is the thread CPU time, which a busy machine does
        not inflate.
    """
    lo, hi = energy_range_gev or flow.energy_range_gev
    gen = torch.Generator(device=flow.device).manual_seed(seed)
    energies = torch.empty(warmup + repeats, batch).uniform_(lo, hi, generator=torch.Generator().manual_seed(seed))
    energies = energies.to(flow.device)
    cuda = flow.device.type == "cuda"
    wall, cpu = [], []
    for i in range(warmup + repeats):
        if cuda:
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.thread_time()
        flow.sample(energies[i], generator=gen)
        if cuda:
            torch.cuda.synchronize()
        if i >= warmup:
            wall.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)
    wall_ms, cpu_ms = 1e3 * np.asarray(wall), 1e3 * np.asarray(cpu)
    median = float(np.median(wall_ms))
    return {
        "batch": batch,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "device": str(flow.device),
        "median_ms": median,
        "p10_ms": float(np.percentile(wall_ms, 10)),
        "p90_ms": float(np.percentile(wall_ms, 90)),
        "mean_ms": float(wall_ms.mean()),
        "cpu_median_ms": float(np.median(cpu_ms)),
        "per_shower_us": 1e3 * median / batch,
    }
