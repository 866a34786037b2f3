"""Write to a temporary file next to the target, then rename: never a half-written final file."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["AtomicWriter", "atomic_path"]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it to ``path`` on success.

    On any exception (including KeyboardInterrupt) the temporary file is removed and the
    previous content of ``path``, if any, is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class AtomicWriter:
    """Context-manager behaviour of the chunked file writers.

    A subclass writes into a temporary file and implements ``close()`` (finish it and rename it to
    the final name) and ``abort()`` (drop it, leaving the final name untouched). Leaving the
    ``with`` block normally closes; leaving it by an exception (Ctrl-C included) aborts.
    """

    def close(self) -> None:  # pragma: no cover - always overridden
        raise NotImplementedError

    def abort(self) -> None:  # pragma: no cover - always overridden
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
