"""Summarise a shower file: number of showers, incident energy range, points per shower, visible energy,
and the direction of incidence (theta_deg and phi_deg ranges, or normal incidence for a file without them).

Works for every format `caloclouds convert` reads (our .h5 and .root, CaloClouds HDF5, raw steps,
EDM4hep, and the cells files of `caloclouds project`). Files are streamed chunk by chunk (index
included), so memory stays bounded for any file size.

A production folder (caloclouds produce) is summarised as one dataset: its shards' state, the
request and model, then the showers of every complete shard.

Example:
  caloclouds info x.h5
  caloclouds info prod/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="shower file, or a production folder")
    parser.add_argument(
        "--format",
        default="auto",
        choices=["auto", "hdf5", "root", "caloclouds", "steps", "edm4hep", "cells"],
        help="file format (default: detected from the content)",
    )


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from caloclouds.io.formats import FORMATS, count_showers, detect_format
    from caloclouds.io.summary import cell_hit_lines, summarise_file

    if args.file.is_dir():
        from caloclouds.production.merge import production_summary

        with tqdm(unit="shower", disable=not sys.stderr.isatty(), desc="info") as bar:
            lines = production_summary(args.file, progress=bar.update)
        print("\n".join(lines))
        return 0
    fmt = detect_format(args.file) if args.format == "auto" else args.format
    total = count_showers(args.file, format=fmt)
    with tqdm(total=total, unit="shower", disable=not sys.stderr.isatty(), desc="info") as bar:
        summary = summarise_file(args.file, format=fmt, progress=bar.update)
    print(f"file             {args.file} ({FORMATS[fmt]})")
    for line in summary.lines():
        print(line.replace("points   ", "cell hits", 1) if fmt == "cells" and line.startswith("points ") else line)
    if fmt in ("hdf5", "root"):
        for line in cell_hit_lines(args.file):
            print(line)
    return 0
