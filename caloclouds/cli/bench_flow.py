"""Measure Shower Flow sampling time per call (default: one shower, one CPU thread).

Prints the median wall time per call of ``ShowerFlow.sample`` at random energies in the training
range, with the 10 % and 90 % quantiles and the median thread CPU time (which a busy machine
does not inflate).

example:
  caloclouds bench-flow --flow caloclouds/models/default/flow.pt --threads 1 --batch 1
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--flow",
        type=Path,
        default=None,
        metavar="PATH",
        help="flow checkpoint or run folder (default: the bundled model)",
    )
    parser.add_argument("--batch", type=int, default=1, metavar="B", help="showers per call (default: 1)")
    parser.add_argument("--repeats", type=int, default=1000, metavar="N", help="timed calls (default: 1000)")
    parser.add_argument("--warmup", type=int, default=50, metavar="N", help="untimed calls first (default: 50)")
    parser.add_argument("--threads", type=int, default=1, metavar="N", help="torch CPU threads (default: 1)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(args: argparse.Namespace) -> int:
    import torch

    from caloclouds.errors import ConfigError
    from flows import default_flow_path, load_shower_flow
    from flows.bench import bench_sampling

    for name in ("batch", "repeats", "threads"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name} must be >= 1, got {getattr(args, name)}")
    torch.set_num_threads(args.threads)
    flow = load_shower_flow(args.flow or default_flow_path(), map_location=args.device)
    r = bench_sampling(flow, batch=args.batch, repeats=args.repeats, warmup=args.warmup)
    print(f"machine: {_cpu_name()}, {r['threads']} thread(s), device {r['device']}, torch {torch.__version__}")
    print(
        f"batch {r['batch']}: median {r['median_ms']:.3f} ms per call (p10 {r['p10_ms']:.3f}, "
        f"p90 {r['p90_ms']:.3f}), thread CPU median {r['cpu_median_ms']:.3f} ms, "
        f"{r['per_shower_us']:.1f} us per shower"
    )
    return 0
