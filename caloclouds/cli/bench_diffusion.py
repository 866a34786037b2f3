"""Measure PointWise Net sampling time on the CPU and, optionally, its point-level quality.

Timing: one shower of --points points (default 3000), one thread by default; prints the median
time of a full `PointModel.sample` call and of the bare network evaluation.

Quality (--reference): generates --n-showers showers at --energy GeV with the point counts of the
reference showers at that energy (cycled), and prints the standardised W1 of the radial distance,
depth and log energy of the points, next to the Geant4 half-vs-half floor.

example:
  caloclouds bench-diffusion --model caloclouds/models/default/cm.pt --threads 1
  caloclouds bench-diffusion --model runs/teacher --solver euler --steps 13 \\
      --reference ../shared/data/g4_photons_val_fixed.h5 --energy 50 --n-showers 1000
"""

from __future__ import annotations

import argparse
import platform

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="FILE|DIR", help="PointWise Net checkpoint (cm or edm)")
    parser.add_argument(
        "--solver",
        metavar="NAME",
        default=None,
        help="consistency for a cm checkpoint, heun or euler "
        "for a teacher (default: the checkpoint's own); a name of caloclouds.diffusion.sampling.SOLVERS",
    )
    parser.add_argument(
        "--sampler",
        choices=("cm", "edm"),
        default=None,
        help="deprecated: the checkpoint's kind (cm = consistency, edm = heun)",
    )
    parser.add_argument("--steps", type=int, default=None, help="CM steps or Heun / Euler steps (default: config)")
    parser.add_argument("--points", type=int, default=3000, help="points of the timed shower (default: 3000)")
    parser.add_argument("--repeats", type=int, default=50, help="timed repetitions (default: 50)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    parser.add_argument("--no-timing", action="store_true", help="skip the timing")
    parser.add_argument("--reference", default=None, metavar="G4.h5", help="Geant4 file for the W1 check")
    parser.add_argument(
        "--energy",
        type=float,
        default=50.0,
        metavar="GEV",
        help="incident energy of the W1 check; reference showers within --tolerance (default: 50)",
    )
    parser.add_argument("--tolerance", type=float, default=0.5, metavar="GEV", help="default: 0.5")
    parser.add_argument("--n-showers", type=int, default=1000, help="generated showers for the W1 check")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    import torch

    from caloclouds.diffusion.evaluation import evaluate_points, time_sampling
    from caloclouds.diffusion.model import load_point_model
    from caloclouds.errors import CaloCloudsError
    from caloclouds.io import read_showers

    torch.set_num_threads(args.threads)
    model = load_point_model(args.model)
    solver = model.resolve_solver(args.solver, sampler=args.sampler)  # a clash is one line, before any work
    print(f"model: {model} from {args.model}; solver {solver}, steps {args.steps or 'default'}")
    if not args.no_timing:
        t = time_sampling(model, n_points=args.points, solver=solver, steps=args.steps, repeats=args.repeats)
        print(
            f"one shower of {args.points} points, {torch.get_num_threads()} thread(s) on {platform.processor() or platform.machine()}: "
            f"sample {t['sample_median_ms']:.2f} ms median (IQR {t['sample_q25_ms']:.2f}-{t['sample_q75_ms']:.2f}), "
            f"network evaluation {t['network_median_ms']:.2f} ms median"
        )
    if args.reference:
        ref = read_showers(args.reference).select_energy(args.energy - args.tolerance, args.energy + args.tolerance)
        if len(ref) < 2:
            raise CaloCloudsError(
                f"{args.reference}: fewer than 2 showers within {args.tolerance} GeV of {args.energy} GeV"
            )
        res = evaluate_points(
            model,
            ref,
            n_showers=args.n_showers,
            solver=solver,
            steps=args.steps,
            energy_gev=args.energy,
            seed=args.seed,
        )
        print(
            f"{res.n_generated} generated vs {res.n_reference} Geant4 showers at {args.energy:g} GeV "
            f"(sampling took {res.seconds:.1f} s):"
        )
        print(res.table(f"{model.part} {solver}{'' if args.steps is None else f' {args.steps} steps'}"))
    return 0
