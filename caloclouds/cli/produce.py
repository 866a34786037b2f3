"""Produce many showers as resumable shards on a Dask cluster (local cores, a scheduler, Slurm, HTCondor).

Examples:
  caloclouds produce --n 10000000 --energy-range 10 90 --shard-size 50000 -o prod/
  caloclouds produce --n 200000 --energy-range 10 90 --geometry ild --format root -o prod/ --workers 2
  caloclouds produce --n 1000000 --energy-range 10 90 -o prod/ --scheduler tcp://10.0.0.5:8786
  caloclouds produce --n 10000000 --energy-range 10 90 -o /scratch/prod/ \\
      --cluster slurm --cluster-config configs/cluster_slurm.yaml --workers 100
  caloclouds produce ... --cluster slurm --cluster-config configs/cluster_slurm.yaml --print-job-script

The request is cut into shards of --shard-size showers. Shard k is `caloclouds generate --seed S_k
-n SIZE ...` with the other options given here, run with one torch thread, where S_k comes from
--seed and k alone (numpy SeedSequence([seed, k])): a shard's showers do not depend on where or when
it ran. Each shard is written to DIR/shard-0000k.h5 (or .root) through a temporary file, then
recorded in DIR/production.json (the command, the request, the model's SHA-256, each shard's seed,
showers, SHA-256 and time).

Running the same command again makes only the shards that are missing or damaged (checked against
the SHA-256 in the manifest), and says so when there is nothing to do; other options against an
existing manifest are an error naming what differs. A worker that dies loses only its shard, which
runs again; a shard that fails --retries + 1 times stops the production with its error; SIGTERM
stops it and keeps the finished shards.

Read the result as one dataset: uproot.concatenate("DIR/*.root:events"), `caloclouds info DIR/`,
or `caloclouds merge DIR -o one.h5`. --device cuda runs the shards on the workers' GPU in batches
of 10000 showers (one worker per GPU).
"""

from __future__ import annotations

import argparse
import sys
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from caloclouds.cli.options import (
    add_cog_argument,
    add_energy_arguments,
    add_geometry_argument,
    add_model_argument,
    add_model_part_arguments,
    add_seed_argument,
    generation_options,
)

if TYPE_CHECKING:
    from caloclouds.production.plan import ProductionRequest

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_energy_arguments(parser, from_file=False, n_required=True)
    parser.add_argument(
        "--shard-size",
        type=int,
        default=50000,
        metavar="N",
        help="showers per shard file (per energy with --energies; default 50000, about 7 minutes on one core)",
    )
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="production folder (created if missing)")
    parser.add_argument("--format", choices=["h5", "root"], default="h5", help="shard files: h5 (default) or root")
    add_seed_argument(parser, "production seed, 0 to 2^63-1")
    add_model_argument(parser)
    add_geometry_argument(
        parser,
        help="also project onto these cells and write the hits, as for generate (default: none)",
        deprecated_cells=True,
    )
    add_model_part_arguments(parser)
    add_cog_argument(parser)
    parser.add_argument(
        "--allow-extrapolation", action="store_true", help="energies outside the training range, as for generate"
    )
    parser.add_argument(
        "--batch-size", type=int, metavar="B", help="showers per batch (default 1000 on cpu, 10000 on cuda)"
    )
    # dest is not 'device': the CLI checks args.device on this machine, but the workers run the shards
    parser.add_argument(
        "--device",
        dest="worker_device",
        choices=["cpu", "cuda"],
        default="cpu",
        help="the workers' device (default cpu)",
    )
    # its own --threads (the dispatcher adds a generic one otherwise): this process only plans and waits
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch threads of this process, which plans, checks and waits; every worker makes its "
        "shards on one thread, whatever this says (the showers' bits depend on it)",
    )
    where = parser.add_argument_group("cluster")
    where.add_argument(
        "--workers", type=int, metavar="N", help="worker processes (local: default one per core; slurm/htcondor: jobs)"
    )
    where.add_argument("--scheduler", metavar="ADDRESS", help="join a running Dask scheduler (tcp://host:8786)")
    where.add_argument(
        "--cluster",
        choices=["local", "slurm", "htcondor"],
        default="local",
        help="start workers here or via dask-jobqueue",
    )
    where.add_argument(
        "--cluster-config", metavar="FILE.yaml", help="dask-jobqueue options (configs/cluster_slurm.yaml)"
    )
    where.add_argument("--print-job-script", action="store_true", help="print the batch job script and stop")
    where.add_argument("--retries", type=int, default=2, metavar="K", help="extra tries of a failing shard (default 2)")


def _request(args: argparse.Namespace) -> ProductionRequest:
    from caloclouds.diffusion.sampling import resolve_sampling
    from caloclouds.production.plan import DEFAULT_BATCH_SIZE, ProductionRequest

    resolve_sampling(model_part=args.model_part, solver=args.solver)  # clashes: one line, before any shard
    return ProductionRequest(
        n_showers=args.n_showers,
        shard_size=args.shard_size,
        seed=args.seed,
        energy_range_gev=tuple(args.energy_range) if args.energy_range else None,
        energies_gev=tuple(args.energies) if args.energies else None,
        format=args.format,
        **generation_options(args),
        batch_size=args.batch_size or DEFAULT_BATCH_SIZE[args.worker_device],
        device=args.worker_device,
        allow_extrapolation=args.allow_extrapolation,
    )


def _check_energies(request: ProductionRequest) -> None:
    """Energies outside the model's range and bad steps fail here, once, not in every shard."""
    from caloclouds.errors import CaloCloudsError
    from caloclouds.generation.bundle import load_bundle
    from flows.sampling import check_energy_range

    if request.steps is not None and request.steps < 1:
        raise CaloCloudsError(f"--steps must be >= 1, got {request.steps}")
    bounds = request.energy_range_gev or request.energies_gev
    flow = load_bundle(request.model).flow(device="cpu")
    check_energy_range(list(bounds), tuple(flow.energy_range_gev), allow_extrapolation=request.allow_extrapolation)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from caloclouds.errors import CaloCloudsError
    from caloclouds.production.cluster import connect, jobqueue_cluster, read_cluster_config

    if args.print_job_script:
        if args.cluster == "local" or not args.cluster_config:
            raise CaloCloudsError("--print-job-script needs --cluster slurm|htcondor and --cluster-config FILE.yaml")
        cluster = jobqueue_cluster(
            args.cluster, read_cluster_config(args.cluster_config), config_path=args.cluster_config
        )
        with cluster:
            print(cluster.job_script())
        return 0
    if args.retries < 0:
        raise CaloCloudsError(f"--retries must be >= 0, got {args.retries}")
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise CaloCloudsError(f"-o {out_dir}: exists and is not a folder (produce writes a folder of shards)")
    request = _request(args)
    _check_energies(request)
    if request.device == "cuda" and args.scheduler is None and args.cluster == "local":
        from caloclouds.cli import _check_device

        _check_device("cuda")  # a local GPU worker needs a GPU here; remote workers are checked there
    from caloclouds.production.runner import run_production

    workers = args.workers
    if workers is None and request.device == "cuda" and args.cluster == "local":
        workers = 1  # one worker per GPU

    def cluster() -> AbstractContextManager[Any]:
        return connect(
            workers=workers, scheduler=args.scheduler, cluster=args.cluster, cluster_config=args.cluster_config
        )

    result = run_production(request, out_dir, cluster, retries=args.retries, echo=_stderr)
    print(result.text())
    return 0


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)
