"""A production folder read as one dataset: its shards in order, a summary, one merged file.

The shards are ordinary shower files (``uproot.concatenate("DIR/*.root:events")`` reads ROOT
shards as one array); :func:`merge_production` writes them into one file with the writer of
``caloclouds generate`` (:func:`caloclouds.io.writers.open_writer`), cells included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from caloclouds.errors import CaloCloudsError
from caloclouds.production.manifest import read_manifest, shard_is_done
from caloclouds.production.plan import MANIFEST_NAME, ProductionRequest, ShardSpec, plan_shards

__all__ = ["done_shards", "iter_production", "merge_production", "production_lines", "production_summary"]


def _load(out_dir: Path) -> tuple[dict[str, Any], ProductionRequest, list[ShardSpec]]:
    manifest = read_manifest(out_dir)
    if manifest is None:
        raise CaloCloudsError(f"{out_dir}: no {MANIFEST_NAME}: not a folder made by caloclouds produce")
    request = ProductionRequest.from_dict(manifest["request"])
    return manifest, request, plan_shards(request, out_dir)


def done_shards(out_dir: str | Path, *, verify: bool = True) -> tuple[dict[str, Any], list[Path], list[int]]:
    """(manifest, files of the done shards in order, indices of the shards not done).

    Args:
        verify: check each file's size and SHA-256 against the manifest (else trust the manifest).
    """
    out_dir = Path(out_dir)
    manifest, _, shards = _load(out_dir)
    entries = {int(e["index"]): e for e in manifest["shards"]}
    files, missing = [], []
    for spec in shards:
        entry = entries.get(spec.index, {})
        ok = shard_is_done(out_dir, entry, spec) if verify else entry.get("status") == "done"
        if ok:
            files.append(out_dir / entry["file"])
        else:
            missing.append(spec.index)
    return manifest, files, missing


def iter_production(out_dir: str | Path, *, with_cells: bool = False) -> Iterator[Any]:
    """Chunks of every shard in order (``(showers, cells)`` pairs with ``with_cells``).

    Raises:
        CaloCloudsError: a shard is missing or damaged (names how many and the first).
    """
    from caloclouds.io.formats import iter_any, iter_with_cells

    out_dir = Path(out_dir)
    _, files, missing = done_shards(out_dir)
    if missing:
        raise CaloCloudsError(
            f"{out_dir}: {len(missing)} shard(s) missing or damaged (the first: {missing[0]:05d}); "
            "run the same caloclouds produce command again to make them"
        )
    for path in files:
        yield from (iter_with_cells(path) if with_cells else iter_any(path))


def merge_production(
    out_dir: str | Path,
    output: str | Path,
    *,
    overwrite: bool = False,
    progress: Callable[[int], object] | None = None,
) -> int:
    """Write every shard of ``out_dir`` into ``output`` (.h5 or .root), in order; returns the showers.

    The file appears under its name only when complete. Its metadata are the production's:
    ``generator = "caloclouds produce"``, the production seed and the model's SHA-256. An
    existing ``output`` is refused unless ``overwrite``.
    """
    from caloclouds.io.atomic import check_output_path
    from caloclouds.io.writers import open_writer

    out_dir = Path(out_dir)
    output = check_output_path(output, suffixes=(".root", ".h5", ".hdf5"), option="-o", overwrite=overwrite)
    manifest, request, shards = _load(out_dir)
    if output.resolve().parent == out_dir.resolve() and output.name.startswith("shard-"):
        raise CaloCloudsError(f"-o {output}: would overwrite a shard of the production; write it elsewhere")
    attrs = {
        "generator": "caloclouds produce",
        "model": manifest["model"].get("path"),
        "model_sha256": manifest["model"].get("sha256"),
        "seed": request.seed,
        "shard_size": request.shard_size,
        "n_shards": len(shards),
        "model_part": request.model_part,
        "solver": request.solver,
        "steps": request.steps,
        "cog": request.cog,
        "cells": request.cells or "none",
        "detector": manifest.get("detector", {}).get("name"),
        "n_layers": manifest.get("detector", {}).get("n_layers"),
    }
    n = 0
    with open_writer(output, attrs=attrs) as writer:
        for showers, cells in iter_production(out_dir, with_cells=True):
            writer.write(showers, cells=cells)
            n += len(showers)
            if progress is not None:
                progress(len(showers))
    return n


def production_lines(out_dir: str | Path) -> list[str]:
    """The lines ``caloclouds info DIR`` prints before the showers' summary."""
    out_dir = Path(out_dir)
    manifest, files, missing = done_shards(out_dir)
    request = ProductionRequest.from_dict(manifest["request"])
    n_shards = len(files) + len(missing)
    energies = (
        f"uniform in {request.energy_range_gev[0]:g}-{request.energy_range_gev[1]:g} GeV"
        if request.energy_range_gev is not None
        else "at " + ", ".join(f"{e:g}" for e in request.energies_gev or ()) + " GeV"
    )
    last = manifest.get("last_run") or {}
    lines = [
        f"production       {out_dir} ({MANIFEST_NAME}; {request.format} shards)",
        f"shards           {len(files)} of {n_shards} complete, {request.shard_size} showers each"
        + (f"; missing or damaged: {', '.join(f'{i:05d}' for i in missing[:5])}" if missing else ""),
        f"request          {request.n_showers} showers {energies}, seed {request.seed}, "
        f"cells {request.cells or 'none'}",
        f"model            {manifest['model'].get('path')} (SHA-256 {str(manifest['model'].get('sha256'))[:16]}...)",
    ]
    if last.get("shards_made"):
        lines.append(
            f"last run         {last['shards_made']} shards in {last['seconds']:.1f} s "
            f"({last['showers_per_second']:.1f} showers/s, {last.get('workers')} workers)"
        )
    return lines


def production_summary(out_dir: str | Path, *, progress: Callable[[int], object] | None = None) -> list[str]:
    """:func:`production_lines`, then the summary of the showers of every complete shard
    (:func:`caloclouds.io.summary.summarise`, streamed)."""
    from caloclouds.io.formats import iter_any
    from caloclouds.io.summary import summarise

    lines = production_lines(out_dir)
    _, files, _ = done_shards(out_dir, verify=False)  # production_lines has just verified them
    summary = summarise((chunk for path in files for chunk in iter_any(path)), progress=progress)
    return lines + summary.lines()
