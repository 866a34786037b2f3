"""The equal-size Geant4 floor: sample plans, random batches and score-to-floor ratios.

Every distance between finite samples is positive even for two perfect samples of one
distribution, and how large it is depends on the sample size. A model is therefore judged by the
ratio of its score to the **floor**, the same score between two independent Geant4 samples of
exactly the same size, drawn and batched the same way: a perfect model scores a ratio of 1.

* :func:`plan_samples` chooses the showers: with an independent Geant4 file (the floor
  reference), the reference, the floor reference and every model are cut to one common size n;
  without one, the reference is split into halves A and B and the floor is A vs B, while every
  model is scored against A on n showers too (n = the half size or the model size, the smaller);
  with ``floor_halves``, the floor is two disjoint halves of the floor reference, independent of
  the reference (e.g. two halves of ``g4_photons_angled_train.h5`` for an angled validation file),
  while every model is scored against the reference.
* :func:`random_batches` draws the batches of the batched scores: many random batches of
  ``n // n_batches`` showers, so that the mean over batches (and so the ratio) is stable.
* :func:`with_floor` puts ``value``, ``floor``, ``ratio`` and ``pass`` side by side.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["Thresholds", "SamplePlan", "plan_samples", "random_batches", "with_floor", "floor_entry"]

ScoreKind = Literal["distance", "auc", "auc_low_level"]


@dataclass(frozen=True)
class Thresholds:
    """Pass/fail limits of the scores.

    A distance (W1, FPD, KPD) passes when its ratio to the Geant4 floor is within ``max_ratio`` by
    its error: ``ratio - ratio_error <= max_ratio``; two independent Geant4 samples of 1000 showers
    give ratios of 0.7-1.4 (README). A classifier passes when ``AUC - error <= max_auc`` (the
    error: the std of the AUC over the classifier folds); the low-level classifier is judged
    against ``max_auc_low_level`` (None: ``max_auc``).
    """

    max_ratio: float = 1.6  # Largest passing ratio score / Geant4 floor of a distance.
    max_auc: float = 0.6  # Largest passing classifier AUC (0.5: indistinguishable).
    max_auc_low_level: float | None = None  # Largest passing low-level AUC (None: max_auc).

    def __post_init__(self) -> None:
        if not self.max_ratio > 0:
            raise ValueError(f"max_ratio must be > 0, got {self.max_ratio}")
        for name in ("max_auc", "max_auc_low_level"):
            value = getattr(self, name)
            if value is not None and not 0.5 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0.5, 1], got {value}")

    @property
    def low_level_auc(self) -> float:
        """The limit of the low-level classifier's AUC."""
        return self.max_auc if self.max_auc_low_level is None else self.max_auc_low_level


@dataclass(frozen=True)
class SamplePlan:
    """Which showers take part: all index arrays have the common size ``n``.

    Attributes:
        n: showers on each side of every comparison.
        reference: indices into the reference of the side every sample is compared with.
        floor: indices into the floor sample (the floor reference, or the reference's half B).
        generated: label -> indices into each generated sample.
        floor_from: ``"floor reference"``, ``"reference halves"`` or ``"floor reference halves"``.
        floor_base: with ``"floor reference halves"``, indices into the floor reference of the half
            the floor sample is compared with (disjoint from ``floor``); else None (the floor is
            compared with ``reference``).
    """

    n: int
    reference: np.ndarray
    floor: np.ndarray
    generated: dict[str, np.ndarray]
    floor_from: str
    floor_base: np.ndarray | None = None


