"""Speed of the generation pipeline: single showers on one CPU thread, and batch throughput.

Timings are medians over single calls, after warm-up, with the stages timed separately
(flow, diffusion, calibration, projection), as used by ``caloclouds bench``. ``model`` is the
model alone (one ``ShowerGenerator.generate`` call: flow, diffusion, calibration, numpy arrays
out); ``total`` adds the projection onto cells.

The user's paths are timed too: :func:`bench_generate_to_file` runs ``generate_to_file`` at batch
1 into a ROOT or HDF5 file (what ``caloclouds generate --batch-size 1`` does, writing included;
the mean after the first shower, whose flow call compiles TorchScript, and that first shower).
The TorchScript export is timed by :func:`caloclouds.export.bench.bench_torchscript` (the export
builds on this package, not the other way round).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from caloclouds.diffusion.sampling import MODEL_PARTS, default_solver
from caloclouds.generation.bundle import ModelBundle
from caloclouds.generation.generator import ShowerGenerator
from caloclouds.generation.pipeline import cell_projector

__all__ = [
    "BenchResult",
    "bench_generate_to_file",
    "bench_single_shower",
    "bench_throughput",
    "bench_energies",
    "speed_up",
]


@dataclass
class BenchResult:
    label: str
    median_ms: dict[str, float]  # per stage and "total", ms per shower
    n: int
    mean_ms: dict[str, float] | None = None  # the same, means (comparable with a whole run's time / n)

    def row(self) -> str:
        m = self.median_ms
        return (
            f"| {self.label} | {m['total']:.2f} | {m['flow']:.2f} | {m['diffusion']:.2f} | "
            f"{m['calibration']:.2f} | {m['projection']:.2f} |"
        )


def bench_single_shower(
    bundle: ModelBundle,
    *,
    steps: int | None = None,
    n: int = 200,
    warmup: int = 10,
    cells: str | None = "ild",
    seed: int = 0,
    model_part: str | None = None,
    solver: str | None = None,
) -> BenchResult:
    """Median ms per shower at batch 1 on the CPU (the caller sets the thread count).

    ``model_part`` and ``solver`` as in :class:`ShowerGenerator`.
    """
    gen = ShowerGenerator(bundle, model_part=model_part, solver=solver, steps=steps, device="cpu")
    project = cell_projector(cells, bundle.config.detector) if cells else None
    rng = np.random.default_rng(seed)
    energies = rng.uniform(10, 90, size=n + warmup).astype(np.float32)
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i, e in enumerate(energies):
        before = dict(vars(gen.times))
        t0 = time.perf_counter()
        showers = gen.generate(np.array([e]), generator=g)
        t1 = time.perf_counter()
        if project is not None:
            project(showers)
        t2 = time.perf_counter()
        if i >= warmup:
            after = vars(gen.times)
            row = {k: (after[k] - before[k]) * 1e3 for k in ("flow", "diffusion", "calibration")}
            row["projection"] = (t2 - t1) * 1e3
            row["model"] = (t1 - t0) * 1e3
            row["total"] = (t2 - t0) * 1e3
            rows.append(row)
    median = {k: float(np.median([r[k] for r in rows])) for k in rows[0]}
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    # the row label keeps the weights' old names ("cm", "edm"): a file format (bench tables, JSON keys)
    name = (
        MODEL_PARTS[gen.model_part]
        if gen.solver == default_solver(gen.model_part)
        else f"{gen.model_part} {gen.solver}"
    )
    label = name + (f" ({steps} steps)" if steps else "")
    return BenchResult(label, median, n, mean)


def bench_throughput(
    bundle: ModelBundle,
    *,
    device: str,
    batch_size: int = 10000,
    repeats: int = 5,
    cells: str | None = "ild",
    model_part: str | None = None,
    solver: str | None = None,
) -> float:
    """Showers per second at a large batch (GPU or all CPU threads), projection included."""
    gen = ShowerGenerator(bundle, model_part=model_part, solver=solver, device=device)
    project = cell_projector(cells, bundle.config.detector) if cells else None
    energies = np.random.default_rng(0).uniform(10, 90, size=batch_size).astype(np.float32)
    g = torch.Generator(device=device).manual_seed(0)
    gen.generate(energies[:100], generator=g)  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        showers = gen.generate(energies, generator=g)
        if project is not None:
            project(showers)
    return batch_size * repeats / (time.perf_counter() - t0)


def bench_energies(n: int, seed: int) -> np.ndarray:
    """``n`` incident energies uniform in 10-90 GeV (the benchmark's fixed spectrum)."""
    return np.random.default_rng(seed).uniform(10, 90, size=n).astype(np.float32)


def bench_generate_to_file(
    model: str,
    *,
    suffix: str,
    n: int = 200,
    cells: str | None = "ild",
    batch_size: int = 1,
    seed: int = 0,
    model_part: str | None = None,
    solver: str | None = None,
    steps: int | None = None,
) -> dict[str, float]:
    """ms per shower of ``generate_to_file`` into a temporary ``.root``/``.h5`` file (writing included).

    The time is the one ``caloclouds generate`` reports (from the first shower to the closed,
    renamed file); loading the bundle and opening the file are not included.

    Returns:
        ``mean`` (all ``n`` showers), ``after_first`` (the mean of the showers after the first, like
        the model-only figure after its warm-up) and ``first`` (the first shower alone; the flow's
        TorchScript is compiled and warmed up when the generator is built, so it is no longer in
        it), all in ms.
    """
    import tempfile
    from pathlib import Path

    from caloclouds.generation.pipeline import generate_to_file

    with tempfile.TemporaryDirectory(prefix="caloclouds-bench-") as tmp:
        summary = generate_to_file(
            Path(tmp) / f"bench{suffix}",
            bench_energies(n, seed),
            model=model,
            cells=cells,
            batch_size=batch_size,
            seed=seed,
            progress=False,
            model_part=model_part,
            solver=solver,
            steps=steps,
        )
    after = summary.ms_per_shower_after_first
    mean = summary.seconds / n * 1e3
    return {"mean": mean, "after_first": mean if after is None else after, "first": summary.first_seconds * 1e3}


def speed_up(geant4_ms_per_shower: float | None, ms_per_shower: float) -> float | None:
    """How many times faster than Geant4 (None without a Geant4 time)."""
    if geant4_ms_per_shower is None or ms_per_shower <= 0:
        return None
    return geant4_ms_per_shower / ms_per_shower
