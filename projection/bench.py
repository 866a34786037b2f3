"""Projection speed: points per second for one batch of showers (numpy, or torch on CPU/CUDA)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from caloclouds.showers import Showers
from projection.geometry import Geometry
from projection.project import project, project_torch

__all__ = ["BenchResult", "bench_projection", "tile_showers"]


@dataclass
class BenchResult:
    """Best of ``repeats`` timings of one batch."""

    geometry: str
    backend: str  # "numpy", "torch-cpu" or "torch-cuda"
    showers: int
    points: int
    wall_s: float  # best wall-clock time of one call
    cpu_s: float  # process CPU time of that call (equals wall on an idle single thread)

    @property
    def points_per_s(self) -> float:
        return self.points / self.wall_s

    def line(self) -> str:
        return (
            f"{self.geometry:<10} {self.backend:<10} {self.showers:>7} showers {self.points:>10} points  "
            f"{1e3 * self.wall_s:9.2f} ms  {self.points_per_s / 1e6:8.1f} M points/s (wall)  "
            f"{self.points / max(self.cpu_s, 1e-12) / 1e6:8.1f} M points/s (CPU time)"
        )


def tile_showers(showers: Showers, n: int) -> Showers:
    """The first ``n`` showers, repeating the batch if it holds fewer."""
    idx = np.arange(n) % len(showers)
    return showers[idx]


def bench_projection(
    showers: Showers,
    geometry: Geometry,
    *,
    backend: str = "numpy",
    repeats: int = 5,
    threshold_mev: float | None = None,
) -> BenchResult:
    """Time :func:`projection.project` (``backend="numpy"``) or :func:`projection.project_torch`
    (``"torch-cpu"``, ``"torch-cuda"``; the points are on the device before the clock starts).

    Args:
        showers: the batch (all showers are projected in one call).
        geometry: the geometry.
        backend: ``"numpy"``, ``"torch-cpu"`` or ``"torch-cuda"``.
        repeats: timed calls after one warm-up call; the best is kept.
        threshold_mev: optional cell threshold.
    """
    if backend == "numpy":

        def call() -> None:
            project(showers, geometry, threshold_mev=threshold_mev)

        sync = None
    elif backend in ("torch-cpu", "torch-cuda"):
        import torch

        device = "cuda" if backend == "torch-cuda" else "cpu"
        points = torch.from_numpy(showers.points).to(device)
        offsets = torch.from_numpy(showers.offsets).to(device)

        def call() -> None:
            project_torch(points, offsets, geometry, threshold_mev=threshold_mev)

        sync = torch.cuda.synchronize if device == "cuda" else None
    else:
        msg = f"backend {backend!r} is not one of 'numpy', 'torch-cpu', 'torch-cuda'"
        raise ValueError(msg)
    call()
    best_wall, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        if sync:
            sync()
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        if sync:
            sync()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if wall < best_wall:
            best_wall, best_cpu = wall, cpu
    return BenchResult(geometry.name, backend, len(showers), len(showers.points), best_wall, best_cpu)
