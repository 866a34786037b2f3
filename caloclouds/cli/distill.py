"""Distil an EDM teacher into a one-step consistency model, or train one from its weights.

The student and its EMA start from the teacher's EMA weights. With --objective distillation (the
default; consistency distillation) each step takes one teacher Heun step between adjacent Karras
levels (N = distillation.num_steps) and the EMA is the target. With --objective training (improved
consistency training, Song & Dhariwal 2023) the teacher only initialises the student: both levels
are noised with the same noise, the target is the student itself without gradients, the loss is
pseudo-Huber, the number of levels doubles from 11 to 1281 over --steps and the level is drawn
log-normally. Writes OUT/checkpoint.pt (for --resume, with the same --objective), OUT/model.pt
(the EMA network: the file to ship) and OUT/config.yaml. Runs unchanged under torchrun.

example:
  caloclouds distill --teacher runs/teacher --data ../shared/data/g4_photons_train.h5 \\
      --out runs/cm --steps 3000 --batch-size 16
  caloclouds distill --objective training --teacher runs/teacher --data ../shared/data/g4_photons_train.h5 \\
      --out runs/ct --steps 3000 --batch-size 16
"""

from __future__ import annotations

import argparse

from caloclouds.cli.options import add_config_argument, add_training_arguments, training_options
from caloclouds.cli.train_diffusion import print_result

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher", required=True, metavar="DIR|FILE", help="EDM teacher run folder or checkpoint")
    add_config_argument(parser, "take the distillation section from this config (default: the teacher's)")
    parser.add_argument(
        "--objective",
        choices=("distillation", "training"),
        default="distillation",
        help="distillation: consistency distillation with teacher ODE steps (default); training: consistency "
        "training (no teacher steps; the teacher only initialises the student)",
    )
    add_training_arguments(parser)


def run(args: argparse.Namespace) -> int:

    from caloclouds.config import load_config
    from caloclouds.diffusion.training import distill

    config = load_config(args.config) if args.config else None
    result = distill(
        args.teacher, args.data, args.out, config=config, objective=args.objective, **training_options(args)
    )
    return print_result("distill", result, getattr(args, "command", None))
