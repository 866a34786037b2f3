"""Train the PointWise Net EDM teacher on a shower file.

Writes OUT/checkpoint.pt (full training state, for --resume), OUT/model.pt (the EMA network plus
its preprocessing and config; the file to ship) and OUT/config.yaml. Runs unchanged under
`torchrun --nproc_per_node K` (DistributedDataParallel, data sharded per rank, rank 0 writes).

example:
  caloclouds train-diffusion --config configs/ild_photons_per_layer.yaml \\
      --data ../shared/data/g4_photons_train.h5 ../shared/data/g4_photons_train2.h5 \\
      --val ../shared/data/g4_photons_val_uniform.h5 --out runs/teacher --time-budget 2h30m
  (later, the same command with --resume continues it exactly)
"""

from __future__ import annotations

import argparse

from caloclouds.cli.options import add_config_argument, add_training_arguments, training_options

__all__ = ["add_arguments", "print_result", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser, "run config (default: built-in defaults)")
    add_training_arguments(parser)


def print_result(verb: str, result: object, command: str | None = None, *, unit: str = "points") -> int:
    """Print what the run did (throughput in ``unit`` per second) and add ``command`` to the run's
    commands.txt; the exit status: 0, or 128 + the signal number when one stopped it."""
    import signal

    from caloclouds.runcontrol import format_duration
    from caloclouds.training.rundir import record_command

    r = result
    print(
        f"{verb}: step {r.step} in {r.out_dir} ({r.steps_run} steps in {r.seconds:.1f} s, "
        f"{r.iterations_per_s:.2f} it/s, {r.points_per_s:.3g} {unit}/s, last loss {r.last_loss:.4f}; "
        f"{format_duration(r.elapsed_s)} of training in all)"
    )
    if command:
        record_command(r.out_dir, command, r.step)
    if r.stopped:
        print(f"{verb}: stopped by {r.stopped} after a checkpoint at step {r.step}; continue with --resume")
    return 128 + int(getattr(signal, r.stopped)) if r.stopped.startswith("SIG") else 0


def run(args: argparse.Namespace) -> int:

    from caloclouds.config import RunConfig, load_config
    from caloclouds.diffusion.training import train_diffusion

    config = load_config(args.config) if args.config else RunConfig()
    result = train_diffusion(config, args.data, args.out, **training_options(args))
    return print_result("train-diffusion", result, getattr(args, "command", None))
