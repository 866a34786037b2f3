"""Train the Shower Flow on a shower file.

The features of the training (and validation) file are computed once, chunk by chunk, and cached
in the run folder, which is laid out as every training verb's: ``config.yaml``, ``checkpoint.pt``
(the full training state, written atomically every ``flow.eval_every`` steps and when the run is
stopped by SIGTERM, Ctrl-C or --time-budget), ``model.pt`` (the lowest validation loss: the file
``bundle`` takes), ``metrics.csv`` and ``curve.png`` (train and validation loss). ``--resume``
continues a stopped or killed run from ``checkpoint.pt`` exactly as if it had not stopped.

example:
  caloclouds train-flow --config configs/ild_photons.yaml --data train.h5 --val val.h5 --out runs/flow
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from caloclouds.cli.options import (
    add_config_argument,
    add_device_argument,
    add_run_control_arguments,
    add_seed_argument,
)

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser, "run config (its detector and flow sections); default: built-in defaults")
    parser.add_argument(
        "--data",
        type=Path,
        nargs="+",
        required=True,
        metavar="H5",
        help="training shower file(s); normal-incidence and angled files can be mixed (a file without "
        "theta_deg is normal incidence; angled files need theta_deg in flow.condition_names)",
    )
    parser.add_argument("--val", type=Path, nargs="+", default=None, metavar="H5", help="validation shower file(s)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="run folder")
    parser.add_argument(
        "--steps", type=int, default=None, metavar="N", help="total optimiser steps (default: flow.steps)"
    )
    add_device_argument(parser)
    add_seed_argument(parser, "seed of weights, batches and augmentation")
    add_run_control_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import torch

    from caloclouds.cli.options import run_control_options
    from caloclouds.config import RunConfig, load_config
    from caloclouds.errors import ConfigError
    from caloclouds.runcontrol import format_duration
    from caloclouds.training.rundir import record_command
    from flows.training import train_shower_flow

    if args.steps is not None and args.steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {args.steps}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {args.device}: CUDA is not available on this machine")
    config = load_config(args.config) if args.config is not None else RunConfig()
    controls = run_control_options(args)
    result = train_shower_flow(
        config,
        data=args.data[0] if len(args.data) == 1 else args.data,
        val=args.val[0] if args.val and len(args.val) == 1 else args.val,
        out=args.out,
        steps=args.steps,
        device=args.device,
        seed=args.seed,
        **controls,
    )
    print(
        f"trained to step {result['step']}; best validation loss {result['best_val_loss']:.4f}; "
        f"{format_duration(result['elapsed_s'])} of training in all"
    )
    print(f"best checkpoint: {result['best']}\nlast checkpoint: {result['last']}\nmetrics: {result['log']}")
    if getattr(args, "command", None):
        record_command(args.out, args.command, result["step"])
    if result["stopped"]:
        print(
            f"train-flow: stopped by {result['stopped']} after a checkpoint at step {result['step']}; "
            "continue with --resume"
        )
    return 128 + int(getattr(signal, result["stopped"])) if result["stopped"].startswith("SIG") else 0
