"""Cell-level validation of generated showers against a Geant4 reference.

Projects every file onto the evaluation cells (ILD 5.088 mm grid, threshold 0.5 MIP by default),
computes the observables (hits, E_vis/E_inc, cell energies, longitudinal and radial profiles,
centre of gravity, 10+10 decile-bin energies) and scores each generated file against the
reference: standardised W1 per observable, the 25-feature classifier AUC, FPD and KPD, each next
to the Geant4 floor (two halves of the reference). Writes DIR/scores.json, DIR/*.png and
DIR/report.html.

examples:
  caloclouds evaluate --reference g4_photons_val_uniform.h5 --generated cm.root --out eval/
  caloclouds evaluate --reference g4.h5 --generated cm.h5 --generated edm.h5 \\
      --label CM --label EDM --out eval/ --max-showers 1000
  caloclouds evaluate --reference g4.h5 --generated cm.h5 --generated voxel.h5 --voxel-mesh ds2 --out eval/
  caloclouds evaluate --reference g4_photons_train.h5 --measure-mip
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from typing import TYPE_CHECKING

from caloclouds.errors import CaloCloudsError, ConfigError

if TYPE_CHECKING:
    from caloclouds.showers import Showers

__all__ = ["add_arguments", "run"]


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reference", required=True, metavar="REF.h5", help="Geant4 reference showers")
    parser.add_argument("--generated", action="append", default=[], metavar="GEN.{h5,root}",
                        help="generated showers (repeat to compare several models)")
    parser.add_argument("--label", action="append", default=[], metavar="NAME",
                        help="name of each --generated file, in order (default: the file name)")
    parser.add_argument("--out", metavar="DIR", help="output folder for scores.json, PNGs, report.html")
    parser.add_argument("--max-showers", type=_positive_int, metavar="N",
                        help="use only the first N showers of every file")
    parser.add_argument("--config", metavar="CONFIG.yaml",
                        help="run config whose 'evaluation' section is used (default: built-in defaults)")
    parser.add_argument("--reference-label", default="Geant4", metavar="NAME", help="name of the reference")
    parser.add_argument("--voxel-mesh", metavar="ds2|ds1|MESH.yaml",
                        help="also score the FPD/KPD of CaloChallenge high-level features with every sample "
                             "voxelised onto this mesh (point-cloud vs voxel models)")
    parser.add_argument("--no-plots", action="store_true", help="write scores.json and report.html only")
    parser.add_argument("--measure-mip", action="store_true",
                        help="only measure the MIP MPV of the reference's cells (no threshold) and print it")


def _read(path: str, max_showers: int | None) -> Showers:
    """All showers of a file of any supported format, or its first ``max_showers``."""
    from caloclouds.errors import InputFileError
    from caloclouds.io import iter_any
    from caloclouds.showers import Showers

    if not Path(path).exists():
        raise InputFileError(path, "file not found")
    parts, n = [], 0
    for chunk in iter_any(path):  # stops reading once max_showers are in
        parts.append(chunk)
        n += len(chunk)
        if max_showers is not None and n >= max_showers:
            break
    showers = Showers.concatenate(parts)
    if len(showers) == 0:
        raise InputFileError(path, "holds no showers")
    return showers if max_showers is None else showers[:max_showers]


def run(args: argparse.Namespace) -> int:
    from caloclouds.config import EvaluationConfig, load_config

    config = load_config(args.config).evaluation if args.config else EvaluationConfig()
    if args.voxel_mesh:
        from dataclasses import replace

        from caloclouds.voxel.mesh import get_mesh

        get_mesh(args.voxel_mesh)  # a bad mesh fails here, before any projection
        config = replace(config, voxel_mesh=args.voxel_mesh)
    if args.measure_mip:
        return _measure_mip(args, config)
    if not args.generated:
        raise ConfigError("give at least one --generated file (or --measure-mip)")
    if not args.out:
        raise ConfigError("--out DIR is required")
    if args.label and len(args.label) != len(args.generated):
        raise ConfigError(f"got {len(args.label)} --label for {len(args.generated)} --generated files")
    labels = args.label or [Path(p).stem for p in args.generated]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"labels must be distinct, got {labels}; name them with --label")

    from caloclouds.evaluation import evaluate
    from caloclouds.evaluation.report import format_table

    start = time.perf_counter()
    reference = _read(args.reference, args.max_showers)
    generated = {label: _read(path, args.max_showers) for label, path in zip(labels, args.generated)}
    try:
        result = evaluate(
            reference, generated, config=config, out_dir=Path(args.out),
            reference_label=args.reference_label, plots=not args.no_plots,
            sources={args.reference_label: str(args.reference), **dict(zip(labels, args.generated))},
            progress=lambda msg: print(f"  {msg}", flush=True),
        )
    except ValueError as exc:
        if isinstance(exc, CaloCloudsError):
            raise
        raise ConfigError(str(exc)) from None
    print(format_table(result))
    print(f"wrote {Path(args.out) / 'report.html'} ({time.perf_counter() - start:.1f} s)")
    return 0


def _measure_mip(args: argparse.Namespace, config: object) -> int:
    import projection

    from caloclouds.evaluation.mip import measure_mip

    showers = _read(args.reference, args.max_showers)
    geometry = projection.get_geometry(getattr(config, "geometry"))
    hits = projection.project(showers, geometry)
    fit = measure_mip(hits)
    print(
        f"MIP MPV {fit.mpv_mev:.4f} +- {fit.mpv_error_mev:.4f} MeV (Moyal width {fit.width_mev:.4f} MeV, "
        f"fullest bin {fit.peak_bin_mev:.4f} MeV, {fit.n_cells} cells of layers 0-2 in the fit window, "
        f"{len(showers)} showers)"
    )
    return 0
