"""Option groups that several verbs share, written once, and the one shim for deprecated spellings.

Every verb gets ``--threads`` from :func:`caloclouds.cli.main` (added where the verb has none of its
own); verbs that write files add ``--overwrite`` with :func:`add_overwrite_argument`. Old spellings
of renamed options are still parsed (hidden from ``--help``) and mapped to the new ones by
:func:`apply_deprecated`, which :func:`caloclouds.cli.main` calls for every verb.
"""

from __future__ import annotations

import argparse
import os
import sys

__all__ = [
    "DEFAULT_THREADS",
    "add_overwrite_argument",
    "add_threads_argument",
    "apply_deprecated",
    "apply_threads",
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


# --sampler NAME (deprecated) -> (--model-part, --solver or None for the part's default)
_SAMPLER_ALIASES = {"cm": ("cm", None), "edm": ("teacher", "heun")}


def _note(verb: str, old: str, new: str) -> None:
    print(f"caloclouds {verb}: note: {old} is deprecated; use {new}", file=sys.stderr)


def apply_deprecated(args: argparse.Namespace, verb: str) -> None:
    """Map the deprecated spellings in ``args`` onto the options that replaced them, in place, with a
    one-line note on stderr for each; the verbs read only the new names.

    * ``--sampler cm|edm``: ``--model-part cm`` / ``--model-part teacher --solver heun``.

    Raises:
        ConfigError: an old spelling that contradicts the new option given beside it.
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
