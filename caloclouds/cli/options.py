"""Option groups that several verbs share, written once, and the one shim for deprecated spellings.

* every verb: ``--threads`` (added by :func:`caloclouds.cli.verb_parser` where a verb has none);
* ``--config``, ``--device`` and ``--seed`` (:func:`add_config_argument`, :func:`add_device_argument`,
  :func:`add_seed_argument`);
* verbs that write files: ``--overwrite`` (:func:`add_overwrite_argument`);
* a model bundle and its parts: ``--model`` (:func:`add_model_argument`), ``--model-part``,
  ``--solver`` and ``--steps`` (:func:`add_model_part_arguments`);
* generation (generate, produce): ``--cog`` (:func:`add_cog_argument`); the model, sampling, cog and
  geometry options as keyword arguments of a generation (:func:`generation_options`);
* incident energies (generate, produce): :func:`add_energy_arguments`;
* cells: ``--geometry SPEC`` (:func:`add_geometry_argument`) and, for project and plot-shower, the
  placement and threshold on the cells (:func:`add_placement_arguments`, :func:`placement_options`);
* training runs: :func:`add_training_arguments` (train-diffusion, distill) and
  :func:`add_run_control_arguments` (every training verb).

Old spellings of renamed options are still parsed (hidden from ``--help``) and mapped onto the new
ones by :func:`apply_deprecated`, which :func:`caloclouds.cli.main` calls for every verb, with a
one-line note each.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_THREADS",
    "add_cog_argument",
    "add_config_argument",
    "add_device_argument",
    "add_energy_arguments",
    "add_geometry_argument",
    "add_model_argument",
    "add_model_part_arguments",
    "add_overwrite_argument",
    "add_placement_arguments",
    "add_run_control_arguments",
    "add_seed_argument",
    "add_threads_argument",
    "add_training_arguments",
    "apply_deprecated",
    "apply_threads",
    "generation_options",
    "geometry_or_none",
    "placement_options",
    "run_control_options",
    "training_options",
]

DEFAULT_THREADS = 1  # one intra-op thread per process: on a shared machine a second core serves a second job

_THREADS_HELP = (
    "torch CPU threads of this process (default: $OMP_NUM_THREADS if set, else 1, so that the other cores "
    "serve other jobs; use all cores with --threads N, or several processes with caloclouds produce)"
)


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """``--threads N``: the process's torch intra-op threads (see :func:`apply_threads`)."""
    parser.add_argument("--threads", type=int, default=None, metavar="N", help=_THREADS_HELP)


def add_overwrite_argument(parser: argparse.ArgumentParser, what: str = "the output") -> None:
    """``--overwrite``: replace ``what`` if it exists (refused otherwise)."""
    parser.add_argument("--overwrite", action="store_true", help=f"replace {what} if it exists (refused otherwise)")


def resolve_threads(threads: int | None) -> int:
    """``threads``, or the default: ``$OMP_NUM_THREADS`` where it is a positive integer, else 1."""
    from caloclouds.errors import CaloCloudsError

    if threads is not None:
        if threads < 1:
            raise CaloCloudsError(f"--threads must be >= 1, got {threads}")
        return threads
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(env) if env.isdigit() and int(env) > 0 else DEFAULT_THREADS


def apply_threads(threads: int | None) -> int:
    """Give this process ``threads`` torch intra-op threads (default :func:`resolve_threads`).

    Where torch is not imported yet, ``OMP_NUM_THREADS`` is set, which torch (and the BLAS under
    numpy, if not yet loaded) reads when it starts; otherwise ``torch.set_num_threads``. A command
    owns its process, so this is the CLI's to call, never library code's.

    Returns:
        the number of threads.
    """
    n = resolve_threads(threads)
    torch = sys.modules.get("torch")
    if torch is None:
        os.environ["OMP_NUM_THREADS"] = str(n)
    else:
        torch.set_num_threads(n)
    return n


def add_config_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """``--config CFG.yaml``: a config file; ``help`` says which of its sections the verb reads, and
    what it does without one."""
    parser.add_argument("--config", metavar="CFG.yaml", help=help)


def add_device_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--device``: the torch device (default cpu)."""
    parser.add_argument("--device", default="cpu", help="torch device: cpu or cuda (default: cpu)")


def add_seed_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup, what: str = "random seed") -> None:
    """``--seed N`` (default 0); ``what`` says what it seeds, in the help."""
    parser.add_argument("--seed", type=int, default=0, help=f"{what} (default: 0)")


def add_model_argument(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--model DIR``: a model bundle folder, or ``default`` (the shipped model)."""
    parser.add_argument(
        "--model",
        default="default",
        metavar="DIR",
        help=help or "model bundle folder, or 'default' (the shipped model)",
    )


