"""Batch-1 speed of this tree against an earlier revision, both in one process, in alternating blocks.

Issue 17 asks that the shipped model be no slower at batch 1 than the one shipped when the issue was
filed (revision ``40b985b^``, the depth-based CM). On a shared 2-core VM the speed of the same
code swings by 30 % within minutes, so two ``caloclouds bench`` runs in turn are a poor witness.
This script imports both trees into one process (the old one under renamed packages:
``caloclouds_old``, ``flows_old``, ``projection_old``) and times them shower by shower, in blocks
that alternate, as ``caloclouds bench`` times the model: ``ShowerGenerator.generate`` of one
shower at a uniform energy in 10-90 GeV, with an explicit ``torch.Generator``, one thread.

Usage (from the repository root, with the project's venv)::

    OMP_NUM_THREADS=1 taskset -c 1 .venv/bin/python campaign/speed_against_baseline.py \
        --revision '40b985b^' --rounds 30 --block 50 --json speed.json

Prints the median ms per shower of each round for both, the paired difference, and the stage
times; ``--json`` writes them. The old tree is checked out with ``git worktree`` into a temporary
folder and removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PACKAGES = ("caloclouds", "flows", "projection")
STAGES = ("flow", "diffusion", "calibration")


def renamed_copy(tree: Path, out: Path) -> None:
    """Copy the packages of ``tree`` into ``out`` as ``<name>_old``, their imports renamed to match."""
    names = "|".join(PACKAGES)
    from_import = re.compile(rf"\bfrom ({names})\b")
    plain_import = re.compile(rf"^(\s*)import ({names})$", re.MULTILINE)  # keeps the name it binds
    for name in PACKAGES:
        shutil.copytree(tree / name, out / f"{name}_old", ignore=shutil.ignore_patterns("__pycache__"))
    for path in out.rglob("*.py"):
        text = from_import.sub(r"from \1_old", path.read_text())
        path.write_text(plain_import.sub(r"\1import \2_old as \2", text))


def time_block(gen, energies: np.ndarray, generator) -> tuple[float, list[float]]:
    """Median ms per shower over ``energies`` and the mean ms of each stage."""
    before = dict(vars(gen.times))
    times = []
    for e in energies:
        t0 = time.perf_counter()
        gen.generate(np.array([e]), generator=generator)
        times.append((time.perf_counter() - t0) * 1e3)
    after = vars(gen.times)
    return float(np.median(times)), [(after[s] - before[s]) * 1e3 / len(energies) for s in STAGES]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--revision", default="40b985b^", help="the baseline revision (default: issue 17's)")
    parser.add_argument("--rounds", type=int, default=30, help="alternating rounds (default 30)")
    parser.add_argument("--block", type=int, default=50, help="showers per version and round (default 50)")
    parser.add_argument("--json", type=Path, help="write the per-round numbers here")
    args = parser.parse_args()

    import torch

    from caloclouds.memory import keep_freed_memory

    keep_freed_memory()
    torch.set_num_threads(1)
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        tree, copy = Path(tmp) / "tree", Path(tmp) / "packages"
        add = ["git", "-C", str(root), "worktree", "add", "--detach", str(tree), args.revision]
        if subprocess.run(add, capture_output=True, text=True).returncode:
            parser.error(f"--revision {args.revision!r} cannot be checked out in {root}: is it a commit here?")
        try:
            renamed_copy(tree, copy)
        finally:
            subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(tree)], check=True)
        sys.path.insert(0, str(copy))
        from caloclouds_old.generation.bundle import load_bundle as load_old_bundle
        from caloclouds_old.generation.generator import ShowerGenerator as OldShowerGenerator

        from caloclouds.generation.bundle import load_bundle
        from caloclouds.generation.generator import ShowerGenerator

        gens = {
            "baseline": OldShowerGenerator(load_old_bundle("default"), device="cpu"),
            "this tree": ShowerGenerator(load_bundle("default"), device="cpu"),
        }
        rng = np.random.default_rng(0)
        generators = {name: torch.Generator().manual_seed(0) for name in gens}
        for name, gen in gens.items():  # warm-up, as bench's first ten showers
            time_block(gen, rng.uniform(10, 90, 20).astype(np.float32), generators[name])
        medians: dict[str, list[float]] = {name: [] for name in gens}
        stages: dict[str, list[list[float]]] = {name: [] for name in gens}
        for r in range(args.rounds):
            energies = rng.uniform(10, 90, args.block).astype(np.float32)
            for name in list(gens) if r % 2 == 0 else list(gens)[::-1]:
                median, stage = time_block(gens[name], energies, generators[name])
                medians[name].append(median)
                stages[name].append(stage)

    old, new = (np.array(medians[name]) for name in gens)
    diff = new - old
    for name, values in medians.items():
        stage = np.median(np.array(stages[name]), axis=0)
        print(
            f"{name:10s} median {np.median(values):.2f} ms/shower; stages (mean, ms) "
            + " / ".join(f"{s} {v:.2f}" for s, v in zip(STAGES, stage, strict=True))
        )
    print(
        f"paired difference (this tree - baseline): median {np.median(diff):+.2f} ms ({np.median(diff / old):+.1%}), "
        f"this tree faster in {int((diff < 0).sum())} of {len(diff)} rounds"
    )
    if args.json:
        args.json.write_text(json.dumps({"revision": args.revision, "medians_ms": medians, "stages_ms": stages}))


if __name__ == "__main__":
    main()
