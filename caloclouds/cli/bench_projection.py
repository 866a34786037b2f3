"""Measure projection speed in points per second (numpy on one CPU thread; torch on CUDA if present).

Projects one batch of real showers (the first --showers of the file, repeated if it holds fewer)
in a single call and reports the best of --repeats calls, as wall-clock and as process CPU time.

Example:
  caloclouds bench-projection --in g4_photons_val_uniform.h5 --geometry ild hgcal --showers 1000
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--in", dest="input", required=True, type=Path, metavar="SHOWERS", help="shower file")
    parser.add_argument(
        "--geometry", nargs="+", default=["ild", "hgcal"], metavar="G", help="geometries (default: ild hgcal)"
    )
    parser.add_argument("--showers", type=int, default=1000, metavar="N", help="showers per batch (default 1000)")
    parser.add_argument("--repeats", type=int, default=5, metavar="K", help="timed calls, best kept (default 5)")
    parser.add_argument(
        "--threads", type=int, default=1, metavar="T", help="torch CPU threads (default 1; numpy is single-threaded)"
    )
    parser.add_argument(
        "--backends",
        nargs="+",
        default=None,
        metavar="B",
        help="numpy, torch-cpu, torch-cuda (default: numpy, plus torch-cuda when CUDA is present)",
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="folder with the geometry data files")


def run(args: argparse.Namespace) -> int:
    import torch

    import projection
    from caloclouds.io.formats import iter_any
    from projection.bench import bench_projection, tile_showers

    torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    backends = args.backends or (["numpy", "torch-cuda"] if cuda else ["numpy"])
    if "torch-cuda" in backends and not cuda:
        print("torch-cuda skipped: no CUDA device")
        backends = [b for b in backends if b != "torch-cuda"]
    showers = None
    for chunk in iter_any(args.input, chunk_showers=args.showers):
        showers = chunk
        break
    if showers is None or len(showers) == 0:
        from caloclouds.errors import InputFileError

        raise InputFileError(args.input, "no showers")
    showers = tile_showers(showers, args.showers)
    print(
        f"machine: {os.cpu_count()} CPU cores visible, torch threads {args.threads}, "
        f"CUDA: {torch.cuda.get_device_name() if cuda else 'none'}"
    )
    for spec in args.geometry:
        geometry = projection.get_geometry(spec, data_dir=args.data_dir)
        for backend in backends:
            print(bench_projection(showers, geometry, backend=backend, repeats=args.repeats).line(), flush=True)
    return 0