def add_model_part_arguments(parser: argparse.ArgumentParser, *, what: str = "draw the points") -> None:
    """``--model-part cm|teacher``, ``--solver NAME`` and ``--steps K``; ``--sampler`` (deprecated,
    hidden) is mapped onto the first two by :func:`apply_deprecated`."""
    parser.add_argument(
        "--model-part",
        choices=["cm", "teacher"],
        help=f"which weights {what}: cm, the consistency model (default), or teacher, the EDM teacher",
    )
    # no argparse choices: the solvers are the table caloclouds.diffusion.sampling.SOLVERS, checked there
    parser.add_argument(
        "--solver",
        metavar="NAME",
        help="which algorithm: consistency (cm, default), heun (teacher, default) or euler (teacher): "
        "a name of caloclouds.diffusion.sampling.SOLVERS",
    )
    parser.add_argument(
        "--steps", type=int, metavar="K", help="CM steps (default 1) or Heun / Euler steps (default: the config's)"
    )
    parser.add_argument("--sampler", choices=["cm", "edm"], help=argparse.SUPPRESS)  # deprecated


def add_cog_argument(parser: argparse.ArgumentParser) -> None:
    """``--cog rotate|flow|none``: the transverse position of the generated showers."""
    from caloclouds.config import COG_MODES

    parser.add_argument(
        "--cog",
        choices=COG_MODES,
        help="transverse position: rotate each shower by a random angle about the beam axis; "
        "flow: shift its CoG to the Shower Flow's (CaloClouds II); none. Default: the "
        "model's generation.cog (flow for the shipped model)",
    )


def generation_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of a generation (:func:`caloclouds.generation.pipeline.generate_to_file`,
    :class:`caloclouds.production.plan.ProductionRequest`) from the options of :func:`add_model_argument`,
    :func:`add_model_part_arguments`, :func:`add_cog_argument` and :func:`add_geometry_argument`."""
    return dict(
        model=args.model,
        model_part=args.model_part,
        solver=args.solver,
        steps=args.steps,
        cog=args.cog,
        cells=geometry_or_none(args.geometry),
    )


def add_energy_arguments(
    parser: argparse.ArgumentParser, *, from_file: bool = True, n_required: bool = False, conditions: bool = False
) -> None:
    """Where the incident energies come from (exactly one): ``--energy-range LO HI``, ``--energies
    E...`` or, with ``from_file``, ``--energies-from FILE`` (a text file or a shower file, read by
    :func:`caloclouds.generation.energies.energies_from_file`); ``-n`` showers (per energy with
    ``--energies``; the first N of a file). With ``conditions``, also ``--conditions-from REF``: the
    energies and, where REF has them, the directions of a shower file."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--energy-range", nargs=2, type=float, metavar=("LO_GEV", "HI_GEV"), help="-n energies uniform in [LO, HI] GeV"
    )
    source.add_argument(
        "--energies", nargs="+", type=float, metavar="E_GEV", help="-n showers at each of these energies (GeV)"
    )
    if from_file:
        source.add_argument(
            "--energies-from",
            metavar="FILE",
            help="one shower per energy of this file, in its order: a text file (one energy in GeV per line, "
            "# comments) or a shower file (e.g. the reference of caloclouds evaluate); -n takes the first N",
        )
        source.add_argument("--energies-file", dest="energies_file", help=argparse.SUPPRESS)  # deprecated
    if conditions:
        source.add_argument(
            "--conditions-from",
            metavar="REF",
            help="one shower per shower of this shower file, at its energy and, where REF has them, its "
            "direction (theta_deg, phi_deg, written to the output too); -n takes the first N",
        )
    parser.add_argument(
        "-n",
        "--n-showers",
        *(["--n"] if n_required else []),
        dest="n_showers",
        type=int,
        required=n_required,
        metavar="N",
        help="number of showers (per energy with --energies)",
    )


def add_geometry_argument(
    parser: argparse.ArgumentParser, *, help: str | None = None, several: bool = False, deprecated_cells: bool = False
) -> None:
    """``--geometry SPEC``: the cells (``ild``, ``hgcal``, ``hex:PITCH_MM``, a cell file, ...);
    required unless ``help`` says what its absence means (its default is then None, which the verb
    reads). With ``deprecated_cells``, ``--cells`` (hidden) is mapped onto it by :func:`apply_deprecated`."""
    parser.add_argument(
        "--geometry",
        nargs="+" if several else None,
        default=None,
        metavar="SPEC",
        required=help is None,
        help=help or "ild | ild-real | hgcal | hex:PITCH_MM[:pointy] | square:PITCH_MM[:EVERY:GAP_MM] | FILE.npz",
    )
    if deprecated_cells:
        parser.add_argument("--cells", help=argparse.SUPPRESS)


def geometry_or_none(spec: str | None) -> str | None:
    """``--geometry`` as the library takes it: None for ``none`` (no projection)."""
    return None if spec in (None, "none") else spec


