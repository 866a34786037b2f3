"""Generate calibrated photon showers with a model bundle and write them to ROOT or HDF5.

Examples:
  caloclouds generate --energy-range 10 90 -n 1000 -o showers.root
  caloclouds generate --energies 10 50 90 -n 100 --geometry ild -o showers.h5
  caloclouds generate --energies-from energies.txt --model-part teacher --steps 13 -o showers.root
  caloclouds generate --energies 50 -n 100 --model-part teacher --solver euler --steps 40 -o euler.h5
  caloclouds generate --energies-from g4_photons_val_uniform.h5 -o matched.h5
  caloclouds generate --energies 50 -n 100 --theta-deg 20 --phi-deg 30 -o angled.h5
  caloclouds generate --energy-range 10 90 -n 1000 --theta-range 0 40 --phi-range 0 360 -o angled.h5
  caloclouds generate --conditions-from g4_photons_angled_val.h5 -o matched_angled.h5
  caloclouds generate --model voxel_cm.pt --energies 50 -n 100 -o voxel_showers.h5

--model also takes a voxel model checkpoint (caloclouds train-voxel); its showers are written as
points sampled inside the voxels (HDF5 only, CPU, no --geometry).

Direction of incidence (key4hep DDML's local angles, degrees): theta = acos(d_z), 0 = normal
incidence, z into the calorimeter; phi = atan2(d_y, d_x), any value (wrapped into (-180, 180]).
--theta-deg/--phi-deg fix them, --theta-range/--phi-range draw them uniformly (seeded), and
--conditions-from takes each shower's energy and direction from a shower file. The output then has
theta_deg and phi_deg per shower; points stay in the detector frame (the photon enters at x = y = 0
of the front face). theta outside the model's trained range is refused unless --allow-extrapolation;
a normal-incidence model refuses any theta > 0.

--model-part says which weights draw the points (cm: the consistency model, teacher: the EDM
teacher), --solver which algorithm (consistency for cm; heun, the default, or euler for the
teacher). Deprecated spellings still work, with a note: --sampler cm|edm (edm = --model-part
teacher --solver heun), --cells (= --geometry), --energies-file (= --energies-from).

The output is written in chunks of --batch-size showers (constant memory), to a temporary file
that is renamed when complete. The same --seed and options give the same showers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from caloclouds.cli.options import (
    add_cog_argument,
    add_device_argument,
    add_energy_arguments,
    add_geometry_argument,
    add_model_argument,
    add_model_part_arguments,
    add_overwrite_argument,
    add_seed_argument,
    generation_options,
    geometry_or_none,
)

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser, "model bundle folder, 'default' (the shipped model), or a voxel model .pt")
    add_energy_arguments(parser, conditions=True)
    direction = parser.add_argument_group("direction of incidence (default: normal incidence, no angles written)")
    direction.add_argument("--theta-deg", type=float, metavar="DEG", help="polar angle theta = acos(d_z) in degrees")
    direction.add_argument("--phi-deg", type=float, metavar="DEG", help="azimuth phi = atan2(d_y, d_x) in degrees")
    direction.add_argument(
        "--theta-range", nargs=2, type=float, metavar=("LO", "HI"), help="theta uniform in [LO, HI] degrees"
    )
    direction.add_argument(
        "--phi-range", nargs=2, type=float, metavar=("LO", "HI"), help="phi uniform in [LO, HI] degrees"
    )
    add_model_part_arguments(parser, what="draw the points (a voxel .pt is one part: this must match it)")
    add_cog_argument(parser)
    add_geometry_argument(
        parser,
        help="also project onto these cells and write the cell hits: ild, hgcal, hex:PITCH_MM, a cell file, ... "
        "(default: none, points only)",
        deprecated_cells=True,
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=1000,
        metavar="B",
        help="showers per batch and per written chunk (default 1000)",
    )
    add_device_argument(parser)
    add_seed_argument(parser, "random seed, 0 to 2^63-1")
    parser.add_argument(
        "--allow-extrapolation",
        action="store_true",
        help="generate energies and polar angles outside the model's training range (refused by default; "
        "the output is still checked for NaN/inf)",
    )
    parser.add_argument("-o", "--output", required=True, metavar="OUT.{root,h5}", help="output file (.root or .h5)")
    add_overwrite_argument(parser, "the output file")


def run(args: argparse.Namespace) -> int:
    """Each option is checked once, here, before any work; the sampling options are resolved once,
    by the generator (a voxel model: :meth:`VoxelModel.resolve_solver`); the energies are checked
    against the model's training range once, by :func:`generate_to_file`."""
    from caloclouds.errors import CaloCloudsError
    from caloclouds.generation.energies import incident_energies
    from caloclouds.io.atomic import check_output_path

    if args.batch_size < 1:
        raise CaloCloudsError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.steps is not None and args.steps < 1:
        raise CaloCloudsError(f"--steps must be >= 1, got {args.steps}")
    if not 0 <= args.seed < 2**63:
        raise CaloCloudsError(f"--seed must lie in 0 to 2^63-1, got {args.seed}")
    out = check_output_path(
        args.output, suffixes=(".root", ".h5", ".hdf5"), option="--output", overwrite=args.overwrite
    )
    energies = incident_energies(
        energy_range_gev=tuple(args.energy_range) if args.energy_range else None,
        energies_gev=args.energies,
        energies_from=args.energies_from or args.conditions_from,
        n_showers=args.n_showers,
        seed=args.seed,
    )
    directions = _directions(args, len(energies))
    from caloclouds.voxel.model import is_voxel_checkpoint

    if is_voxel_checkpoint(args.model):
        if directions is not None:
            raise CaloCloudsError("a voxel model knows only normal incidence: no angle options")
        return _generate_voxels(args, energies, out)
    from caloclouds.generation.pipeline import generate_to_file

    summary = generate_to_file(
        out,
        energies,
        **generation_options(args),
        batch_size=args.batch_size,
        device=args.device,
        seed=args.seed,
        allow_extrapolation=args.allow_extrapolation,
        theta_deg=None if directions is None else directions[0],
        phi_deg=None if directions is None else directions[1],
    )
    print(summary.text())
    return 0


