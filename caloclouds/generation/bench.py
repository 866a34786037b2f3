"""Speed of the generation pipeline: single showers on one CPU thread, and batch throughput.

Timings are medians over single calls, after warm-up, with the stages timed separately
(flow, diffusion, calibration, projection), as used by ``caloclouds bench``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from caloclouds.generation.bundle import ModelBundle
from caloclouds.generation.generator import ShowerGenerator
from caloclouds.generation.pipeline import cell_threshold_mev

__all__ = ["BenchResult", "bench_single_shower", "bench_throughput"]


@dataclass
class BenchResult:
    label: str
    median_ms: dict[str, float]   # per stage and "total", ms per shower
    n: int

    def row(self) -> str:
        m = self.median_ms
        return (f"| {self.label} | {m['total']:.2f} | {m['flow']:.2f} | {m['diffusion']:.2f} | "
                f"{m['calibration']:.2f} | {m['projection']:.2f} |")


def bench_single_shower(
    bundle: ModelBundle,
    *,
    sampler: str = "cm",
    steps: int | None = None,
    n: int = 200,
    warmup: int = 10,
    cells: str | None = "ild",
    seed: int = 0,
) -> BenchResult:
    """Median ms per shower at batch 1 on the CPU (the caller sets the thread count)."""
    import projection

    gen = ShowerGenerator(bundle, sampler=sampler, steps=steps, device="cpu")  # type: ignore[arg-type]
    geom = projection.get_geometry(cells) if cells else None
    threshold = cell_threshold_mev(bundle.config)
    rng = np.random.default_rng(seed)
    energies = rng.uniform(10, 90, size=n + warmup).astype(np.float32)
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i, e in enumerate(energies):
        before = dict(vars(gen.times))
        t0 = time.perf_counter()
        showers = gen.generate(np.array([e]), generator=g)
        t1 = time.perf_counter()
        if geom is not None:
            projection.project(showers, geom, threshold_mev=threshold)
        t2 = time.perf_counter()
        if i >= warmup:
            after = vars(gen.times)
            row = {k: (after[k] - before[k]) * 1e3 for k in ("flow", "diffusion", "calibration")}
            row["projection"] = (t2 - t1) * 1e3
            row["total"] = (t2 - t0) * 1e3
            rows.append(row)
    median = {k: float(np.median([r[k] for r in rows])) for k in rows[0]}
    label = f"{sampler}" + (f" ({steps} steps)" if steps else "")
    return BenchResult(label, median, n)


def bench_throughput(
    bundle: ModelBundle, *, device: str, sampler: str = "cm", batch_size: int = 10000, repeats: int = 5,
    cells: str | None = "ild",
) -> float:
    """Showers per second at a large batch (GPU or all CPU threads), projection included."""
    import projection

    gen = ShowerGenerator(bundle, sampler=sampler, device=device)  # type: ignore[arg-type]
    geom = projection.get_geometry(cells) if cells else None
    threshold = cell_threshold_mev(bundle.config)
    energies = np.random.default_rng(0).uniform(10, 90, size=batch_size).astype(np.float32)
    g = torch.Generator(device=device).manual_seed(0)
    gen.generate(energies[:100], generator=g)  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        showers = gen.generate(energies, generator=g)
        if geom is not None:
            projection.project(showers, geom, threshold_mev=threshold)
    return batch_size * repeats / (time.perf_counter() - t0)