def add_placement_arguments(parser: argparse.ArgumentParser) -> None:
    """Where a shower lands on the cells and which cells count (project, plot-shower), with
    ``--geometry``; read back with :func:`placement_options`."""
    add_geometry_argument(parser)
    parser.add_argument(
        "--impact",
        nargs=2,
        type=float,
        default=(0.0, 0.0),
        metavar=("X_MM", "Y_MM"),
        help="where the shower axis hits the geometry (mm, default 0 0)",
    )
    parser.add_argument(
        "--rotation-deg",
        type=float,
        default=0.0,
        metavar="DEG",
        help="rotate the shower about its axis (counter-clockwise, degrees)",
    )
    parser.add_argument(
        "--layer-map",
        default=None,
        metavar="MAP",
        help="identity | linear | comma-separated detector layer per shower layer (-1 drops); "
        "default: the geometry's (linear for hgcal)",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--threshold-mev", type=float, default=None, metavar="MEV", help="drop cells below this energy")
    group.add_argument(
        "--threshold-mip", type=float, default=None, metavar="MIPS", help="drop cells below this many MIPs"
    )
    parser.add_argument(
        "--mip-mev",
        type=float,
        default=None,
        metavar="MEV",
        help="MIP energy for --threshold-mip (default: the detector's, 0.147 for the ILD-like one)",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="folder with the geometry data files (default ../shared/data)"
    )


def _check_finite(option: str, value: float | None, *, positive: bool = False, non_negative: bool = False) -> None:
    from caloclouds.errors import ConfigError

    if value is None:
        return
    if not math.isfinite(value) or (positive and value <= 0) or (non_negative and value < 0):
        bound = " > 0" if positive else " >= 0" if non_negative else ""
        raise ConfigError(f"{option} must be a finite number{bound}, got {value}")


def placement_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of projection.project from :func:`add_placement_arguments`'s options
    (checked: one-line errors)."""
    from caloclouds.errors import ConfigError

    for value in args.impact:
        _check_finite("--impact", value)
    _check_finite("--rotation-deg", args.rotation_deg)
    _check_finite("--threshold-mev", args.threshold_mev, non_negative=True)
    _check_finite("--threshold-mip", args.threshold_mip, non_negative=True)
    _check_finite("--mip-mev", args.mip_mev, positive=True)
    if args.mip_mev is not None and args.threshold_mip is None:
        raise ConfigError("--mip-mev is used only with --threshold-mip")
    layer_map = args.layer_map
    if layer_map is not None and layer_map not in ("identity", "linear"):
        try:
            layer_map = [int(v) for v in layer_map.split(",")]
        except ValueError:
            raise ConfigError(
                f"--layer-map {args.layer_map!r} is not identity, linear or comma-separated integers"
            ) from None
    options: dict[str, Any] = dict(
        impact_mm=tuple(args.impact),
        rotation_rad=math.radians(args.rotation_deg),
        layer_map=layer_map,
        threshold_mev=args.threshold_mev,
        threshold_mip=args.threshold_mip,
    )
    if args.mip_mev is not None:
        options["mip_mev"] = args.mip_mev
    return options


def add_run_control_arguments(parser: argparse.ArgumentParser) -> None:
    """``--resume``, ``--time-budget`` and ``--no-progress``, as every training verb has them."""
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue OUT/checkpoint.pt exactly (weights, optimiser, EMA, random stream); an error when there is none",
    )
    parser.add_argument(
        "--time-budget",
        default=None,
        metavar="T",
        help="stop cleanly after a checkpoint before this much time, e.g. 2h30m, 90m, 3600 (s); "
        "continue later with --resume",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a PointWise Net training run (train-diffusion, distill)."""
    parser.add_argument(
        "--data",
        required=True,
        nargs="+",
        metavar="TRAIN.h5",
        help="training shower file(s), read as one set (e.g. g4_photons_train.h5 g4_photons_train2.h5)",
    )
    parser.add_argument(
        "--val",
        default=None,
        metavar="VAL.h5",
        help="validation shower file: a validation loss (fixed showers and noise, EMA weights) "
        "joins the loss in OUT/metrics.csv and OUT/curve.png at every checkpoint",
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="run folder (checkpoints, config, metrics.csv, curve.png)"
    )
    parser.add_argument("--steps", type=int, default=None, metavar="N", help="total optimiser steps (default: config)")
    parser.add_argument(
        "--batch-size", type=int, default=None, metavar="B", help="showers per step over all ranks (default: config)"
    )
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        metavar="LR",
        help="learning rate (default: config; on --resume it replaces the saved one)",
    )
    add_device_argument(parser)
    add_seed_argument(parser)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast of the network")
    parser.add_argument("--compile", action="store_true", help="torch.compile the training step (GPU)")
    parser.add_argument(
        "--init-from",
        default=None,
        metavar="MODEL.pt",
        help="warm start a fresh run from this trained EDM / CM model.pt (its weights and normaliser); "
        "condition columns the config adds (e.g. diffusion.direction) start at zero",
    )
    add_run_control_arguments(parser)


