"""Write to a temporary file next to the target, then rename: never a half-written final file.

Temporary names are ``.NAME.PID-K.tmp`` in the target's folder (PID of the writing process, K a
per-process counter), so two writers of one path never share a temporary file: each finishes its
own, and the last rename wins, atomically. A run removes the temporary files of the same target left
by processes that no longer exist (killed by SIGKILL, power loss), so they never pile up.

:func:`install_termination_handler` (called by the CLI) turns SIGTERM into :class:`Terminated`, a
``KeyboardInterrupt``, so a terminated run cleans up exactly as Ctrl-C does.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from caloclouds.errors import CaloCloudsError, Terminated

__all__ = [
    "AtomicWriter",
    "atomic_path",
    "temp_path_for",
    "remove_stale_temps",
    "check_output_path",
    "install_termination_handler",
    "raise_if_signalled",
    "rename_unless_signalled",
    "restore_termination_handler",
]

_COUNTER = itertools.count()
LEGACY_TEMP_AGE_S = 3600.0  # a temp file without a PID (older versions) is stale after this long


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Remove temporary files of ``path`` whose writing process is gone; returns the removed paths."""
    path = Path(path)
    removed = []
    try:
        candidates = list(path.parent.glob(f".{glob_escape(path.name)}.*tmp"))
    except OSError:
        return removed
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(?:(?P<pid>\d+)(?:-\d+)?\.)?tmp$")
    for tmp in candidates:
        match = pattern.match(tmp.name)
        if not match:
            continue
        if match["pid"] is not None:
            stale = not _pid_alive(int(match["pid"]))
        else:
            try:
                stale = time.time() - tmp.stat().st_mtime > LEGACY_TEMP_AGE_S
            except OSError:
                continue
        if stale:
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def temp_path_for(path: str | Path) -> Path:
    """A fresh temporary name next to ``path`` (``.NAME.PID-K.tmp``); stale ones are removed first."""
    path = Path(path)
    remove_stale_temps(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{next(_COUNTER)}.tmp")


def check_output_path(
    path: str | Path, *, suffixes: tuple[str, ...] | None = None, option: str = "output", overwrite: bool = True
) -> Path:
    """Check that ``path`` can be written, before any work starts; create a missing folder.

    Args:
        overwrite: False: an existing file is an error (the commands pass their ``--overwrite``).

    Raises:
        CaloCloudsError: the path is a folder, exists without ``overwrite``, its folder cannot be made
            or written, or the suffix is not one of ``suffixes``. The message names the option and the path.
    """
    path = Path(path)
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise CaloCloudsError(f"{option} {path}: unknown extension {path.suffix!r}; use one of {', '.join(suffixes)}")
    if path.is_dir():
        raise CaloCloudsError(f"{option} {path}: is a folder, expected a file name")
    if path.exists() and not path.is_file():
        raise CaloCloudsError(f"{option} {path}: exists and is not a regular file (a pipe or device?)")
    if path.exists() and not overwrite:
        raise CaloCloudsError(f"{option} {path} exists; pass --overwrite to replace it")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise CaloCloudsError(f"{option} {path}: {folder} is not a folder") from None
    except OSError as exc:
        raise CaloCloudsError(f"{option} {path}: cannot create the folder {folder} ({exc.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CaloCloudsError(f"{option} {path}: the folder {folder} is not writable")
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it to ``path`` on success.

    On any exception (including KeyboardInterrupt and SIGTERM under the CLI) the temporary file is
    removed and the previous content of ``path``, if any, is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        yield tmp
        rename_unless_signalled(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class AtomicWriter:
    """Context-manager behaviour of the chunked file writers.

    A subclass writes into ``temp_path_for(path)`` and implements ``close()`` (finish it and move it
    to the final name with :func:`rename_unless_signalled`) and ``abort()`` (drop it, leaving the
    final name untouched). Leaving the ``with`` block normally closes; leaving it by an exception
    (Ctrl-C and SIGTERM included) aborts.
    """

    def close(self) -> None:  # pragma: no cover - always overridden
        raise NotImplementedError

    def abort(self) -> None:  # pragma: no cover - always overridden
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            try:
                self.close()  # its last step, rename_unless_signalled, stops on a lost signal
            except BaseException:
                self.abort()
                raise
        else:
            self.abort()


# Signals received by this process since the CLI installed its handlers. A handler's exception can be
# swallowed when it fires inside a weakref callback or __del__ (h5py's object registry): Python
# prints "Exception ignored" and goes on. Writers therefore check this record before they rename.
_RECEIVED: list[int] = []


def _raise_terminated(signum: int, frame: object) -> None:
    _RECEIVED.append(signum)
    raise Terminated(f"signal {signum}")


def _raise_interrupted(signum: int, frame: object) -> None:
    _RECEIVED.append(signum)
    raise KeyboardInterrupt


def raise_if_signalled() -> None:
    """Raise :class:`Terminated` (SIGTERM) or ``KeyboardInterrupt`` (SIGINT) if such a signal arrived
    and its exception was lost; called by the writers before they replace their output."""
    if signal.SIGTERM in _RECEIVED:
        raise Terminated(f"signal {int(signal.SIGTERM)}")
    if signal.SIGINT in _RECEIVED:
        raise KeyboardInterrupt


def rename_unless_signalled(tmp: Path, path: Path) -> None:
    """The last step of a writer's close: rename ``tmp`` to ``path``, unless a lost SIGTERM/SIGINT is
    pending, in which case ``tmp`` is removed and the signal's exception raised."""
    try:
        raise_if_signalled()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)


def install_termination_handler() -> Any:
    """Make SIGTERM raise :class:`Terminated` (a KeyboardInterrupt) in the main thread.

    Writers then drop their temporary files as on Ctrl-C. A handler installed later (a training
    loop that checkpoints on SIGTERM) takes precedence. Returns the previous handler, for
    :func:`restore_termination_handler`.
    """
    _RECEIVED.clear()
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_DFL:
        with contextlib.suppress(ValueError):  # not the main thread
            signal.signal(signal.SIGTERM, _raise_terminated)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGINT, _raise_interrupted)
    return previous


def restore_termination_handler(previous: Any) -> None:
    """Put back the SIGTERM handler that :func:`install_termination_handler` replaced; the signals
    received meanwhile have ended that run and are forgotten."""
    _RECEIVED.clear()
    if previous is not None and signal.getsignal(signal.SIGTERM) is _raise_terminated:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, previous)
    if signal.getsignal(signal.SIGINT) is _raise_interrupted:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGINT, signal.default_int_handler)
