"""Streaming generation to a file: energies -> ShowerGenerator -> (cells) -> ROOT/HDF5, in chunks."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from caloclouds.config import RunConfig
from caloclouds.generation.bundle import load_bundle
from caloclouds.generation.generator import ShowerGenerator, StageTimes

__all__ = ["GenerationSummary", "cell_threshold_mev", "generate_to_file", "open_shower_writer"]


def cell_threshold_mev(config: RunConfig) -> float:
    """The cell threshold of the config (``evaluation.cell_threshold_mip`` measured MIPs) in MeV."""
    return config.evaluation.threshold_mev


def open_shower_writer(path: Path, *, attrs: dict[str, Any]) -> Any:
    """A chunk writer with ``write(showers, cells=None)``, chosen by the file suffix."""
    if path.suffix == ".root":
        from caloclouds.io.root import RootWriter

        return RootWriter(path, attrs=attrs)
    from caloclouds.io.hdf5 import ShowerWriter

    class _H5(ShowerWriter):
        def write(self, showers: Any, cells: Any = None) -> None:  # cells are not part of the HDF5 schema
            super().write(showers)

    return _H5(path, attrs=attrs)


def _cell_projector(geometry_spec: str, threshold_mev: float) -> Callable[[Any], Any]:
    """showers -> cell hits on ``geometry_spec`` with the cell threshold."""
    import projection

    geometry = projection.get_geometry(geometry_spec)

    def project(showers: Any) -> Any:
        return projection.project(showers, geometry, threshold_mev=threshold_mev)

    return project


@dataclass
class GenerationSummary:
    path: Path
    n_showers: int
    seconds: float
    mean_points: float
    mean_sampling_fraction: float
    mean_cells: float | None
    times: StageTimes

    @property
    def showers_per_second(self) -> float:
        return self.n_showers / max(self.seconds, 1e-12)

    def text(self) -> str:
        lines = [
            f"wrote {self.n_showers} showers to {self.path}",
            f"  {self.showers_per_second:.1f} showers/s ({self.seconds:.1f} s)",
            f"  mean points per shower: {self.mean_points:.0f}",
            f"  mean E_vis/E_inc:       {self.mean_sampling_fraction * 100:.3f} %",
        ]
        if self.mean_cells is not None:
            lines.append(f"  mean cells above threshold: {self.mean_cells:.1f}")
        t = self.times
        total = max(t.total(), 1e-12)
        lines.append(
            "  time per stage: "
            + ", ".join(f"{k} {v / total * 100:.0f} %" for k, v in vars(t).items())
        )
        return "\n".join(lines)


def generate_to_file(
    path: str | Path,
    incident_energy_gev: np.ndarray,
    *,
    model: str | Path = "default",
    sampler: str = "cm",
    steps: int | None = None,
    cog: str = "rotate",
    cells: str | None = None,
    batch_size: int = 1000,
    device: str = "cpu",
    seed: int = 0,
    progress: bool = True,
) -> GenerationSummary:
    """Generate one shower per energy and stream them to ``path`` (.root or .h5)."""
    from tqdm.auto import tqdm

    path = Path(path)
    bundle = load_bundle(model)
    generator = ShowerGenerator(bundle, sampler=sampler, steps=steps, device=device, cog=cog)  # type: ignore[arg-type]
    project = None if cells is None else _cell_projector(cells, cell_threshold_mev(bundle.config))

    attrs = {
        "generator": "caloclouds generate",
        "model": str(bundle.path),
        "sampler": sampler,
        "steps": -1 if steps is None else steps,
        "cog": cog,
        "seed": seed,
        "cells": cells or "none",
    }
    n_points = 0
    visible_fraction = 0.0
    n_cells = 0
    start = time.perf_counter()
    with open_shower_writer(path, attrs=attrs) as writer, tqdm(
        total=len(incident_energy_gev), unit="shower", disable=not progress, desc="generate"
    ) as bar:
        for showers, hits in generator.stream(incident_energy_gev, batch_size=batch_size, seed=seed, project=project):
            writer.write(showers, cells=hits)
            n_points += len(showers.points)
            visible_fraction += float(np.sum(showers.visible_energy_mev() / (1000.0 * showers.incident_energy_gev)))
            if hits is not None:
                n_cells += len(hits.e_mev)
            bar.update(len(showers))
            bar.set_postfix(showers_per_s=f"{bar.n / max(time.perf_counter() - start, 1e-9):.0f}")
    seconds = time.perf_counter() - start
    n = len(incident_energy_gev)
    return GenerationSummary(
        path=path,
        n_showers=n,
        seconds=seconds,
        mean_points=n_points / n,
        mean_sampling_fraction=visible_fraction / n,
        mean_cells=(n_cells / n) if cells is not None else None,
        times=generator.times,
    )