def _directions(args: argparse.Namespace, n_showers: int) -> tuple[object, object] | None:
    """(theta, phi) per shower from the angle options or --conditions-from, or None (normal incidence)."""
    from caloclouds.errors import CaloCloudsError
    from caloclouds.generation.directions import directions_of_file, incident_directions

    options = (args.theta_deg, args.phi_deg, args.theta_range, args.phi_range)
    if args.conditions_from:
        if any(v is not None for v in options):
            raise CaloCloudsError("--conditions-from takes the directions from the file: no angle options with it")
        return directions_of_file(args.conditions_from, n_showers=n_showers)
    return incident_directions(
        n_showers,
        theta_deg=args.theta_deg,
        phi_deg=args.phi_deg,
        theta_range_deg=tuple(args.theta_range) if args.theta_range else None,
        phi_range_deg=tuple(args.phi_range) if args.phi_range else None,
        seed=args.seed,
    )


def _generate_voxels(args: argparse.Namespace, energies: object, out: Path) -> int:
    """``generate`` with a voxel model: points sampled inside the generated voxels, to HDF5."""
    from caloclouds.diffusion.sampling import default_solver
    from caloclouds.errors import CaloCloudsError
    from caloclouds.voxel.generate import generate_voxel_file

    if out.suffix == ".root" or geometry_or_none(args.geometry) or args.device != "cpu":
        raise CaloCloudsError("a voxel model writes HDF5 points on the CPU: use -o OUT.h5, no --geometry, no --device")
    from caloclouds.voxel.model import load_voxel_model

    model = load_voxel_model(args.model)
    solver = args.solver
    if solver is None and args.model_part is not None:
        solver = default_solver(args.model_part)  # the file holds one part: a --model-part must be that one
    solver = model.resolve_solver(solver)  # the file's default solver unless an option asks for another
    summary = generate_voxel_file(
        model, energies, out, steps=args.steps, solver=solver, batch_size=args.batch_size, seed=args.seed
    )
    print(f"wrote {int(summary['n_showers'])} voxel-model showers to {out} ({summary['ms_per_shower']:.1f} ms/shower)")
    return 0
