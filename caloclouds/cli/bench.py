"""Measure end-to-end generation speed of a model bundle.

CPU single-shower speed: one thread (torch.set_num_threads(1)), batch 1, energies uniform in
10-90 GeV; the median ms per shower of the full pipeline (flow, diffusion, calibration, ILD
projection) and of each stage. The EDM teacher with --edm-steps Heun steps is timed too when the
bundle has a teacher. With CUDA, also the throughput in showers/s at a large batch.

Example:
  caloclouds bench --model default
"""

from __future__ import annotations

import argparse
import platform

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="default", metavar="DIR", help="model bundle (default: the shipped one)")
    parser.add_argument("-n", type=int, default=200, help="timed showers per configuration (default 200)")
    parser.add_argument("--edm-steps", type=int, default=13, help="Heun steps for the EDM timing (default 13; 0 skips it)")
    parser.add_argument("--edm-n", type=int, default=20, help="timed showers for the EDM (default 20)")
    parser.add_argument("--cells", choices=["ild", "hgcal", "none"], default="ild", help="projection included in the timing")
    parser.add_argument("--gpu-batch", type=int, default=10000, help="batch size of the GPU throughput test")


def _cpu_name() -> str:
    """The CPU model (from /proc/cpuinfo on Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(args: argparse.Namespace) -> int:
    import torch

    from caloclouds.generation.bench import bench_single_shower, bench_throughput
    from caloclouds.generation.bundle import load_bundle

    bundle = load_bundle(args.model)
    cells = None if args.cells == "none" else args.cells
    torch.set_num_threads(1)
    print(f"machine: {_cpu_name()}, torch {torch.__version__}, 1 CPU thread, batch 1, median of {args.n} showers")
    print("| pipeline | total ms | flow ms | diffusion ms | calibration ms | projection ms |")
    print("|---|---|---|---|---|---|")
    print(bench_single_shower(bundle, sampler="cm", n=args.n, cells=cells).row())
    if args.edm_steps and bundle.has("teacher"):
        print(bench_single_shower(bundle, sampler="edm", steps=args.edm_steps, n=args.edm_n, warmup=2, cells=cells).row())
    if torch.cuda.is_available():
        rate = bench_throughput(bundle, device="cuda", batch_size=args.gpu_batch, cells=cells)
        print(f"GPU ({torch.cuda.get_device_name()}): {rate:.0f} showers/s at batch {args.gpu_batch}")
    else:
        print("no CUDA device: GPU throughput not measured")
    return 0
