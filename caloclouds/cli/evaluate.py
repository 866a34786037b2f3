"""Cell-level validation of generated showers against a Geant4 reference, next to the Geant4 floor.

Projects every file onto the evaluation cells (ILD 5.088 mm grid, threshold 0.5 MIP by default),
computes the observables (hits, E_vis/E_inc, cell energies, longitudinal and radial profiles,
centre of gravity, 10+10 decile-bin energies) and scores each generated file against the
reference: standardised W1 per observable, the high-level (25 features) and the low-level (cells,
point-set network) classifier AUC, FPD and KPD. Every score is computed next to the Geant4 floor,
two independent Geant4 samples of the same size (--floor-reference, else two halves of the
reference), and judged by its ratio to it (pass/fail: --max-ratio, --max-auc). A score passes
when it is within its limit by its error: ratio - ratio error <= --max-ratio for a distance,
AUC - its std over the folds <= --max-auc for a classifier. Scores are also broken down by
incident energy (10-30, 30-60, 60-90 GeV) and the verdict counts every range; per-range AUCs on
fewer than 200 showers a side are shown but not judged. Samples whose incident-energy spectrum
clearly differs from the reference's (KS test) are refused unless --allow-spectrum-mismatch.

Impact position (--impact): each shower of every sample (reference, floor and models) hits the
cells at its own position, drawn uniformly within one cell from the evaluation seed (random, the
default); corner puts every axis at x = y = 0, where four cells of the ILD grid meet (a hexagon
vertex for hex:P and hgcal); centre at a cell centre; all scores the three side by side. Radii
and the centre of gravity are measured from the shower axis.

Oblique incidence: files with theta_deg/phi_deg (a file without them is normal incidence) have
their radii measured about each shower's inclined axis, the classifiers see the angles too, the
angle distributions are KS-checked like the energies, and the scores are broken down by theta
(0-10, 10-20, 20-30, 30-40 deg). --floor-halves takes the floor from two halves of --floor-reference.

Writes DIR/scores.json, DIR/*.png and DIR/report.html (with --impact all: DIR/MODE/ for each
mode and a side-by-side DIR/report.html and DIR/scores.json). Exit status: 0 when every model
passes, 1 when one fails (--no-fail-exit: 0), 2 on bad input.

examples:
  caloclouds generate --energies-from g4_photons_val_uniform.h5 -o cm.h5
  caloclouds evaluate --reference g4_photons_val_uniform.h5 --generated cm.h5 --out eval/
  caloclouds evaluate --reference g4_photons_val_uniform.h5 --floor-reference g4_photons_train2.h5 \\
      --generated cm.h5 --generated edm.h5 --label CM --label EDM --out eval/ --max-showers 1000
  caloclouds evaluate --reference g4_photons_val_uniform.h5 --generated cm.h5 --geometry hex:5.0 --out eval_hex/
  caloclouds evaluate --reference g4_photons_val_uniform.h5 --generated cm.h5 --impact all --out eval_all/
  caloclouds evaluate --reference g4_photons_angled_val.h5 --generated angled.h5 \\
      --floor-reference g4_photons_angled_train.h5 --floor-halves --out eval_angled/
  caloclouds evaluate --self-test g4_photons_train.h5 --max-showers 1000 --out selftest/
  caloclouds evaluate --reference g4_photons_train.h5 --measure-mip
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from caloclouds.cli.options import add_config_argument, add_geometry_argument
from caloclouds.errors import CaloCloudsError, ConfigError, InputFileError

if TYPE_CHECKING:
    from caloclouds.showers import Showers

__all__ = ["add_arguments", "run"]


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reference", metavar="REF.h5", help="Geant4 reference showers")
    parser.add_argument(
        "--generated",
        action="append",
        default=[],
        metavar="GEN.{h5,root}",
        help="generated showers (repeat to compare several models)",
    )
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="NAME",
        help="name of each --generated file, in order (default: the file name)",
    )
    parser.add_argument(
        "--floor-reference",
        metavar="G4B.h5",
        help="an independent Geant4 file for the floor (default: two halves of the reference, "
        "with every model scored on a half)",
    )
    parser.add_argument(
        "--floor-halves",
        action="store_true",
        help="with --floor-reference: the floor is two disjoint halves of that file (e.g. "
        "g4_photons_angled_train.h5), not the reference against it",
    )
    parser.add_argument("--out", metavar="DIR", help="output folder for scores.json, PNGs, report.html")
    parser.add_argument(
        "--max-showers",
        type=_positive_int,
        metavar="N",
        help="use only the first N showers of every file (--self-test: N per sample)",
    )
    add_config_argument(parser, "run config whose 'evaluation' section is used (default: built-in defaults)")
    add_geometry_argument(
        parser,
        help="cells of the evaluation: ild (default, or the config's evaluation.geometry), hgcal, "
        "hex:PITCH_MM, ild-real, square:PITCH_MM or a geometry .npz file",
    )
    parser.add_argument(
        "--impact",
        choices=("random", "corner", "centre", "all"),
        default="random",
        help="where each shower's axis hits the cells: random (uniform within a cell, one position per "
        "shower from the evaluation seed; default), corner (x = y = 0, four ILD cells meet; a hexagon "
        "vertex), centre (a cell centre), or all three side by side",
    )
    parser.add_argument("--reference-label", default="Geant4", metavar="NAME", help="name of the reference")
    parser.add_argument(
        "--allow-spectrum-mismatch",
        action="store_true",
        help="score samples whose incident-energy spectrum differs from the reference's (KS p < 1e-3)",
    )
    parser.add_argument(
        "--max-ratio",
        type=_positive_float,
        default=1.6,
        metavar="R",
        help="a W1/FPD/KPD score passes when score / Geant4 floor - its error <= R (default 1.6)",
    )
    parser.add_argument(
        "--max-auc",
        type=float,
        default=0.6,
        metavar="AUC",
        help="a classifier passes when its AUC - error <= AUC (default 0.6)",
    )
    parser.add_argument(
        "--max-auc-low-level",
        type=float,
        default=None,
        metavar="AUC",
        help="the same limit for the low-level classifier (default: --max-auc)",
    )
    parser.add_argument(
        "--no-fail-exit",
        action="store_true",
        help="exit 0 even when a model fails (for exploration; default: exit 1 on a FAIL verdict)",
    )
    parser.add_argument(
        "--no-low-level",
        action="store_true",
        help="skip the low-level (per-cell) classifier (about 2 min per comparison of 1000 vs 1000)",
    )
    parser.add_argument(
        "--low-level-epochs",
        type=_positive_int,
        metavar="E",
        help="epochs per fold of the low-level classifier (default 12)",
    )
    parser.add_argument(
        "--voxel-mesh",
        metavar="ds2|ds1|MESH.yaml",
        help="also score the FPD/KPD of CaloChallenge high-level features with every sample "
        "voxelised onto this mesh (point-cloud vs voxel models)",
    )
    parser.add_argument("--no-plots", action="store_true", help="write scores.json and report.html only")
    parser.add_argument(
        "--self-test",
        metavar="REF.h5",
        help="perturb Geant4 showers of REF.h5 (energy scale, radial widening, depth shift, core "
        "widened by 0.5 mm) and print how strongly each score reacts, with the Geant4 floor (exit 0)",
    )
    parser.add_argument(
        "--perturbation",
        action="append",
        default=[],
        metavar="KIND:AMOUNT",
        help="with --self-test: a distortion to score (repeatable), e.g. radial:0.05, energy:0.02, "
        "depth:0.3, core:0.5 (mm), none:0 (default: none, energy 2 %%, radial 2 %% and 5 %%, depth 0.3 "
        "layers, core 0.5 mm)",
    )
    parser.add_argument(
        "--measure-mip",
        action="store_true",
        help="only measure the MIP MPV of the reference's cells (no threshold) and print it",
    )


def _read(path: str, max_showers: int | None) -> Showers:
    """All showers of a file of any supported format, or its first ``max_showers``."""
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


def _options(args: argparse.Namespace, impact: str) -> Any:
    from caloclouds.evaluation import LowLevelConfig, ScoringOptions, Thresholds

    try:
        thresholds = Thresholds(
            max_ratio=args.max_ratio, max_auc=args.max_auc, max_auc_low_level=args.max_auc_low_level
        )
    except ValueError as exc:
        raise ConfigError(f"--max-ratio/--max-auc/--max-auc-low-level: {exc}") from None
    low_level = None
    if not args.no_low_level:
        low_level = LowLevelConfig()
        if args.low_level_epochs:
            low_level = replace(low_level, epochs=args.low_level_epochs)
    return ScoringOptions(
        thresholds=thresholds,
        low_level=low_level,
        allow_spectrum_mismatch=args.allow_spectrum_mismatch,
        impact=impact,
    )


def _modes(args: argparse.Namespace) -> tuple[str, ...]:
    from caloclouds.evaluation.impact import IMPACT_MODES

    return IMPACT_MODES if args.impact == "all" else (args.impact,)


def run(args: argparse.Namespace) -> int:
    from caloclouds.config import DEFAULT_EVALUATION, ILD_LIKE_DETECTOR, load_config

    run_config = load_config(args.config) if args.config else None
    config = run_config.evaluation if run_config else DEFAULT_EVALUATION
    detector = run_config.detector if run_config else ILD_LIKE_DETECTOR  # layers, cell pitch, MIP, threshold
    if args.voxel_mesh:
        from caloclouds.voxel.mesh import get_mesh

        get_mesh(args.voxel_mesh)  # a bad mesh fails here, before any projection
        config = replace(config, voxel_mesh=args.voxel_mesh)
    if args.geometry:
        import projection

        projection.get_geometry(args.geometry, detector=detector)  # a bad geometry fails here, before reading
        config = replace(config, geometry=args.geometry)
    if args.self_test:
        if args.reference or args.generated or args.measure_mip:
            raise ConfigError("--self-test REF.h5 takes no --reference, --generated or --measure-mip")
        return _self_test(args, config, detector)
    if not args.reference:
        raise ConfigError("give --reference REF.h5 (or --self-test REF.h5)")
    if args.measure_mip:
        return _measure_mip(args, config, detector)
    if not args.generated:
        raise ConfigError("give at least one --generated file (or --measure-mip)")
    if not args.out:
        raise ConfigError("--out DIR is required")
    if args.floor_halves and not args.floor_reference:
        raise ConfigError("--floor-halves needs --floor-reference G4.h5 (the floor is two halves of it)")
    if args.label and len(args.label) != len(args.generated):
        raise ConfigError(f"got {len(args.label)} --label for {len(args.generated)} --generated files")
    labels = args.label or [Path(p).stem for p in args.generated]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"labels must be distinct, got {labels}; name them with --label")
    modes = _modes(args)
    _options(args, modes[0])  # bad limits fail before any reading

    from caloclouds.evaluation import FLOOR_LABEL, SpectrumMismatchError, evaluate
    from caloclouds.evaluation.report import format_table, write_impact_report

    start = time.perf_counter()
    reference = _read(args.reference, args.max_showers)
    floor_reference = _read(args.floor_reference, args.max_showers) if args.floor_reference else None
    generated = {label: _read(path, args.max_showers) for label, path in zip(labels, args.generated)}
    paths = {**dict(zip(labels, args.generated)), FLOOR_LABEL: args.floor_reference}
    out = Path(args.out)
    results = {}
    for mode in modes:
        if len(modes) > 1:
            print(f"impact {mode}:", flush=True)
        try:
            results[mode] = evaluate(
                reference,
                generated,
                config=config,
                detector=detector,
                options=_options(args, mode),
                floor_reference=floor_reference,
                out_dir=out / mode if len(modes) > 1 else out,
                reference_label=args.reference_label,
                plots=not args.no_plots,
                sources={args.reference_label: str(args.reference), **{k: str(v) for k, v in paths.items() if v}},
                progress=lambda msg: print(f"  {msg}", flush=True),
                floor_halves=args.floor_halves,
            )
        except SpectrumMismatchError as exc:
            raise InputFileError(paths[exc.label], f"{exc} (reference {args.reference})") from None
        except ValueError as exc:
            if isinstance(exc, CaloCloudsError):
                raise
            raise ConfigError(str(exc)) from None
        print(format_table(results[mode]))
    if len(modes) > 1:
        write_impact_report(out, results)
    print(f"wrote {out / 'report.html'} ({time.perf_counter() - start:.1f} s)")
    failed = sorted(
        {
            label
            for r in results.values()
            for label, s in r["samples"].items()
            if s.get("verdict", {}).get("pass") is False
        }
    )
    if failed and not args.no_fail_exit:
        print(f"FAIL: {', '.join(failed)} (exit 1; --no-fail-exit to exit 0)")
        return 1
    return 0


def _perturbations(specs: list[str]) -> Any:
    """``KIND:AMOUNT`` strings -> perturbations (none given: the default set)."""
    from caloclouds.evaluation.selftest import DEFAULT_PERTURBATIONS, KINDS, Perturbation

    if not specs:
        return DEFAULT_PERTURBATIONS
    out = []
    for spec in specs:
        kind, _, amount = spec.partition(":")
        if kind not in KINDS:
            raise ConfigError(f"--perturbation {spec!r}: kind must be one of {', '.join(KINDS)}")
        try:
            out.append(Perturbation(kind, float(amount or 0.0)))  # type: ignore[arg-type]
        except ValueError:
            raise ConfigError(f"--perturbation {spec!r}: AMOUNT must be a number, e.g. radial:0.05") from None
    return tuple(out)


def _self_test(args: argparse.Namespace, config: Any, detector: Any) -> int:
    from caloclouds.evaluation.report import text_table
    from caloclouds.evaluation.selftest import self_test, self_test_rows

    start = time.perf_counter()
    showers = _read(args.self_test, None)
    n = len(showers) // 3 if args.max_showers is None else args.max_showers
    if 3 * n > len(showers):
        raise InputFileError(args.self_test, f"holds {len(showers)} showers; the self-test needs 3 x {n}")
    modes = _modes(args)
    perturbations = _perturbations(args.perturbation)
    out = Path(args.out) if args.out else None
    for mode in modes:
        try:
            result = self_test(
                showers,
                n=n,
                config=config,
                detector=detector,
                options=_options(args, mode),
                perturbations=perturbations,
                out_dir=None if out is None else (out / mode if len(modes) > 1 else out),
                plots=not args.no_plots,
                progress=lambda msg: print(f"  {msg}", flush=True),
            )
        except ValueError as exc:
            if isinstance(exc, CaloCloudsError):
                raise
            raise InputFileError(args.self_test, str(exc)) from None
        print(
            f"self-test on {args.self_test}, impact {mode}: 3 disjoint samples of {n} showers "
            "(A reference, B floor, C distorted)"
        )
        print(text_table(*self_test_rows(result)))
    where = f"; wrote {out}" if out else ""
    print(f"({time.perf_counter() - start:.1f} s{where})")
    return 0


def _measure_mip(args: argparse.Namespace, config: object, detector: Any) -> int:
    import projection

    from caloclouds.evaluation.mip import measure_mip

    showers = _read(args.reference, args.max_showers)
    geometry = projection.get_geometry(getattr(config, "geometry"), detector=detector)
    hits = projection.project(showers, geometry, n_shower_layers=detector.n_layers)
    fit = measure_mip(hits)
    print(
        f"MIP MPV {fit.mpv_mev:.4f} +- {fit.mpv_error_mev:.4f} MeV (Moyal width {fit.width_mev:.4f} MeV, "
        f"fullest bin {fit.peak_bin_mev:.4f} MeV, {fit.n_cells} cells of layers 0-2 in the fit window, "
        f"{len(showers)} showers)"
    )
    return 0
