"""Bin point-cloud showers into the cells of a geometry and write the cell hits.

GEOMETRY is ild (5.088 mm square grid, 30 layers), ild-real (real ILD ECAL barrel cells with
gaps and dead areas), hgcal (CMS HGCal CE-E, 26 layers), hex:PITCH_MM[:pointy],
square:PITCH_MM[:EVERY:GAP_MM], or a .npz geometry file. The output is a cells HDF5 file (.h5) or ROOT (.root, points plus cells).
Energy is conserved: what misses the cells is reported as lost.

The showers' detector (layer count and depths, cell pitch, MIP) is the ILD-like one of
../shared/data unless --config gives another (its detector section).

Examples:
  caloclouds project --geometry ild --in showers.h5 -o cells.h5 --threshold-mev 0.08
  caloclouds project --geometry ild --config configs/hgcal_like_26.yaml --in showers26.h5 -o cells.h5 --threshold-mip 0.5
  caloclouds project --geometry hgcal --in showers.h5 -o cells.root --threshold-mip 0.5 --impact 3 -2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from caloclouds.cli.options import (
    add_config_argument,
    add_overwrite_argument,
    add_placement_arguments,
    placement_options,
)

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_placement_arguments(parser)
    parser.add_argument("--in", dest="input", required=True, type=Path, metavar="SHOWERS", help="input shower file")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="CELLS", help="output .h5 or .root")
    add_overwrite_argument(parser, "the output file")
    parser.add_argument("--device", default="numpy", help="numpy (default), cpu or cuda (torch)")
    parser.add_argument("--chunk", type=int, default=1000, metavar="SHOWERS", help="showers per chunk (default 1000)")
    add_config_argument(
        parser, "run config whose detector section describes the showers (default: the ILD-like detector)"
    )


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    import projection
    from projection.files import project_file

    from caloclouds.config import ILD_LIKE_DETECTOR, load_config
    from caloclouds.errors import ConfigError
    from caloclouds.io.atomic import check_output_path
    from caloclouds.io.formats import detect_format
    from projection.files import OUTPUT_SUFFIXES

    if args.chunk < 1:
        raise ConfigError(f"--chunk must be >= 1 shower, got {args.chunk}")
    options = placement_options(args)
    detector = load_config(args.config).detector if args.config else ILD_LIKE_DETECTOR
    detect_format(args.input)
    check_output_path(args.output, suffixes=OUTPUT_SUFFIXES, overwrite=args.overwrite)
    geometry = projection.get_geometry(args.geometry, detector=detector, data_dir=args.data_dir)
    with tqdm(unit="shower", disable=not sys.stderr.isatty(), desc="project") as bar:
        summary = project_file(
            args.input,
            args.output,
            geometry,
            detector=detector,
            device=args.device,
            chunk_showers=args.chunk,
            progress=bar.update,
            **options,
        )
    print(f"geometry         {geometry!r}")
    for line in summary.lines():
        print(line)
    if geometry.name not in ("ild", "ild-real"):
        from projection.files import energy_source_label

        print(f"energies         {energy_source_label(geometry.name)}")
    print(f"wrote            {args.output}")
    return 0
