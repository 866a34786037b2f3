"""Fit the N-points calibration of a model bundle on Geant4 showers and store it in the bundle.

Projects the reference showers and showers generated at the same energies (uncalibrated) onto the
ILD cells with the evaluation threshold, fits the cubic N_cells(N_points) on Geant4 and on the
model (the model then generates P_model^-1(P_g4(N)) points), and writes them to the bundle's bundle.json. Prints the fit quality
and the mean number of cells before and after.

Example:
  caloclouds calibrate --model caloclouds/models/default --reference ../shared/data/g4_photons_val_uniform.h5
"""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="model bundle folder (or 'default')")
    parser.add_argument("--reference", required=True, metavar="VAL.h5", help="Geant4 showers (our HDF5 schema)")
    parser.add_argument("--max-showers", type=int, default=2000, metavar="N", help="use at most N reference showers (default 2000)")
    parser.add_argument("--sampler", choices=["cm", "edm"], default="cm")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dry-run", action="store_true", help="fit and print, but do not write the bundle")


def run(args: argparse.Namespace) -> int:
    from caloclouds.generation.bundle import load_bundle, write_bundle_manifest
    from caloclouds.generation.calibrate import fit_point_count_calibration
    from caloclouds.generation.calibration import PointCountCalibration
    from caloclouds.io import ShowerFile

    bundle = load_bundle(args.model)
    bundle = bundle.with_calibration(PointCountCalibration())
    with ShowerFile(args.reference) as f:
        reference = f.read(0, min(len(f), args.max_showers))
    report = fit_point_count_calibration(bundle, reference, sampler=args.sampler, device=args.device, seed=args.seed)
    print(report.text())
    if not args.dry_run:
        manifest = write_bundle_manifest(
            bundle.path, bundle.config, calibration=report.calibration,
            provenance={**bundle.manifest.get("provenance", {}), "calibration_reference": str(args.reference)},
        )
        print(f"stored in {manifest}")
    return 0
