"""Batch-1 speed of two model bundles in one process, in alternating blocks (one thread).

Usage (repository root, venv)::

    OMP_NUM_THREADS=1 .venv/bin/python campaign/speed_models.py default caloclouds/models/ild_normal_incidence \
        --rounds 20 --block 50 [--theta-deg 20]

Times ``ShowerGenerator.generate`` of one shower at a uniform energy in 10-90 GeV, as ``caloclouds
bench`` times the model, in blocks that alternate between the two bundles (a shared 2-core VM swings
by 30 % within minutes, so two runs in turn are a poor witness). Prints the median ms per shower of
each and the median of the per-round ratios A / B. ``--theta-deg`` draws A's showers at that angle
(phi uniform); B at normal incidence.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--block", type=int, default=50)
    parser.add_argument("--theta-deg", type=float, default=None)
    args = parser.parse_args()

    from caloclouds.generation.bundle import load_bundle
    from caloclouds.generation.generator import ShowerGenerator
    from caloclouds.memory import keep_freed_memory

    torch.set_num_threads(1)
    keep_freed_memory()
    generators = [ShowerGenerator(load_bundle(spec)) for spec in (args.a, args.b)]
    rng = np.random.default_rng(0)
    times: list[list[float]] = [[], []]
    for _ in range(args.rounds):
        for k, gen in enumerate(generators):
            g = torch.Generator().manual_seed(int(rng.integers(1 << 31)))
            angle = {} if k == 1 or args.theta_deg is None else {"theta_deg": args.theta_deg}
            t0 = time.perf_counter()
            for _ in range(args.block):
                energy = np.array([rng.uniform(10.0, 90.0)], np.float32)
                extra = {**angle, "phi_deg": rng.uniform(0.0, 360.0)} if angle else {}
                gen.generate(energy, generator=g, **extra)
            times[k].append((time.perf_counter() - t0) / args.block * 1e3)
    ratios = [a / b for a, b in zip(times[0], times[1], strict=True)]
    print(f"A {args.a}: median {statistics.median(times[0]):.2f} ms/shower")
    print(f"B {args.b}: median {statistics.median(times[1]):.2f} ms/shower")
    print(
        f"A / B per round: median {statistics.median(ratios):.3f}, "
        f"A faster in {sum(r < 1 for r in ratios)} of {len(ratios)}"
    )


if __name__ == "__main__":
    main()
