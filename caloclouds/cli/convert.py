"""Convert a shower file to our HDF5 (.h5) or ROOT (.root) format.

Inputs: EDM4hep ROOT (SimCalorimeterHit steps, clustered onto the sub-cell grid in the shower's local
frame), CaloClouds HDF5 (events/energy), raw Geant4 steps in our HDF5 schema, or our own HDF5/ROOT.
The input format is detected from the file's content unless --format is given.

Example:
  caloclouds convert ../shared/data/ild_single_photon.edm4hep.root -o x.h5
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from caloclouds.cli.options import add_config_argument, add_overwrite_argument

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from caloclouds.io.edm4hep import DEFAULT_BOX_MM, DEFAULT_COLLECTIONS

    parser.add_argument("input", type=Path, metavar="INPUT", help="file to convert")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="OUT",
        help="output file; .h5/.hdf5 -> our HDF5 schema, .root -> ROOT TTree 'events'",
    )
    add_overwrite_argument(parser, "the output file")
    parser.add_argument(
        "--format",
        default="auto",
        choices=["auto", "edm4hep", "caloclouds", "steps", "hdf5", "root", "cells"],
        help="input format (default: detected from the content)",
    )
    parser.add_argument(
        "--box-mm",
        type=float,
        default=DEFAULT_BOX_MM,
        metavar="MM",
        help=f"EDM4hep: keep steps within +-MM of the shower axis (default {DEFAULT_BOX_MM:g})",
    )
    parser.add_argument(
        "--collections",
        nargs="+",
        default=list(DEFAULT_COLLECTIONS),
        metavar="NAME",
        help=f"EDM4hep SimCalorimeterHit collections (default: {' '.join(DEFAULT_COLLECTIONS)})",
    )
    add_config_argument(
        parser,
        "run config whose 'detector' section gives layers and grid "
        "(default: the built-in ILD-like detector, as configs/ild_photons.yaml)",
    )


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from caloclouds.config import load_config
    from caloclouds.errors import ConfigError
    from caloclouds.io.atomic import check_output_path
    from caloclouds.io.formats import convert_file, count_showers

    if not (math.isfinite(args.box_mm) and args.box_mm > 0):
        raise ConfigError(f"--box-mm must be a finite number > 0, got {args.box_mm:g}")
    detector = load_config(args.config).detector if args.config else None
    fmt = None if args.format == "auto" else args.format
    total = count_showers(args.input, format=fmt)
    check_output_path(args.output, suffixes=(".h5", ".hdf5", ".root"), overwrite=args.overwrite)
    with tqdm(total=total, unit="shower", disable=not sys.stderr.isatty(), desc="convert") as bar:
        n_showers, n_points = convert_file(
            args.input,
            args.output,
            format=fmt,
            detector=detector,
            box_mm=args.box_mm,
            collections=args.collections,
            progress=bar.update,
        )
    print(f"wrote {n_showers} showers ({n_points} points) to {args.output}")
    return 0
