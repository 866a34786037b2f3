"""Control of long training runs, shared by every training verb (flow, PointWise Net, distillation).

* :class:`StopRequest`: SIGTERM / SIGINT become a request to stop at the next step boundary, where
  the run writes an exact checkpoint (a signal never interrupts a step or a validation half-way);
* :func:`parse_duration`: ``--time-budget 2h30m``;
* :func:`cosine_lr` and :func:`set_lr`: the learning-rate schedules (a pure function of the step, so
  a resumed run follows the same schedule);
* :func:`write_metrics_csv` and :func:`write_curve_png`: the loss and validation curves of a run,
  written atomically next to its checkpoints.
"""

from __future__ import annotations

import csv
import io
import math
import re
import signal
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from caloclouds.errors import ConfigError
from caloclouds.io.atomic import atomic_path

__all__ = [
    "StopRequest",
    "cosine_lr",
    "format_duration",
    "parse_duration",
    "set_lr",
    "write_metrics_csv",
    "write_curve_png",
]


class StopRequest:
    """Turns SIGTERM and SIGINT into a request to stop after the current step (then checkpoint).

    Used as a context manager around the step loop; the previous handlers come back on exit. Only
    the main thread may install handlers, elsewhere (tests, notebooks' worker threads) it is inert.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, without the checkpoint
        self.signum = signum

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    @property
    def requested(self) -> bool:
        return self.signum is not None


def parse_duration(text: str) -> float:
    """Seconds of a duration such as ``2h30m``, ``90m``, ``45s`` or ``3600`` (seconds)."""
    t = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        seconds = float(t)
    else:
        parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", t)
        if not t or parts is None or not any(parts.groups()):
            raise ConfigError(f"cannot read the duration {text!r}; write e.g. 2h30m, 90m, 45s or 3600")
        h, m, sec = (float(g) if g else 0.0 for g in parts.groups())
        seconds = 3600 * h + 60 * m + sec
    if seconds <= 0:
        raise ConfigError(f"the duration must be positive, got {text!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """A duration for people: ``42.0 s``, ``12.5 min`` or ``2.31 h`` (never ``0.00 h``)."""
    if not math.isfinite(seconds):
        return "? s"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def cosine_lr(progress: float, learning_rate: float, final_lr_factor: float) -> float:
    """A cosine from ``learning_rate`` (progress 0) to ``learning_rate * final_lr_factor`` (progress >= 1)."""
    progress = min(progress, 1.0)
    factor = final_lr_factor + (1 - final_lr_factor) * 0.5 * (1 + math.cos(math.pi * progress))
    return learning_rate * factor


def set_lr(optimiser: Any, lr: float) -> None:
    """Give every parameter group of a torch optimiser the learning rate ``lr``."""
    for group in optimiser.param_groups:
        group["lr"] = lr


def write_metrics_csv(path: Path, rows: Sequence[Mapping[str, float]], columns: Sequence[str]) -> None:
    """The rows (one per checkpoint or evaluation) as a CSV file, atomically; ``step`` as an integer."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({**r, "step": int(r["step"])} if "step" in r else r for r in rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())


def write_curve_png(path: Path, rows: Sequence[Mapping[str, float]], title: str, series: Mapping[str, str]) -> None:
    """Loss curves against ``step``: one line per ``series`` column (key -> legend label), log y,
    the run's total training time in the title when the rows carry ``elapsed_s``. Atomic."""
    if not rows:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in series.items():
        values = [float(r.get(key, math.nan)) for r in rows]
        if any(math.isfinite(v) for v in values):
            ax.plot(steps, values, marker="o" if "val" in key else None, ms=3, label=label)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss")
    if all(float(r.get(k, math.nan)) > 0 for r in rows for k in series if math.isfinite(float(r.get(k, math.nan)))):
        ax.set_yscale("log")
    seconds = float(rows[-1].get("elapsed_s", math.nan))
    ax.set_title(
        f"{title}: {int(steps[-1])} steps" + (f", {format_duration(seconds)}" if math.isfinite(seconds) else "")
    )
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
