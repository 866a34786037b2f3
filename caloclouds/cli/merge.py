"""Merge the shards of a production folder (caloclouds produce) into one shower file.

Example:
  caloclouds merge prod/ -o prod_all.h5
  caloclouds merge prod/ -o prod_all.root

The shards are read in order, each checked against the SHA-256 in prod/production.json, and written
with the writer of caloclouds generate (cells included) to a temporary file renamed when complete.
A missing or damaged shard stops the merge before anything is written under the output's name;
an existing output is refused without --overwrite.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, metavar="DIR", help="production folder (holds production.json)")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUT.{h5,root}", help="the merged file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def run(args: argparse.Namespace) -> int:
    import sys

    from tqdm import tqdm

    from caloclouds.production.manifest import read_manifest
    from caloclouds.production.merge import merge_production
    from caloclouds.production.plan import ProductionRequest

    manifest = read_manifest(args.folder)
    total = None
    if manifest is not None:
        request = ProductionRequest.from_dict(manifest["request"])
        total = request.n_showers * request.showers_per_count()
    with tqdm(total=total, unit="shower", disable=not sys.stderr.isatty(), desc="merge") as bar:
        n = merge_production(args.folder, args.output, overwrite=args.overwrite, progress=bar.update)
    print(f"merged {n} showers from {args.folder} into {args.output}")
    return 0
