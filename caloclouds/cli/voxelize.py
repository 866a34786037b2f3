"""Bin point-cloud showers into a cylindrical voxel mesh and write a CaloChallenge HDF5 file.

The output has `incident_energies` (N, 1) and `showers` (N, n_voxels), both in MeV, flattened in
(layer, alpha, r) order, plus the mesh as a JSON attribute. With --to-points the direction is
reversed: a CaloChallenge file becomes point showers (our HDF5), one point per non-empty voxel at
its centre (--mode centre) or uniformly inside it (--mode uniform).

Examples:
  caloclouds voxelize ../shared/data/g4_photons_val_fixed.h5 -o val_fixed_ds2.h5
  caloclouds voxelize ../shared/data/g4_photons_train.h5 --mesh ds1 -o train_ds1.h5
  caloclouds voxelize val_fixed_ds2.h5 --to-points --mode uniform -o val_fixed_points.h5

Meshes: ds2 (default: CaloChallenge dataset-2-like, 30 layers x 16 alpha x 9 r of 4.65 mm),
ds1 (irregular, dataset-1-photon-like), or a YAML/JSON file with r_edges_mm and n_alpha.
"""

from __future__ import annotations

import argparse

from caloclouds.cli.options import add_overwrite_argument, add_seed_argument

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "input", metavar="IN.h5", help="shower file (our HDF5), or a CaloChallenge file with --to-points"
    )
    parser.add_argument("-o", "--output", required=True, metavar="OUT.h5", help="output file")
    add_overwrite_argument(parser, "the output file")
    parser.add_argument("--mesh", default=None, metavar="MESH", help="ds2 (default), ds1 or a mesh YAML/JSON file")
    parser.add_argument("--max-showers", type=int, metavar="N", help="voxelise only the first N showers")
    parser.add_argument("--chunk-showers", type=int, default=1000, metavar="N", help="showers per chunk (default 1000)")
    parser.add_argument("--to-points", action="store_true", help="CaloChallenge file -> point showers (our HDF5)")
    parser.add_argument(
        "--mode",
        choices=["centre", "uniform"],
        default="centre",
        help="where points go with --to-points (default centre)",
    )
    parser.add_argument(
        "--points-per-voxel", type=int, default=1, metavar="K", help="points per voxel with --to-points (default 1)"
    )
    parser.add_argument(
        "--threshold-mev", type=float, default=0.0, metavar="MEV", help="voxels <= this make no points (default 0)"
    )
    add_seed_argument(parser, "random seed of --mode uniform")


def run(args: argparse.Namespace) -> int:
    from caloclouds.errors import CaloCloudsError
    from caloclouds.voxel.calochallenge import calochallenge_to_points, voxelize_file
    from caloclouds.voxel.mesh import get_mesh

    for name in ("chunk_showers", "points_per_voxel"):
        if getattr(args, name) < 1:
            raise CaloCloudsError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.max_showers is not None and args.max_showers < 0:
        raise CaloCloudsError(f"--max-showers must be >= 0, got {args.max_showers}")
    mesh = get_mesh(args.mesh) if args.mesh is not None else None if args.to_points else get_mesh("ds2")
    from caloclouds.io.atomic import check_output_path

    check_output_path(args.output, overwrite=args.overwrite)
    if args.to_points:
        n = calochallenge_to_points(
            args.input,
            args.output,
            mesh=mesh,
            mode=args.mode,
            points_per_voxel=args.points_per_voxel,
            threshold_mev=args.threshold_mev,
            chunk_showers=args.chunk_showers,
            seed=args.seed,
        )
        print(f"wrote {n} point showers to {args.output}")
        return 0
    summary = voxelize_file(
        args.input, args.output, mesh, chunk_showers=args.chunk_showers, max_showers=args.max_showers, progress=True
    )
    print(f"wrote {int(summary['n_showers'])} showers x {mesh.n_voxels} voxels ({mesh!r}) to {args.output}")
    print(f"  energy outside the mesh: {summary['outside_fraction'] * 100:.3f} % of the visible energy")
    return 0
