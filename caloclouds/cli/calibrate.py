"""Fit the radial, N-points and point-energy calibrations of a model bundle on Geant4 showers and store them in the bundle.

1. Radial: the energy-weighted radial quantiles of every layer, in 5 bins of incident energy, of the
   reference and of the model at the same energies; the model's points are then moved along their
   direction from the axis so that each layer's radial profile is Geant4's (--no-radial: skipped).
2. N: projects the reference showers and showers generated at the same energies (uncalibrated,
   radial calibration applied) onto the ILD cells with the evaluation threshold, fits the cubic
   N_cells(N_points) on Geant4 and on the model (the model then generates P_model^-1(P_g4(N))
   points). Prints the fit quality and the mean number of cells before and after.
3. Point energies: both samples on the ILD cells without threshold, each shower at its own impact
   position (uniform in a cell); each point's energy is mapped so that the model has as many cells
   per shower above every energy as Geant4 (the layers' energies are kept). Prints the cells per
   shower by cell energy before and after (--no-energy-map: skipped). The radial calibration is
   then fitted again with the map and the N calibration applied.

All are written to the bundle's bundle.json. Fit them on training showers, not on the showers you
validate with.

Example:
  caloclouds calibrate --model caloclouds/models/default --reference ../shared/data/g4_photons_train.h5
"""

from __future__ import annotations

import argparse

from caloclouds.cli.options import add_device_argument, add_seed_argument

__all__ = ["add_arguments", "run", "fit_problems", "MIN_SHOWERS", "MIN_R2", "MAX_AFTER_PERCENT"]

MIN_SHOWERS = 500  # fewer reference showers do not constrain a cubic over 10-90 GeV
MIN_R2 = 0.9  # both cubic fits N_cells(N_points) must explain this much of the variance
MAX_AFTER_PERCENT = 5.0  # calibrated mean cells must be within this of Geant4's


def fit_problems(report: object) -> list[str]:
    """The quality checks a fit fails (empty if it passes)."""
    problems = []
    for name, r2 in (("Geant4", report.r2_g4), ("model", report.r2_model)):  # type: ignore[attr-defined]
        if not r2 >= MIN_R2:
            problems.append(f"{name} fit R^2 = {r2:.3f} < {MIN_R2}")
    g4, after = report.mean_cells_g4, report.mean_cells_after  # type: ignore[attr-defined]
    off = 100.0 * (after - g4) / max(g4, 1e-300)
    if not abs(off) <= MAX_AFTER_PERCENT:
        problems.append(f"calibrated mean cells {after:.1f} are {off:+.1f} % from Geant4's {g4:.1f}")
    return problems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="model bundle folder (or 'default')")
    parser.add_argument(
        "--reference",
        required=True,
        metavar="TRAIN.h5",
        help="Geant4 TRAINING showers (our HDF5 schema), e.g. g4_photons_train.h5; never the file you evaluate on",
    )
    parser.add_argument(
        "--max-showers",
        type=int,
        default=2000,
        metavar="N",
        help=f"use at most N reference showers (default 2000, at least {MIN_SHOWERS})",
    )
    parser.add_argument(
        "--model-part",
        choices=["cm", "teacher"],
        default="cm",
        help="the weights whose showers are calibrated: cm, the consistency model (default), or teacher",
    )
    parser.add_argument("--sampler", choices=["cm", "edm"], help=argparse.SUPPRESS)  # deprecated: apply_deprecated
    add_device_argument(parser)
    add_seed_argument(parser, "seed of the generated showers")
    parser.add_argument(
        "--no-radial",
        action="store_true",
        help="fit the N calibration only (no radial calibration: the network's radial profile is kept)",
    )
    parser.add_argument(
        "--no-energy-map",
        action="store_true",
        help="no point-energy calibration (the network's point energies are kept, only scaled per layer)",
    )
    parser.add_argument("--dry-run", action="store_true", help="fit and print, but do not write the bundle")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the bundle's existing calibration (refused otherwise)"
    )
    parser.add_argument(
        "--into-package",
        action="store_true",
        help="allow re-calibrating a model shipped inside the package (caloclouds/models/...)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help=f"store the fit even if it fails the quality checks (R^2 >= {MIN_R2}, mean cells after "
        f"within {MAX_AFTER_PERCENT:g} %% of Geant4)",
    )


def run(args: argparse.Namespace) -> int:
    from caloclouds.errors import CaloCloudsError
    from caloclouds.generation.bundle import (
        file_sha256,
        inside_package,
        load_bundle,
        relative_path,
        write_bundle_manifest,
    )
    from caloclouds.generation.calibrate import fit_calibrations
    from caloclouds.generation.calibration import PointCountCalibration, RadialCalibration
    from caloclouds.io import ShowerFile

    if args.max_showers < 1:
        raise CaloCloudsError(f"--max-showers must be >= 1, got {args.max_showers}")
    if args.max_showers < MIN_SHOWERS and not args.force:
        raise CaloCloudsError(
            f"--max-showers must be >= {MIN_SHOWERS} (a cubic fit over the energy range needs them), got {args.max_showers}"
        )
    if not 0 <= args.seed < 2**63:
        raise CaloCloudsError(f"--seed must lie in 0 to 2^63-1, got {args.seed}")
    bundle = load_bundle(args.model)
    if not args.dry_run:  # refuse before the fit, not after minutes of work
        if inside_package(bundle.path) and not args.into_package:
            raise CaloCloudsError(
                f"--model {args.model} is the model shipped in the package ({bundle.path}); pass --into-package "
                "to re-calibrate it, or copy it and calibrate the copy"
            )
        calibrated = not (bundle.calibration.is_identity and bundle.radial.is_identity)
        if (calibrated or not bundle.energy_calibration.is_identity) and not args.overwrite:
            raise CaloCloudsError(f"{bundle.path} is calibrated already; pass --overwrite to replace its calibration")
    bundle = bundle.with_calibration(PointCountCalibration(), RadialCalibration())
    with ShowerFile(args.reference) as f:
        reference = f.read(0, min(len(f), args.max_showers))  # checks the values
    if len(reference) < MIN_SHOWERS and not args.force:
        raise CaloCloudsError(
            f"--reference {args.reference} holds {len(reference)} showers; the fit needs at least {MIN_SHOWERS} (or --force)"
        )
    report = fit_calibrations(
        bundle,
        reference,
        model_part=args.model_part,
        device=args.device,
        seed=args.seed,
        radial=not args.no_radial,
        energy=not args.no_energy_map,
    )
    print(report.text())
    problems = fit_problems(report)
    if problems and not args.dry_run and not args.force:
        raise CaloCloudsError(
            f"the fit was not stored: {'; '.join(problems)} (more --max-showers, or --force to store it anyway)"
        )
    if not args.dry_run:
        manifest = write_bundle_manifest(
            bundle.path,
            bundle.config,
            calibration=report.calibration,
            radial=report.radial,
            energy=report.energy_calibration,
            # a direction-aware bundle keeps its axis calibration unless the reference refitted it
            axis_depth_mm=report.axis_depth_mm or bundle.manifest.get("axis_depth_mm"),
            provenance={
                **bundle.manifest.get("provenance", {}),
                "calibration_reference": {
                    "file": relative_path(args.reference),
                    "sha256": file_sha256(args.reference),
                    "showers": len(reference),
                },
            },  # as caloclouds bundle records it
        )
        print(f"stored in {manifest}")
    return 0
