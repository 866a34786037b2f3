"""Train the voxel diffusion model (CaloDiffusion-style U-Net, EDM) or distil it to a consistency model.

The training showers (our HDF5, or a CaloChallenge file on the same mesh) are voxelised on the
configured mesh, the U-Net is trained with the package's EDM loss, and the EMA weights are written
to the output checkpoint every `eval_every` steps with the validation loss. With --distill the
teacher checkpoint is distilled to a few-step consistency model instead.

Examples:
  caloclouds train-voxel ../shared/data/g4_photons_train.h5 -o voxel_edm.pt --steps 2000
  caloclouds train-voxel ../shared/data/g4_photons_train.h5 --distill voxel_edm.pt -o voxel_cm.pt --steps 500
  caloclouds train-voxel TRAIN.h5 --config voxel.yaml --mesh ds1 -o voxel_ds1.pt --dry-run

The config is a YAML file with the keys of caloclouds.voxel.config.VoxelConfig (top level or
under `voxel:`); options given here override it.
"""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("train", metavar="TRAIN.h5", help="training showers")
    parser.add_argument("-o", "--output", required=True, metavar="MODEL.pt", help="checkpoint to write")
    parser.add_argument("--config", metavar="FILE.yaml", help="voxel config (default: built-in defaults)")
    parser.add_argument("--mesh", metavar="MESH", help="override the config's mesh: ds2, ds1 or a YAML/JSON file")
    parser.add_argument("--steps", type=int, metavar="N", help="optimiser steps (default from the config)")
    parser.add_argument("--batch-size", type=int, metavar="B", help="override the config's batch size")
    parser.add_argument("--max-showers", type=int, metavar="N", help="use only the first N training showers")
    parser.add_argument("--distill", metavar="TEACHER.pt", help="distil this teacher into a consistency model")
    parser.add_argument("--threads", type=int, metavar="T", help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and stop")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import torch
    import yaml

    from caloclouds.errors import CaloCloudsError
    from caloclouds.voxel.config import VoxelConfig, load_voxel_config, voxel_config_to_dict
    from caloclouds.voxel.training import train_voxel_from_file

    for name in ("steps", "batch_size", "max_showers", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CaloCloudsError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    config = load_voxel_config(args.config) if args.config else VoxelConfig()
    overrides = {k: v for k, v in (("mesh", args.mesh), ("batch_size", args.batch_size)) if v is not None}
    config = dataclasses.replace(config, **overrides)
    if args.dry_run:
        print(yaml.safe_dump({"voxel": voxel_config_to_dict(config)}, sort_keys=False), end="")
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    train_voxel_from_file(
        args.train,
        config,
        out=args.output,
        steps=args.steps,
        max_showers=args.max_showers,
        distill_from=args.distill,
        seed=args.seed,
        progress=True,
    )
    print(f"wrote {args.output}")
    return 0
