"""Measure end-to-end generation speed of a model bundle, on the paths users take.

CPU single-shower speed: one thread (torch.set_num_threads(1)), batch 1, energies uniform in
10-90 GeV; the median ms per shower of the model alone (flow, diffusion, calibration), of the
pipeline with the ILD projection, and of each stage. Then, the same showers as a user makes them:

* `generate --batch-size 1` end to end into a ROOT file and into an HDF5 file (cells included,
  writing and closing the file included; `--no-files` skips it): the mean per shower after the
  first shower, the mean of all, and the first shower alone;
* the TorchScript export (`caloclouds export`) called once per shower from Python
  (`--no-torchscript` skips it).

--model-part and --solver choose the timed model (default: the consistency model, one step; e.g.
--model-part teacher --solver euler --steps 40). The EDM teacher with --edm-steps Heun steps is
timed too when the bundle has a teacher and the timed model is the consistency model. With
CUDA, also the throughput in showers/s at a large batch. --g4-ms-per-shower gives the speed-up
against a Geant4 time per shower; --json writes every figure to a file.

Example:
  taskset -c 1 caloclouds bench --model default --g4-ms-per-shower 1000 --json bench.json
"""

from __future__ import annotations

import argparse
import platform

from caloclouds.cli.options import add_overwrite_argument

__all__ = ["GEANT4_MS_PER_SHOWER", "add_arguments", "run"]

