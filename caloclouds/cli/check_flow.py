"""Compare Shower Flow samples with a reference shower file (standardised Wasserstein-1).

The flow is sampled at the reference's incident energies. For N, E_vis/E_inc, the energy of each
layer and the CoG in x and y it prints W1(flow, reference) / std(reference) next to the same
distance between two random halves of the reference (the statistical floor), then the mean energy
per layer of both and the pass/fail summary.

example:
  caloclouds check-flow --flow runs/flow --reference g4_photons_val_uniform.h5
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from caloclouds.cli.options import add_device_argument, add_overwrite_argument, add_seed_argument

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--flow",
        type=Path,
        default=None,
        metavar="PATH",
        help="flow checkpoint or run folder (default: the bundled model)",
    )
    parser.add_argument("--reference", type=Path, required=True, metavar="H5", help="reference shower file")
    parser.add_argument(
        "--samples-per-shower",
        type=int,
        default=10,
        metavar="K",
        help="flow samples per reference energy (default: 10)",
    )
    add_seed_argument(parser, "seed of the samples and the half split")
    add_device_argument(parser)
    parser.add_argument(
        "--floor-factor",
        type=float,
        default=3.0,
        metavar="X",
        help="N and E_vis/E_inc pass when W1 <= X * floor (default: 3)",
    )
    parser.add_argument(
        "--profile-tolerance",
        type=float,
        default=0.05,
        metavar="FRAC",
        help="tolerance of the mean energy per layer (default: 0.05)",
    )
    parser.add_argument(
        "--profile-layers", type=int, default=26, metavar="L", help="check the profile in layers 0..L-1 (default: 26)"
    )
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the numbers as JSON")
    add_overwrite_argument(parser, "the --json file")
    parser.add_argument("--strict", action="store_true", help="exit with code 1 when a check fails")


def run(args: argparse.Namespace) -> int:
    from caloclouds.errors import ConfigError
    from caloclouds.io.atomic import atomic_path
    from flows import default_flow_path, load_shower_flow
    from flows.quality import check_shower_flow

    if args.samples_per_shower < 1:
        raise ConfigError(f"--samples-per-shower must be >= 1, got {args.samples_per_shower}")
    if args.json is not None:
        from caloclouds.io.atomic import check_output_path

        check_output_path(args.json, option="--json", overwrite=args.overwrite)
    flow = load_shower_flow(args.flow or default_flow_path(), map_location=args.device)
    check = check_shower_flow(
        flow,
        args.reference,
        samples_per_shower=args.samples_per_shower,
        seed=args.seed,
        floor_factor=args.floor_factor,
        profile_tolerance=args.profile_tolerance,
        profile_layers=args.profile_layers,
    )
    print(check.format())
    if args.json is not None:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(check.to_dict(), indent=2))
    return 1 if args.strict and not all(check.passed.values()) else 0