def _subset(n_total: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """n sorted random indices out of n_total."""
    return np.sort(rng.permutation(n_total)[:n])


def plan_samples(
    n_reference: int,
    n_generated: Mapping[str, int],
    *,
    n_floor_reference: int | None = None,
    seed: int = 42,
    floor_halves: bool = False,
) -> SamplePlan:
    """Equal-size samples for the floor and for every model.

    Args:
        n_reference: showers in the reference.
        n_generated: label -> showers in each generated sample.
        n_floor_reference: showers in the independent floor reference (None: use reference halves).
        seed: seed of the random choice of showers.
        floor_halves: the floor is two disjoint halves of the floor reference (which is then required).

    Returns:
        The :class:`SamplePlan`.
    """
    rng = np.random.default_rng(seed)
    if floor_halves:
        if n_floor_reference is None:
            raise ValueError("floor_halves needs a floor reference: the floor is two halves of it")
        half = n_floor_reference // 2
        n = min([n_reference, half, *n_generated.values()])
        reference = _subset(n_reference, n, rng)
        perm = rng.permutation(n_floor_reference)
        floor_base, floor = np.sort(perm[:half][:n]), np.sort(perm[half : 2 * half][:n])
        generated = {label: _subset(size, n, rng) for label, size in n_generated.items()}
        return SamplePlan(int(n), reference, floor, generated, "floor reference halves", floor_base)
    if n_floor_reference is None:
        perm = rng.permutation(n_reference)
        half = n_reference // 2
        n = min([half, *n_generated.values()])
        reference, floor = np.sort(perm[:half][:n]), np.sort(perm[half : 2 * half][:n])
        floor_from = "reference halves"
    else:
        n = min([n_reference, n_floor_reference, *n_generated.values()])
        reference, floor = _subset(n_reference, n, rng), _subset(n_floor_reference, n, rng)
        floor_from = "floor reference"
    generated = {label: _subset(size, n, rng) for label, size in n_generated.items()}
    return SamplePlan(n=int(n), reference=reference, floor=floor, generated=generated, floor_from=floor_from)


def random_batches(n: int, *, size: int, draws: int, seed: int) -> list[np.ndarray]:
    """``draws`` random batches of ``size`` distinct indices out of ``range(n)`` (sorted each)."""
    if not 1 <= size <= n:
        raise ValueError(f"batch size must be in [1, {n}], got {size}")
    rng = np.random.default_rng(seed)
    picks = np.argsort(rng.random((draws, n)), axis=1)[:, :size]  # each row: a draw without replacement
    return list(np.sort(picks, axis=1))


def floor_entry(score: Mapping[str, Any], *, kind: ScoreKind) -> dict[str, Any]:
    """The floor's own entry: its value is its floor, ratio 1, no pass/fail."""
    return with_floor(score, score, kind=kind, thresholds=None)


def with_floor(
    score: Mapping[str, Any],
    floor: Mapping[str, Any],
    *,
    kind: ScoreKind,
    thresholds: Thresholds | None,
) -> dict[str, Any]:
    """A score next to its floor: ``value, error, floor, floor_error, ratio, ratio_error, pass``.

    Args:
        score: ``{"value", "error", ...}`` of a model (other keys are kept).
        floor: ``{"value", "error"}`` of the same score between two Geant4 samples.
        kind: ``"distance"`` (passes on the ratio) or ``"auc"`` / ``"auc_low_level"`` (on the value).
        thresholds: the limits; None gives ``pass = None`` (e.g. for the floor itself).

    A score passes when it is within its limit by its error (:class:`Thresholds`):
    ``value - error <= limit`` for an AUC, ``ratio - ratio_error <= limit`` for a distance; the
    entry records the ``limit``.
    """
    value, error = float(score["value"]), float(score["error"])
    f_value, f_error = float(floor["value"]), float(floor["error"])
    if f_value > 0 and np.isfinite(f_value) and np.isfinite(value):
        ratio = value / f_value
        ratio_error = abs(ratio) * float(np.hypot(error / value if value else 0.0, f_error / f_value))
    else:
        ratio = ratio_error = float("nan")
    passed: bool | None = None
    limit: float | None = None
    if thresholds is not None:
        if kind == "distance":
            limit = thresholds.max_ratio
            passed = bool(ratio - (ratio_error if np.isfinite(ratio_error) else 0.0) <= limit)
        else:
            limit = thresholds.max_auc if kind == "auc" else thresholds.low_level_auc
            passed = bool(value - (error if np.isfinite(error) else 0.0) <= limit)
    return {
        **dict(score),
        "value": value,
        "error": error,
        "floor": f_value,
        "floor_error": f_error,
        "ratio": float(ratio),
        "ratio_error": float(ratio_error),
        "pass": passed,
        "limit": limit,
    }
