"""Generate voxel showers to a file, in chunks: points (our HDF5) or CaloChallenge HDF5.

This is the voxel model's counterpart of the point-cloud generation pipeline. Point output puts
one (or more) points per non-empty voxel, uniformly inside it by default, so the showers go
through ``caloclouds evaluate`` and the projection like any point cloud.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from caloclouds.voxel.model import VoxelModel, layer_energies_from_flow, load_voxel_model

__all__ = ["generate_voxel_file"]


def generate_voxel_file(
    model: VoxelModel | str | Path,
    incident_energy_gev: np.ndarray,
    out: str | Path,
    *,
    output_format: Literal["points", "calochallenge"] = "points",
    steps: int | None = None,
    solver: str | None = None,
    batch_size: int = 100,
    flow: str | Path | None = None,
    mode: Literal["centre", "uniform"] = "uniform",
    points_per_voxel: int = 1,
    seed: int = 0,
) -> dict[str, float]:
    """Generate one shower per incident energy and write them to ``out`` (atomically).

    Args:
        model: a :class:`VoxelModel` or its checkpoint path.
        incident_energy_gev: (N,) energies.
        out: output file.
        output_format: ``"points"`` (our HDF5 schema) or ``"calochallenge"``.
        steps: solver steps (default from the model's config).
        solver: ``"heun"`` / ``"euler"`` (teacher) or ``"consistency"`` (default: the model's own).
        batch_size: showers per batch and per written chunk.
        flow: a Shower Flow checkpoint to draw the layer energies from (default: the voxel
            model's own layer-energy model).
        mode, points_per_voxel: voxel -> points placement for ``"points"``.
        seed: random seed.

    Returns:
        ``n_showers``, ``seconds`` (sampling only), ``ms_per_shower``.
    """
    from caloclouds.io.writers import ShowerSink, open_writer
    from caloclouds.voxel.calochallenge import CaloChallengeWriter
    from caloclouds.voxel.voxelize import VoxelShowers, voxels_to_points

    if output_format not in ("points", "calochallenge"):
        raise ValueError(f"output_format must be 'points' or 'calochallenge', got {output_format!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not isinstance(model, VoxelModel):
        model = load_voxel_model(model)
    energies = np.asarray(incident_energy_gev, dtype=np.float32).reshape(-1)
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    solver = model.resolve_solver(solver)
    attrs = {
        "generator": f"caloclouds voxel model ({model.kind})",
        "steps": steps or model.default_steps(),
        "solver": solver,
    }
    if output_format == "calochallenge":
        writer: ShowerSink = CaloChallengeWriter(out, model.mesh, attrs=attrs)
    else:
        writer = open_writer(out, format="hdf5", attrs=attrs)
    seconds = 0.0
    with writer:
        for start in range(0, len(energies), batch_size):
            e = torch.from_numpy(energies[start : start + batch_size])
            t0 = time.perf_counter()
            layers = layer_energies_from_flow(flow, e, generator=generator) if flow is not None else None
            voxels = model.sample_voxels(e, layer_energy_mev=layers, steps=steps, solver=solver, generator=generator)
            seconds += time.perf_counter() - t0
            chunk = VoxelShowers(voxels.cpu().numpy(), e.numpy(), model.mesh)
            if output_format == "calochallenge":
                writer.write(chunk)
            else:
                writer.write(voxels_to_points(chunk, mode=mode, points_per_voxel=points_per_voxel, rng=rng))
    n = len(energies)
    return {"n_showers": float(n), "seconds": seconds, "ms_per_shower": 1e3 * seconds / max(n, 1)}
