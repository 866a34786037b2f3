"""Train the PointWise Net EDM teacher on a shower file.

Writes OUT/checkpoint.pt (full training state, for --resume), OUT/model.pt (the EMA network plus
its preprocessing and config; the file to ship) and OUT/config.yaml. Runs unchanged under
`torchrun --nproc_per_node K` (DistributedDataParallel, data sharded per rank, rank 0 writes).

example:
  caloclouds train-diffusion --config configs/ild_photons.yaml \\
      --data ../shared/data/g4_photons_train.h5 --out runs/teacher --steps 8000 --batch-size 16
"""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by train-diffusion and distill."""
    parser.add_argument("--data", required=True, metavar="TRAIN.h5", help="training shower file")
    parser.add_argument("--out", required=True, metavar="DIR", help="run folder (checkpoints, config)")
    parser.add_argument("--steps", type=int, default=None, metavar="N", help="total optimiser steps (default: config)")
    parser.add_argument("--batch-size", type=int, default=None, metavar="B",
                        help="showers per step over all ranks (default: config)")
    parser.add_argument("--lr", type=float, default=None, metavar="LR",
                        help="learning rate (default: config; on --resume it replaces the saved one)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--resume", action="store_true", help="continue OUT/checkpoint.pt")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast of the network")
    parser.add_argument("--compile", action="store_true", help="torch.compile the training step (GPU)")
    parser.add_argument("--threads", type=int, default=None, metavar="T", help="torch CPU threads")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, metavar="CFG.yaml", help="run config (default: built-in defaults)")
    add_common_arguments(parser)


def print_result(verb: str, result: object) -> None:
    r = result
    print(
        f"{verb}: step {r.step} in {r.out_dir} ({r.steps_run} steps in {r.seconds:.1f} s, "
        f"{r.iterations_per_s:.2f} it/s, {r.points_per_s:.3g} points/s, last loss {r.last_loss:.4f})"
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from caloclouds.config import RunConfig, load_config
    from caloclouds.diffusion.training import train_diffusion

    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_config(args.config) if args.config else RunConfig()
    result = train_diffusion(
        config, args.data, args.out, steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr,
        device=args.device,
        seed=args.seed, resume=args.resume, bf16=args.bf16, compile=args.compile, progress=not args.no_progress,
    )
    print_result("train-diffusion", result)
    return 0