# Geant4 time per 10-90 GeV photon shower on one core of the 2-core AMD EPYC development machine
# (README, "Generation", Speed): the default reference of the speed-up.
GEANT4_MS_PER_SHOWER = 600.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="default", metavar="DIR", help="model bundle (default: the shipped one)")
    parser.add_argument("-n", type=int, default=200, help="timed showers per configuration (default 200)")
    parser.add_argument(
        "--model-part", choices=["cm", "teacher"], help="which weights are timed: cm (default) or teacher"
    )
    parser.add_argument(
        "--solver",
        metavar="NAME",
        help="solver of the timed model: consistency (cm, default), heun "
        "(teacher, default) or euler; a name of caloclouds.diffusion.sampling.SOLVERS",
    )
    parser.add_argument(
        "--steps", type=int, metavar="K", help="solver steps of the timed model (default from its config)"
    )
    parser.add_argument(
        "--edm-steps", type=int, default=13, help="Heun steps for the EDM timing (default 13; 0 skips it)"
    )
    parser.add_argument("--edm-n", type=int, default=20, help="timed showers for the EDM (default 20)")
    parser.add_argument(
        "--cells", choices=["ild", "hgcal", "none"], default="ild", help="projection included in the timing"
    )
    parser.add_argument("--gpu-batch", type=int, default=10000, help="batch size of the GPU throughput test")
    parser.add_argument("--no-files", action="store_true", help="skip the generate-to-ROOT/HDF5 timings")
    parser.add_argument("--no-torchscript", action="store_true", help="skip the TorchScript export timing")
    parser.add_argument(
        "--g4-ms-per-shower",
        type=float,
        default=GEANT4_MS_PER_SHOWER,
        metavar="MS",
        help="Geant4 time per shower (ms) on your machine, for the speed-up (default "
        f"{GEANT4_MS_PER_SHOWER:g}: the README's figure for the 2-core development machine)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write all figures to this JSON file")
    add_overwrite_argument(parser, "the --json file")


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
    import json

    import torch

    from caloclouds.errors import CaloCloudsError
    from caloclouds.export.bench import bench_torchscript
    from caloclouds.generation.bench import bench_generate_to_file, bench_single_shower, bench_throughput, speed_up
    from caloclouds.generation.bundle import load_bundle
    from caloclouds.io.atomic import atomic_path, check_output_path

    from caloclouds.diffusion.sampling import resolve_sampling

    if args.n < 1:
        raise CaloCloudsError(f"-n must be >= 1, got {args.n}")
    if args.steps is not None and args.steps < 1:
        raise CaloCloudsError(f"--steps must be >= 1, got {args.steps}")
    part, solver = resolve_sampling(model_part=args.model_part, solver=args.solver)
    if args.g4_ms_per_shower is not None and not args.g4_ms_per_shower > 0:
        raise CaloCloudsError(f"--g4-ms-per-shower must be > 0, got {args.g4_ms_per_shower}")
    if args.json:
        check_output_path(args.json, suffixes=(".json",), option="--json", overwrite=args.overwrite)
    bundle = load_bundle(args.model)
    cells = None if args.cells == "none" else args.cells
    torch.set_num_threads(1)
    report: dict = {
        "machine": _cpu_name(),
        "torch": torch.__version__,
        "threads": 1,
        "batch": 1,
        "n": args.n,
        "cells": args.cells,
        "model": str(bundle.path),
        "ms_per_shower": {},
    }
    ms = report["ms_per_shower"]
    print(f"machine: {report['machine']}, torch {torch.__version__}, 1 CPU thread, batch 1, median of {args.n} showers")
    print("| pipeline | total ms | flow ms | diffusion ms | calibration ms | projection ms |")
    print("|---|---|---|---|---|---|")
    cm = bench_single_shower(bundle, model_part=part, solver=solver, steps=args.steps, n=args.n, cells=cells)
    print(cm.row())
    report["model_part"], report["solver"] = part, solver
    report["stages_ms"] = {cm.label: cm.median_ms}
    ms["model"] = cm.median_ms["model"]
    ms["model_mean"] = cm.mean_ms["model"]
    ms["model+projection"] = cm.median_ms["total"]
    if args.edm_steps and bundle.has("teacher") and part == "cm":
        edm = bench_single_shower(
            bundle, model_part="teacher", steps=args.edm_steps, n=args.edm_n, warmup=2, cells=cells
        )
        print(edm.row())
        report["stages_ms"][f"edm_{args.edm_steps}_steps"] = edm.median_ms
    print()
    print("| path (batch 1, one thread) | ms per shower |" + (" speed-up vs Geant4 |" if args.g4_ms_per_shower else ""))
    print("|---|---|" + ("---|" if args.g4_ms_per_shower else ""))
    timed = "CM" if part == "cm" else f"teacher + {solver}"
    rows = [
        (f"model only (flow + {timed} + calibration), median", "model"),
        ("model only, mean (outliers included, as in a whole run)", "model_mean"),
        (f"model + {args.cells} projection, median", "model+projection"),
    ]
    if not args.no_files:
        for suffix, key in ((".root", "generate_root"), (".h5", "generate_hdf5")):
            timed = bench_generate_to_file(
                str(bundle.path), suffix=suffix, n=args.n, cells=cells, model_part=part, solver=solver, steps=args.steps
            )
            ms[key] = timed["after_first"]
            report.setdefault("generate_with_first_shower_ms", {})[key] = timed["mean"]
            report.setdefault("generate_first_shower_ms", {})[key] = timed["first"]
            rows.append(
                (f"generate --batch-size 1 --cells {args.cells} -o x{suffix}, mean after the first shower", key)
            )
    if not args.no_torchscript and bundle.has("cm") and part == "cm":
        ms["torchscript"] = bench_torchscript(bundle, n=args.n)
        rows.append(("TorchScript export from Python (no projection), median", "torchscript"))
    for label, key in rows:
        gain = speed_up(args.g4_ms_per_shower, ms[key])
        print(f"| {label} | {ms[key]:.2f} |" + (f" {gain:.0f}x |" if gain is not None else ""))
    for key, first in report.get("generate_first_shower_ms", {}).items():
        print(
            f"{key}: the first shower took {first:.0f} ms; with it the mean of "
            f"{args.n} is {report['generate_with_first_shower_ms'][key]:.2f} ms"
        )
    if "generate_root" in ms:
        report["generate_root_over_model"] = ms["generate_root"] / ms["model"]
        report["generate_root_over_model_mean"] = ms["generate_root"] / ms["model_mean"]
        print(
            f"generate to ROOT / model only: {report['generate_root_over_model']:.2f}x the median, "
            f"{report['generate_root_over_model_mean']:.2f}x the mean"
        )
    if args.g4_ms_per_shower:
        report["geant4_ms_per_shower"] = args.g4_ms_per_shower
        report["speed_up"] = {k: speed_up(args.g4_ms_per_shower, v) for k, v in ms.items()}
    if torch.cuda.is_available():
        rate = bench_throughput(
            bundle, device="cuda", batch_size=args.gpu_batch, cells=cells, model_part=part, solver=solver
        )
        report["gpu_showers_per_s"] = rate
        print(f"GPU ({torch.cuda.get_device_name()}): {rate:.0f} showers/s at batch {args.gpu_batch}")
    else:
        print("no CUDA device: GPU throughput not measured")
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
