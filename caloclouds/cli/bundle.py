"""Assemble a model bundle from training runs: copy, validate, calibrate, record provenance.

Copies the Shower Flow (a train-flow run's model.pt, or best.pt in a run of an earlier version),
the consistency model (a distill run's model.pt) and optionally the EDM teacher into a new folder,
checks that every part loads and that they describe the same detector, fits the radial, N and
point-energy calibrations on Geant4 showers when --reference is given, and writes bundle.json with the
provenance: this command, the training steps and SHA-256 of every checkpoint, the train-flow
command, the data files' SHA-256 and the date. The folder is built under a temporary name and
renamed when complete. It never writes into the installed package unless --into-package is given.

Example:
  caloclouds bundle --flow runs/flow --teacher runs/teacher --cm runs/cm -o runs/bundle \\
      --data ../shared/data/g4_photons_train.h5 --reference ../shared/data/g4_photons_train.h5
  caloclouds generate --model runs/bundle --energies 50 -n 100 -o x.h5
"""

from __future__ import annotations

import argparse

from caloclouds.cli.options import add_config_argument, add_overwrite_argument, add_seed_argument

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--flow",
        required=True,
        metavar="RUN",
        help="Shower Flow run folder (its model.pt; best.pt in older runs) or checkpoint",
    )
    parser.add_argument(
        "--cm", required=True, metavar="RUN", help="distillation run folder (its model.pt) or checkpoint"
    )
    parser.add_argument(
        "--teacher", metavar="RUN", help="EDM teacher run folder or checkpoint (optional; for --model-part teacher)"
    )
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="new bundle folder")
    parser.add_argument(
        "--data", nargs="+", default=[], metavar="FILE", help="training data files (their SHA-256 are recorded)"
    )
    parser.add_argument(
        "--reference",
        metavar="TRAIN.h5",
        help="Geant4 training showers to fit the radial, N and point-energy "
        "calibrations on, as caloclouds calibrate does (default: none); not the showers you validate with",
    )
    parser.add_argument(
        "--axis-reference",
        metavar="ANGLED.h5",
        help="angled Geant4 training showers to fit a direction-aware bundle's axis calibration on "
        "(each layer's centre leans as Geant4's; default: none, the axis through the layers' middles)",
    )
    add_seed_argument(parser, "seed of the calibration's generated showers")
    add_config_argument(
        parser,
        "take the generation settings (generation section: cog, core sharing) from this run config "
        "instead of the CM's; the calibrations are fitted with them",
    )
    add_overwrite_argument(parser, "the bundle folder")
    parser.add_argument(
        "--into-package", action="store_true", help="allow -o inside the installed package (replaces a shipped model)"
    )


def _command(args: argparse.Namespace) -> list[str]:
    """The command line of this run, rebuilt from the parsed options (for the provenance)."""
    words = ["caloclouds", "bundle", "--flow", args.flow, "--cm", args.cm]
    words += ["--teacher", args.teacher] if args.teacher else []
    words += ["-o", args.output]
    words += ["--data", *args.data] if args.data else []
    words += ["--reference", args.reference, "--seed", str(args.seed)] if args.reference else []
    words += ["--axis-reference", args.axis_reference] if args.axis_reference else []
    words += ["--config", args.config] if args.config else []
    return words


def run(args: argparse.Namespace) -> int:
    import shlex
    from pathlib import Path

    import torch

    from caloclouds.generation.assemble import assemble_bundle
    from flows.checkpoint import resolve_flow_file

    torch.set_num_threads(1)
    generation = None
    if args.config:
        from caloclouds.config import load_config

        generation = load_config(args.config).generation
    bundle, report = assemble_bundle(
        args.output,
        flow=resolve_flow_file(args.flow) if Path(args.flow).is_dir() else args.flow,
        cm=args.cm,
        teacher=args.teacher,
        data_files=tuple(args.data),
        reference=args.reference,
        axis_reference=args.axis_reference,
        command=shlex.join(_command(args)),
        into_package=args.into_package,
        overwrite=args.overwrite,
        seed=args.seed,
        generation=generation,
    )
    if report is not None:
        print(report.text())
    parts = ", ".join(f"{p} (step {v['training_step']})" for p, v in bundle.manifest["provenance"]["parts"].items())
    print(
        f"wrote bundle {bundle.path}: {parts}; radial, N and point-energy calibrations {'fitted' if report else 'none (identity)'}"
    )
    return 0
