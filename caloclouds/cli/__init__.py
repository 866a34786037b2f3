"""The ``caloclouds`` command: a thin dispatcher over one module per verb.

Each verb lives in ``caloclouds/cli/<module>.py`` with two functions:

* ``add_arguments(parser: argparse.ArgumentParser) -> None``
* ``run(args: argparse.Namespace) -> int`` (the exit code)

A verb's module (and with it torch and friends) is imported only when that verb runs, so
``caloclouds --help`` is instant. Errors a user can fix (:class:`CaloCloudsError`) are printed as
one line without a traceback, with exit code 2. Set ``CALOCLOUDS_DEBUG=1`` for the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys
import warnings
from collections.abc import Callable

from caloclouds.cli.options import add_threads_argument, apply_deprecated, apply_threads

__all__ = ["DEPRECATED_VERBS", "SECTIONS", "VERBS", "main", "verb_parser"]

# verb -> (module under caloclouds.cli, one-line summary shown by `caloclouds --help`)
VERBS: dict[str, tuple[str, str]] = {
    "info": ("info", "summarise a shower file: showers, energies, points, visible energy"),
    "convert": ("convert", "convert EDM4hep ROOT, CaloClouds HDF5 or raw Geant4 steps to our HDF5/ROOT"),
    "project": ("project", "bin point-cloud showers into the cells of a geometry (ILD, HGCal, hex, file)"),
    "plot-shower": ("plot_shower", "draw one shower layer by layer on the cells of a geometry"),
    "voxelize": ("voxelize", "bin showers into a cylindrical voxel mesh and write CaloChallenge HDF5"),
    "train-flow": ("train_flow", "train the Shower Flow on a shower file"),
    "check-flow": ("check_flow", "compare Shower Flow samples with a reference file (standardised W1)"),
    "train-diffusion": ("train_diffusion", "train the PointWise Net EDM teacher"),
    "distill": ("distill", "distil the EDM teacher into a one-step consistency model"),
    "train-voxel": ("train_voxel", "train the voxel (CaloChallenge-style U-Net) diffusion model, or distil it"),
    "bundle": ("bundle", "assemble, validate and calibrate a model bundle from training runs"),
    "calibrate": ("calibrate", "fit the radial, N-points and point-energy calibrations of a bundle on Geant4"),
    "generate": ("generate", "generate showers with a model bundle to ROOT or HDF5"),
    "bench": ("bench", "measure speed: generation end to end (default), or bench flow|diffusion|projection|all"),
    "produce": ("produce", "large productions: resumable shards on a Dask cluster (local, Slurm, HTCondor)"),
    "merge": ("merge", "merge the shards of a production folder into one shower file"),
    "evaluate": ("evaluate", "cell-level validation against Geant4: W1, classifier AUC, FPD/KPD, report"),
    "export": ("export", "export a model bundle for DDML/Geant4: TorchScript (libtorch) or ONNX"),
}

# the table of contents of `caloclouds --help`: every verb once, in the order of the work
SECTIONS: dict[str, tuple[str, ...]] = {
    "data": ("info", "convert", "project", "plot-shower", "voxelize"),
    "training": ("train-flow", "check-flow", "train-diffusion", "distill", "train-voxel", "bundle", "calibrate"),
    "generation": ("generate", "bench"),
    "production": ("produce", "merge"),
    "evaluation": ("evaluate",),
    "export": ("export",),
}

# old verb -> the verb and arguments that replaced it (still accepted, with a note)
DEPRECATED_VERBS: dict[str, tuple[str, ...]] = {
    "bench-flow": ("bench", "flow"),
    "bench-diffusion": ("bench", "diffusion"),
    "bench-projection": ("bench", "projection"),
}


def _top_parser() -> argparse.ArgumentParser:
    width = max(len(v) for v in VERBS)
    contents = "\n\n".join(
        f"{section}:\n" + "\n".join(f"  {verb:<{width}}  {VERBS[verb][1]}" for verb in verbs)
        for section, verbs in SECTIONS.items()
    )
    return argparse.ArgumentParser(
        prog="caloclouds",
        usage="caloclouds VERB [options]",
        description="Fast calorimeter shower simulation with generative point-cloud models.",
        epilog=f"{contents}\n\nRun `caloclouds VERB --help` for the options of one verb.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _check_device(spec: str) -> None:
    """Fail early, in one line, on a device torch does not know or this machine does not have."""
    import torch

    from caloclouds.errors import CaloCloudsError

    try:
        device = torch.device(spec)
    except RuntimeError:
        raise CaloCloudsError(f"--device {spec!r} is not a torch device; use cpu or cuda (cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CaloCloudsError(
            f"--device {spec}: no CUDA device is available here (torch {torch.__version__}); use --device cpu"
        )
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise CaloCloudsError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) present")


def _warning_printer(verb: str) -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints ``caloclouds VERB: warning: MESSAGE`` with tqdm's
    ``write``, so that it lands above a progress bar instead of inside it."""

    def show(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
        from tqdm import tqdm

        tqdm.write(f"caloclouds {verb}: warning: {message}", file=sys.stderr)

    return show


def verb_parser(verb: str, module: object | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``caloclouds VERB``: the verb's own options and ``--threads``."""
    module_name, summary = VERBS[verb]
    module = importlib.import_module(f"caloclouds.cli.{module_name}") if module is None else module
    parser = argparse.ArgumentParser(
        prog=f"caloclouds {verb}",
        description=(module.__doc__ or summary).strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(parser)  # type: ignore[attr-defined]
    if "--threads" not in parser._option_string_actions:  # every verb takes --threads (default 1)
        add_threads_argument(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    top = _top_parser()
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0 if argv else 2
    if argv[0] == "--version":
        from caloclouds import __version__

        print(f"caloclouds {__version__}")
        return 0
    verb, rest = argv[0], argv[1:]
    if verb in DEPRECATED_VERBS:
        new_verb, *words = DEPRECATED_VERBS[verb]
        print(
            f"caloclouds {verb}: note: {verb} is deprecated; use caloclouds {shlex.join(DEPRECATED_VERBS[verb])}",
            file=sys.stderr,
        )
        verb, rest = new_verb, [*words, *rest]
    if verb not in VERBS:
        top.print_usage(sys.stderr)
        print(f"caloclouds: error: unknown verb {verb!r}; valid verbs are: {', '.join(VERBS)}", file=sys.stderr)
        return 2
    module_name, summary = VERBS[verb]
    try:
        module = importlib.import_module(f"caloclouds.cli.{module_name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"caloclouds.cli.{module_name}":
            print(f"caloclouds: error: verb {verb!r} is not implemented yet", file=sys.stderr)
            return 2
        raise
    parser = verb_parser(verb, module)
    args = parser.parse_args(rest)

    from caloclouds.errors import CaloCloudsError, Terminated
    from caloclouds.io.atomic import install_termination_handler, restore_termination_handler
    from caloclouds.memory import keep_freed_memory

    keep_freed_memory()  # the command owns its process: freed tensors are reused, not faulted in again
    previous = install_termination_handler()  # SIGTERM cleans up temporary files as Ctrl-C does
    previous_showwarning = warnings.showwarning
    warnings.showwarning = _warning_printer(verb)  # one line above any progress bar, not Python's file:line form
    try:
        args.threads = apply_threads(args.threads)
        apply_deprecated(args, verb, parser)
        args.command = shlex.join(["caloclouds", verb, *rest])  # for provenance records
        if getattr(args, "device", None) not in (None, "numpy"):
            _check_device(args.device)
        return int(module.run(args) or 0)
    except CaloCloudsError as exc:
        if os.environ.get("CALOCLOUDS_DEBUG"):
            raise
        print(f"caloclouds {verb}: error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print(f"caloclouds {verb}: terminated (SIGTERM); no partial output was left", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"caloclouds {verb}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # output piped into e.g. `head`, which closed early: not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except MemoryError:
        if os.environ.get("CALOCLOUDS_DEBUG"):
            raise
        print(f"caloclouds {verb}: error: out of memory (try a smaller --batch-size or --chunk)", file=sys.stderr)
        return 2
    except OSError as exc:
        if os.environ.get("CALOCLOUDS_DEBUG"):
            raise
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"caloclouds {verb}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    finally:
        warnings.showwarning = previous_showwarning
        restore_termination_handler(previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
