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
import math
import sys
from pathlib import Path

from caloclouds.cli.options import add_overwrite_argument

__all__ = ["add_arguments", "run"]


def add_geometry_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `project` and `plot-shower`."""
    parser.add_argument(
        "--geometry",
        required=True,
        metavar="GEOMETRY",
        help="ild | ild-real | hgcal | hex:PITCH_MM[:pointy] | square:PITCH_MM[:EVERY:GAP_MM] | FILE.npz",
    )
    parser.add_argument(
        "--impact",
        nargs=2,
        type=float,
        default=(0.0, 0.0),
        metavar=("X_MM", "Y_MM"),
        help="where the shower axis hits the geometry (mm, default 0 0)",
    )
    parser.add_argument(
        "--rotation-deg",
        type=float,
        default=0.0,
        metavar="DEG",
        help="rotate the shower about its axis (counter-clockwise, degrees)",
    )
    parser.add_argument(
        "--layer-map",
        default=None,
        metavar="MAP",
        help="identity | linear | comma-separated detector layer per shower layer (-1 drops); "
        "default: the geometry's (linear for hgcal)",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--threshold-mev", type=float, default=None, metavar="MEV", help="drop cells below this energy")
    group.add_argument(
        "--threshold-mip", type=float, default=None, metavar="MIPS", help="drop cells below this many MIPs"
    )
    parser.add_argument(
        "--mip-mev",
        type=float,
        default=None,
        metavar="MEV",
        help="MIP energy for --threshold-mip (default: the detector's, 0.147 for the ILD-like one)",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="folder with the geometry data files (default ../shared/data)"
    )


def _check_finite(option: str, value: float | None, *, positive: bool = False, non_negative: bool = False) -> None:
    from caloclouds.errors import ConfigError

    if value is None:
        return
    if not math.isfinite(value) or (positive and value <= 0) or (non_negative and value < 0):
        bound = " > 0" if positive else " >= 0" if non_negative else ""
        raise ConfigError(f"{option} must be a finite number{bound}, got {value}")


def placement_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of projection.project from the shared options (checked: one-line errors)."""
    from caloclouds.errors import ConfigError

    for value in args.impact:
        _check_finite("--impact", value)
    _check_finite("--rotation-deg", args.rotation_deg)
    _check_finite("--threshold-mev", args.threshold_mev, non_negative=True)
    _check_finite("--threshold-mip", args.threshold_mip, non_negative=True)
    _check_finite("--mip-mev", args.mip_mev, positive=True)
    if args.mip_mev is not None and args.threshold_mip is None:
        raise ConfigError("--mip-mev is used only with --threshold-mip")
    layer_map = args.layer_map
    if layer_map is not None and layer_map not in ("identity", "linear"):
        try:
            layer_map = [int(v) for v in layer_map.split(",")]
        except ValueError:
            raise ConfigError(
                f"--layer-map {args.layer_map!r} is not identity, linear or comma-separated integers"
            ) from None
    options = dict(
        impact_mm=tuple(args.impact),
        rotation_rad=math.radians(args.rotation_deg),
        layer_map=layer_map,
        threshold_mev=args.threshold_mev,
        threshold_mip=args.threshold_mip,
    )
    if args.mip_mev is not None:
        options["mip_mev"] = args.mip_mev
    return options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_geometry_arguments(parser)
    parser.add_argument("--in", dest="input", required=True, type=Path, metavar="SHOWERS", help="input shower file")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="CELLS", help="output .h5 or .root")
    add_overwrite_argument(parser, "the output file")
    parser.add_argument("--device", default="numpy", help="numpy (default), cpu or cuda (torch)")
    parser.add_argument("--chunk", type=int, default=1000, metavar="SHOWERS", help="showers per chunk (default 1000)")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="YAML",
        help="run config whose detector section describes the showers (default: the ILD-like detector)",
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
