"""Score a bundle on the must-shows of issues 24 and 25, as the model card reports them.

Usage (repository root, venv)::

    python campaign/judge.py BUNDLE OUT [--only normal|angled|geometries] [--n 1000]

1. ``normal``: one shower per shower of ``g4_photons_val_uniform.h5`` (seed 1), evaluated with
   ``--impact all`` (random, corner, centre), floor ``g4_photons_train2.h5``, both classifiers;
2. ``geometries``: the same showers on ``hex:5.0`` and ``hgcal`` at random impact;
3. ``angled``: one shower per shower of ``g4_photons_angled_val.h5`` at its energy and direction
   (``generate --conditions-from``), evaluated at random impact, floor from two halves of
   ``g4_photons_angled_train.h5`` (the whole file is read, so that each half has as many showers as
   the comparison: no ``--max-showers``), both classifiers, with the theta breakdown.

Every command is printed and run with one thread; the scores go to OUT/<part>/scores.json.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str]) -> None:
    print("$ caloclouds " + shlex.join(cmd), flush=True)
    subprocess.run([str(Path(sys.executable).with_name("caloclouds")), *cmd, "--threads", "1"], check=True, cwd=ROOT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle")
    parser.add_argument("out", type=Path)
    parser.add_argument("--only", choices=("normal", "geometries", "angled"), action="append")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    args = parser.parse_args(argv)
    parts = args.only or ["normal", "geometries", "angled"]
    data, n, out = args.data, str(args.n), args.out
    out.mkdir(parents=True, exist_ok=True)
    normal = out / "normal.h5"
    limits = ["--max-ratio", "2", "--max-auc-low-level", "0.75", "--no-fail-exit"]
    if ("normal" in parts or "geometries" in parts) and not normal.is_file():
        run(["generate", "--model", args.bundle, "--energies-from", f"{data}/g4_photons_val_uniform.h5", "-n", n,
             "--seed", "1", "-o", str(normal)])  # fmt: skip
    common = ["--reference", f"{data}/g4_photons_val_uniform.h5", "--floor-reference", f"{data}/g4_photons_train2.h5",
              "--generated", str(normal), "--label", "model", "--max-showers", n, *limits]  # fmt: skip
    if "normal" in parts:
        run(["evaluate", *common, "--impact", "all", "--max-auc", "0.65", "--out", str(out / "normal")])
    if "geometries" in parts:
        for geometry in ("hex:5.0", "hgcal"):
            run(["evaluate", *common, "--geometry", geometry, "--impact", "random", "--max-auc", "0.70",
                 "--out", str(out / geometry.replace(":", "_"))])  # fmt: skip
    if "angled" in parts:
        angled = out / "angled.h5"
        if not angled.is_file():
            run(["generate", "--model", args.bundle, "--conditions-from", f"{data}/g4_photons_angled_val.h5",
                 "-n", n, "--seed", "1", "-o", str(angled)])  # fmt: skip
        run(["evaluate", "--reference", f"{data}/g4_photons_angled_val.h5", "--floor-reference",
             f"{data}/g4_photons_angled_train.h5", "--floor-halves", "--generated", str(angled), "--label", "model",
             "--impact", "random", "--max-auc", "0.70", *limits,
             "--out", str(out / "angled")])  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