def run_control_options(args: argparse.Namespace) -> dict[str, Any]:
    """``resume``, ``progress`` and ``time_budget_s`` (seconds or None) from
    :func:`add_run_control_arguments`'s options, as every training function takes them."""
    from caloclouds.runcontrol import parse_duration

    budget = None if args.time_budget is None else parse_duration(args.time_budget)
    return dict(resume=args.resume, progress=not args.no_progress, time_budget_s=budget)


def training_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of a PointWise Net training run from :func:`add_training_arguments`'s
    options (``train_diffusion`` and ``distill`` of :mod:`caloclouds.diffusion.training`)."""
    return dict(
        val=args.val,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        device=args.device,
        seed=args.seed,
        bf16=args.bf16,
        compile=args.compile,
        init_from=args.init_from,
        **run_control_options(args),
    )


# --sampler NAME (deprecated) -> (--model-part, --solver or None for the part's default)
_SAMPLER_ALIASES = {"cm": ("cm", None), "edm": ("teacher", "heun")}


def _note(verb: str, old: str, new: str) -> None:
    print(f"caloclouds {verb}: note: {old} is deprecated; use {new}", file=sys.stderr)


# deprecated option (its dest) -> the option that replaced it (its flag), where a verb parses the old one
# hidden (argparse.SUPPRESS)
RENAMED_OPTIONS: dict[str, str] = {
    "cells": "--geometry",  # generate, produce, bench
    "energies_file": "--energies-from",  # generate
    "edm_steps": "--teacher-steps",  # bench
    "edm_n": "--teacher-n",  # bench
    "flow": "--model",  # bench-flow
    "showers": "--batch",  # bench-projection
    "gpu_batch": "--batch",  # bench
}
# deprecated switch -> the --skip choice that replaced it (bench)
RENAMED_SWITCHES: dict[str, str] = {"no_files": "files", "no_torchscript": "torchscript", "no_timing": "timing"}


def _rename(args: argparse.Namespace, verb: str, parser: argparse.ArgumentParser, old: str, flag: str) -> None:
    """Move the deprecated option ``old`` (its dest) onto the option ``flag``, unless that was given too."""
    from caloclouds.errors import ConfigError

    value = getattr(args, old, None)
    hidden = any(a.dest == old and a.help is argparse.SUPPRESS for a in parser._actions)
    if value is None or not hidden:  # a verb's own option of that name (check-flow --flow) is no alias
        return
    action = parser._option_string_actions[flag]
    if getattr(args, action.dest) != action.default:
        raise ConfigError(f"--{old.replace('_', '-')} is the deprecated spelling of {flag}: give one of them")
    setattr(args, action.dest, [value] if action.nargs == "+" else value)
    setattr(args, old, None)
    _note(verb, f"--{old.replace('_', '-')}", flag)


def apply_deprecated(args: argparse.Namespace, verb: str, parser: argparse.ArgumentParser) -> None:
    """The one shim for deprecated spellings: map them in ``args`` onto the options that replaced them,
    in place, with a one-line note on stderr for each; the verbs read only the new names.

    * ``--sampler cm|edm``: ``--model-part cm`` / ``--model-part teacher --solver heun``;
    * the options of :data:`RENAMED_OPTIONS` (``--cells`` is ``--geometry``, ``--energies-file`` is
      ``--energies-from``, ``--edm-steps`` is ``--teacher-steps``, ...);
    * the switches of :data:`RENAMED_SWITCHES` (``--no-files`` is ``--skip files``, ...).

    Raises:
        ConfigError: an old spelling beside the new option it stands for.
    """
    from caloclouds.errors import ConfigError

    sampler = getattr(args, "sampler", None)
    if sampler is not None:
        part, solver = _SAMPLER_ALIASES[sampler]
        if getattr(args, "model_part", None) not in (None, part):
            raise ConfigError(f"--sampler {sampler} means --model-part {part}, not --model-part {args.model_part}")
        args.model_part = part
        if solver is not None and getattr(args, "solver", None) is None:
            args.solver = solver
        _note(verb, f"--sampler {sampler}", f"--model-part {part}" + (f" --solver {solver}" if solver else ""))
        args.sampler = None
    for old, flag in RENAMED_OPTIONS.items():
        _rename(args, verb, parser, old, flag)
    for old, part in RENAMED_SWITCHES.items():
        if getattr(args, old, None) and hasattr(args, "skip"):
            args.skip = [*args.skip, part]
            setattr(args, old, None)
            _note(verb, f"--{old.replace('_', '-')}", f"--skip {part}")
