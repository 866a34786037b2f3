"""Draw one shower layer by layer on the cells of a geometry (hexagons for HGCal), coloured by energy.

The shower is projected first (same options as `caloclouds project`); every layer gets a panel with
the cells of the window outlined (HGCal wafer edges in black) and the hit cells filled on a log
colour scale.

Example:
  caloclouds plot-shower g4_photons_val_fixed.h5 --index 200 --geometry hgcal -o shower.png --threshold-mip 0.5
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from caloclouds.cli.options import add_overwrite_argument, add_placement_arguments, placement_options

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="shower file")
    parser.add_argument("--index", type=int, default=0, metavar="I", help="shower index in the file (default 0)")
    add_placement_arguments(parser)
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="PNG", help="image file (.png, .pdf, .svg)")
    add_overwrite_argument(parser, "the image")
    parser.add_argument(
        "--layers", default=None, metavar="LIST", help="detector layers to draw, e.g. 0-25 or 3,6,9 (default all)"
    )
    parser.add_argument(
        "--half-width-mm", type=float, default=60.0, metavar="MM", help="half width of each panel (default 60)"
    )
    parser.add_argument(
        "--centre",
        nargs=2,
        type=float,
        default=None,
        metavar=("X_MM", "Y_MM"),
        help="panel centre (default: the energy-weighted centre of the hits)",
    )
    parser.add_argument("--title", default=None, help="figure title (default: energy and geometry)")
    parser.add_argument("--dpi", type=int, default=100)


def _layers(text: str | None, n_layers: int) -> list[int] | None:
    """``0-25`` or ``3,6,9`` (or both, comma-separated) as a list of layers of the geometry."""
    from caloclouds.errors import ConfigError

    if text is None:
        return None
    out: list[int] = []
    try:
        for part in text.split(","):
            a, _, b = part.strip().partition("-")
            out.extend(range(int(a), int(b) + 1) if b else [int(a)])
    except ValueError:
        raise ConfigError(f"--layers {text!r}: expected layers like 0-25 or 3,6,9") from None
    bad = [v for v in out if not 0 <= v < n_layers]
    if not out or bad:
        raise ConfigError(
            f"--layers {text!r}: layers must lie in 0-{n_layers - 1} (the geometry's layers), got {bad or 'none'}"
        )
    return out


def _points_source(energy_source: object) -> str | None:
    """What the file's points are, from its ``energy_source`` metadata (without any cell binning)."""
    if not isinstance(energy_source, str) or not energy_source:
        return None
    return energy_source.split(", binned onto")[0].split(", re-binned onto")[0].split("; cells re-binned")[0]


def run(args: argparse.Namespace) -> int:
    import projection
    from caloclouds.errors import CaloCloudsError
    from caloclouds.io.atomic import check_output_path
    from caloclouds.io.formats import count_showers, iter_any
    from caloclouds.io.metadata import file_metadata
    from projection.files import energy_source_label
    from projection.plot import plot_shower

    n = count_showers(args.file)
    if not 0 <= args.index < n:
        raise CaloCloudsError(f"--index {args.index} is outside the {n} showers of {args.file}")
    if not (math.isfinite(args.half_width_mm) and args.half_width_mm > 0):
        raise CaloCloudsError(f"--half-width-mm must be a finite number > 0, got {args.half_width_mm}")
    if not 10 <= args.dpi <= 1000:
        raise CaloCloudsError(f"--dpi must lie in 10-1000, got {args.dpi}")
    if args.centre is not None and not all(math.isfinite(v) for v in args.centre):
        raise CaloCloudsError(f"--centre must be two finite numbers in mm, got {args.centre}")
    check_output_path(args.output, suffixes=(".png", ".pdf", ".svg", ".jpg", ".jpeg"), overwrite=args.overwrite)
    options = placement_options(args)
    geometry = projection.get_geometry(args.geometry, data_dir=args.data_dir)
    layers = _layers(args.layers, geometry.n_layers)
    start = 0
    for chunk in iter_any(args.file):
        if args.index < start + len(chunk):
            showers = chunk[args.index - start : args.index - start + 1]
            break
        start += len(chunk)
    hits = projection.project(showers, geometry, **options)
    energy = float(showers.incident_energy_gev[0])
    title = args.title or (
        f"shower {args.index} of {args.file.name}: {energy:.3g} GeV, on {geometry.name} "
        f"({100 * hits.e_mev.sum() / max(showers.visible_energy_mev()[0], 1e-30):.1f} % of {showers.visible_energy_mev()[0]:.4g} MeV in cells)"
    )
    source = file_metadata(args.file).get("energy_source")  # generated showers say so in their file
    plot_shower(
        hits,
        geometry,
        note=energy_source_label(geometry.name, _points_source(source)),
        path=args.output,
        title=title,
        layers=layers,
        centre_mm=None if args.centre is None else tuple(args.centre),
        half_width_mm=args.half_width_mm,
        dpi=args.dpi,
    )
    print(f"wrote {args.output}")
    return 0
