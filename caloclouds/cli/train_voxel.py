"""Train the voxel diffusion model (CaloDiffusion-style U-Net, EDM) or distil it to a consistency model.

The training showers (our HDF5, or a CaloChallenge file on the same mesh) are voxelised on the
configured mesh and the U-Net is trained with the package's EDM loss, in the run folder every
training verb writes: config.yaml, checkpoint.pt (full training state), model.pt (the EMA weights,
the file to ship), metrics.csv (with the validation loss) and curve.png, every `eval_every` steps
and when the run stops (SIGTERM, Ctrl-C or --time-budget). --resume continues a stopped or killed
run exactly. With --distill the teacher (a run folder or checkpoint) is distilled to a few-step
consistency model instead.

Examples:
  caloclouds train-voxel ../shared/data/g4_photons_train.h5 --out runs/voxel_edm --steps 2000
  caloclouds train-voxel ../shared/data/g4_photons_train.h5 --distill runs/voxel_edm --out runs/voxel_cm --steps 500
  caloclouds train-voxel TRAIN.h5 --config voxel.yaml --mesh ds1 --out runs/voxel_ds1 --dry-run

The config is a YAML file with the keys of caloclouds.voxel.config.VoxelConfig (top level or
under `voxel:`); options given here override it. `-o MODEL.pt` (deprecated) trains in the run folder
MODEL (the path without .pt) and copies its model.pt to MODEL.pt at every checkpoint.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from caloclouds.cli.options import add_config_argument, add_run_control_arguments, add_seed_argument

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("train", metavar="TRAIN.h5", help="training showers")
    parser.add_argument("--out", type=Path, metavar="DIR", help="run folder")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="MODEL.pt",
        help=argparse.SUPPRESS,  # deprecated: run folder MODEL (without .pt), its model.pt also copied to MODEL.pt
    )
    add_config_argument(parser, "voxel config (default: built-in defaults)")
    parser.add_argument("--mesh", metavar="MESH", help="override the config's mesh: ds2, ds1 or a YAML/JSON file")
    parser.add_argument("--steps", type=int, metavar="N", help="optimiser steps (default from the config)")
    parser.add_argument("--batch-size", type=int, metavar="B", help="override the config's batch size")
    parser.add_argument("--max-showers", type=int, metavar="N", help="use only the first N training showers")
    parser.add_argument("--distill", metavar="TEACHER", help="distil this teacher (run folder or .pt) into a CM")
    add_seed_argument(parser)
    add_run_control_arguments(parser)
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and stop")


def _run_dir(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """The run folder and the deprecated -o file (or None)."""
    from caloclouds.errors import ConfigError

    if (args.out is None) == (args.output is None):
        raise ConfigError("give the run folder as --out DIR (or the deprecated -o MODEL.pt), not both")
    if args.out is not None:
        return args.out, None
    if args.output.suffix != ".pt":
        raise ConfigError(f"-o {args.output}: the deprecated -o takes a .pt file; use --out DIR for a run folder")
    return args.output.with_suffix(""), args.output


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import sys

    import yaml

    from caloclouds.cli.options import run_control_options
    from caloclouds.cli.train_diffusion import print_result
    from caloclouds.errors import CaloCloudsError
    from caloclouds.voxel.config import VoxelConfig, load_voxel_config, voxel_config_to_dict
    from caloclouds.voxel.training import train_voxel_from_file

    for name in ("steps", "batch_size", "max_showers"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CaloCloudsError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    out, export = _run_dir(args)
    controls = run_control_options(args)  # a bad --time-budget fails before any work
    config = load_voxel_config(args.config) if args.config else VoxelConfig()
    overrides = {k: v for k, v in (("mesh", args.mesh), ("batch_size", args.batch_size)) if v is not None}
    config = dataclasses.replace(config, **overrides)
    if args.dry_run:
        print(yaml.safe_dump({"voxel": voxel_config_to_dict(config)}, sort_keys=False), end="")
        return 0
    if export is not None:
        print(f"train-voxel: -o is deprecated; training in the run folder {out} (use --out)", file=sys.stderr)
    result = train_voxel_from_file(
        args.train,
        config,
        out=out,
        steps=args.steps,
        max_showers=args.max_showers,
        distill_from=args.distill,
        seed=args.seed,
        export=export,
        **controls,
    )
    if export is not None:
        print(f"train-voxel: model.pt copied to {export}")
    return print_result("train-voxel", result, getattr(args, "command", None), unit="showers")
