"""Speed of the TorchScript export called from Python, for ``caloclouds bench``.

It lives with the export, above :mod:`caloclouds.generation` (the export builds on the generator's
bundle and calibration; :mod:`caloclouds.generation.bench` does not import the export).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from caloclouds.export.torchscript import export_torchscript, load_export
from caloclouds.generation.bench import bench_energies
from caloclouds.generation.bundle import ModelBundle

__all__ = ["bench_torchscript"]


def bench_torchscript(bundle: ModelBundle, *, n: int = 200, warmup: int = 10, seed: int = 0) -> float:
    """Median ms per call of the bundle's TorchScript export (saved, loaded back, called from Python)."""
    with tempfile.TemporaryDirectory(prefix="caloclouds-bench-") as tmp:
        export_torchscript(bundle, Path(tmp) / "model.pt")
        module, _ = load_export(Path(tmp) / "model.pt")
    torch.manual_seed(seed)
    angles = torch.tensor([[0.0]]), torch.tensor([[0.0]])  # normal incidence (DDML: theta = acos(d_z))
    times = []
    with torch.inference_mode():
        for i, e in enumerate(bench_energies(n + warmup, seed)):
            t0 = time.perf_counter()
            module(torch.tensor([[float(e)]]), *angles)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3
