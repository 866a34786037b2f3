"""Every score of one comparison of two equal-size samples, and the breakdown by energy.

:func:`score_pair` compares the reference side with one other side (the floor's Geant4 sample or
a model) and returns plain ``{"value", "error"}`` dicts; the pipeline then puts each next to the
floor (:func:`~caloclouds.evaluation.floor.with_floor`). The reference batches are drawn once per
sample size and shared by the floor and every model, so they are scored on exactly the same
reference showers, with the same batch size and number of batches.

Samples with a direction of incidence (``theta_deg``/``phi_deg``) give the classifiers the
conditions as well (``theta_deg, cos phi, sin phi`` next to the high-level features; the
low-level classifier beside its per-shower inputs): both samples are made at the same conditions,
so a classifier can only use them to judge the showers given their direction. FPD and KPD stay
on the shower features alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from caloclouds.config import EvaluationConfig
from caloclouds.evaluation.classifier import classifier_auc
from caloclouds.evaluation.floor import random_batches
from caloclouds.evaluation.lowlevel import low_level_auc
from caloclouds.evaluation.observables import (
    BinEdges,
    CellObservables,
    binned_energies,
    direction_features,
    high_level_features,
)
from caloclouds.evaluation.options import ScoringOptions
from caloclouds.evaluation.scores import (
    Observable,
    Score,
    batched_fpd,
    batched_kpd,
    batched_w1,
    fpd,
    kpd,
)

__all__ = ["Side", "Context", "make_side", "observable_table", "score_pair", "energy_bin_indices", "AUC_GROUPS"]


@dataclass(frozen=True)
class Side:
    """One sample of a comparison: its cell observables, W1 observables and high-level features,
    and its conditions for the classifiers (None: normal incidence, the features alone)."""

    obs: CellObservables
    table: dict[str, Observable]
    features: np.ndarray
    conditions: np.ndarray | None = None

    def classifier_input(self, columns: list[int] | None = None) -> np.ndarray:
        """The high-level features (or the ``columns`` of them) and, with a direction, the conditions."""
        features = self.features if columns is None else self.features[:, columns]
        return features if self.conditions is None else np.column_stack([features, self.conditions])

    def __len__(self) -> int:
        return len(self.obs)


@dataclass(frozen=True)
class Context:
    """What every comparison shares: settings, decile edges, the reference standardisation."""

    config: EvaluationConfig
    options: ScoringOptions
    edges: BinEdges
    scale: Mapping[str, tuple[float, float]]
    feature_names: tuple[str, ...]


def observable_table(obs: CellObservables, edges: BinEdges) -> dict[str, Observable]:
    """Every W1 observable of a sample, by name (per-shower scalars and per-hit profiles)."""
    longitudinal, radial = binned_energies(obs, edges)
    table = {
        "n_hits": Observable(obs.n_hits.astype(np.float64)),
        "e_ratio": Observable(obs.e_ratio),
        "cell_energy_mev": Observable(obs.hit_e_mev, obs.hit_offsets),
        "longitudinal_profile": Observable(obs.hit_layer.astype(np.float64), obs.hit_offsets, obs.hit_e_mev),
        "radial_profile": Observable(obs.hit_r_mm, obs.hit_offsets, obs.hit_e_mev),
        "cog_x_mm": Observable(obs.cog_mm[:, 0]),
        "cog_y_mm": Observable(obs.cog_mm[:, 1]),
        "cog_z_mm": Observable(obs.cog_mm[:, 2]),
    }
    table.update({f"e_long_{k}_mev": Observable(longitudinal[:, k]) for k in range(longitudinal.shape[1])})
    table.update({f"e_radial_{k}_mev": Observable(radial[:, k]) for k in range(radial.shape[1])})
    return table


def make_side(obs: CellObservables, edges: BinEdges) -> Side:
    return Side(obs, observable_table(obs, edges), high_level_features(obs, edges)[0], direction_features(obs))


def _grouped(w1: Mapping[str, Score]) -> dict[str, Score]:
    """The bin groups as in CaloClouds II Table 2: mean of the means, error sqrt(sum of err^2)."""
    out = {}
    for group, prefix in (("e_long_bins", "e_long_"), ("e_radial_bins", "e_radial_")):
        members = [s for k, s in w1.items() if k.startswith(prefix)]
        out[group] = Score(
            float(np.mean([s.value for s in members])),
            float(np.sqrt(np.sum([s.error**2 for s in members]))),
        )
    return out


def _w1(ref: Side, other: Side, ctx: Context) -> dict[str, Score]:
    """W1 over ``w1_draws`` random batch pairs of ``n // n_batches`` showers.

    The error is the std over batches divided by sqrt(n_batches), the number of independent
    batches the n showers hold.
    """
    n = len(ref)
    size = max(1, n // ctx.config.n_batches)
    draws = ctx.options.w1_draws
    scores = batched_w1(
        ref.table,
        other.table,
        scale=ctx.scale,
        reference_batches=random_batches(n, size=size, draws=draws, seed=ctx.config.seed),
        other_batches=random_batches(len(other), size=size, draws=draws, seed=ctx.config.seed + 1),
    )
    independent = np.sqrt(max(n / size, 1.0))
    return {k: Score(s.value, s.error / independent) for k, s in scores.items()}


def _pd(ref: Side, other: Side, ctx: Context) -> dict[str, Any]:
    """Fixed-size FPD and KPD (the floor-comparable scores) and the field's extrapolated FPD / unbiased KPD."""
    n = len(ref)
    size = max(2, n // ctx.options.pd_batch_divisor)
    draws = ctx.options.pd_draws
    batches = {
        "reference_batches": random_batches(n, size=size, draws=draws, seed=ctx.config.seed + 2),
        "other_batches": random_batches(len(other), size=size, draws=draws, seed=ctx.config.seed + 3),
        "pool_size": n,
    }
    f = batched_fpd(ref.features, other.features, **batches)
    k = batched_kpd(ref.features, other.features, degree=ctx.config.kpd_degree, **batches)
    min_s, max_s, kpd_batch = pd_sizes(min(len(ref), len(other)), ctx.config)
    f_inf = fpd(ref.features, other.features, min_samples=min_s, max_samples=max_s, seed=ctx.config.seed)
    k_unb = kpd(
        ref.features,
        other.features,
        batch_size=kpd_batch,
        num_batches=ctx.config.kpd_batches,
        degree=ctx.config.kpd_degree,
        seed=ctx.config.seed,
    )
    return {
        "fpd": {**f.to_dict(), "batch_size": size, "draws": draws},
        "kpd": {**k.to_dict(), "batch_size": size, "draws": draws, "degree": ctx.config.kpd_degree},
        "fpd_extrapolated": {**f_inf.to_dict(), "min_samples": min_s, "max_samples": max_s},
        "kpd_unbiased": {**k_unb.to_dict(), "batch_size": kpd_batch, "batches": ctx.config.kpd_batches},
    }


def pd_sizes(n: int, config: EvaluationConfig) -> tuple[int, int, int]:
    """FPD bootstrap sizes (smallest, largest) and the KPD batch size, clipped to ``n`` showers."""
    max_s = min(config.fpd_max_samples, n)
    min_s = max(2, min(config.fpd_min_samples, int(max_s * config.fpd_min_samples / config.fpd_max_samples)))
    return min_s, max_s, max(2, min(config.kpd_batch_size, n // 2))


#: The options of :func:`classifier_auc` that the evaluation config holds as ``classifier_<name>``.
CLASSIFIER_OPTIONS = ("folds", "hidden", "epochs", "batch_size", "learning_rate")


def _auc(real: np.ndarray, gen: np.ndarray, config: EvaluationConfig) -> dict[str, Any]:
    options = {name: getattr(config, f"classifier_{name}") for name in CLASSIFIER_OPTIONS}
    return classifier_auc(real, gen, seed=config.seed, **options).to_dict()


#: Feature subsets scored with the same classifier: they tell where a high AUC comes from.
AUC_GROUPS: dict[str, Callable[[str], bool]] = {
    "radial bins only": lambda name: name.startswith("e_radial_"),
    "without radial bins": lambda name: not name.startswith("e_radial_"),
}


def score_pair(
    ref: Side,
    other: Side,
    ctx: Context,
    *,
    low_level: bool = True,
    groups: bool = True,
    distances: bool = True,
) -> dict[str, Any]:
    """Every score of ``other`` against ``ref`` (two samples of the same size).

    Returns:
        ``{"w1", "w1_groups", "auc", "auc_groups", "auc_low_level", "fpd", "kpd",
        "fpd_extrapolated", "kpd_unbiased"}``, each score a ``{"value", "error", ...}`` dict
        (``auc_groups`` and ``auc_low_level`` only when asked for, FPD/KPD with ``distances``).
    """
    if (ref.conditions is None) != (other.conditions is None):
        raise ValueError(
            "one sample carries a direction of incidence (theta_deg, phi_deg) and the other not: "
            "give both samples the same conditions (caloclouds generate --conditions-from REF.h5)"
        )
    w1 = _w1(ref, other, ctx)
    out: dict[str, Any] = {
        "w1": {k: s.to_dict() for k, s in w1.items()},
        "w1_groups": {k: s.to_dict() for k, s in _grouped(w1).items()},
        "auc": _auc(ref.classifier_input(), other.classifier_input(), ctx.config),
    }
    if groups:
        out["auc_groups"] = {}
        for group, keep in AUC_GROUPS.items():
            cols = [i for i, name in enumerate(ctx.feature_names) if keep(name)]
            out["auc_groups"][group] = _auc(ref.classifier_input(cols), other.classifier_input(cols), ctx.config)
    if low_level and ctx.options.low_level is not None:
        out["auc_low_level"] = low_level_auc(ref.obs, other.obs, config=ctx.options.low_level).to_dict()
    if distances:
        out.update(_pd(ref, other, ctx))
    return out


def energy_bin_indices(
    energies_gev: list[np.ndarray], lo_gev: float, hi_gev: float, *, seed: int, closed: bool = False
) -> list[np.ndarray]:
    """Equal-size shower indices in ``[lo, hi)`` GeV (``[lo, hi]`` if ``closed``: the last range, so
    that showers at exactly the top energy, e.g. the 90 GeV of a fixed-energy file, are counted) for
    each sample: the smallest count of them all."""
    inside = [np.flatnonzero((e >= lo_gev) & ((e <= hi_gev) if closed else (e < hi_gev))) for e in energies_gev]
    n = min(len(i) for i in inside)
    rng = np.random.default_rng(seed)
    return [np.sort(rng.permutation(i)[:n]) for i in inside]
