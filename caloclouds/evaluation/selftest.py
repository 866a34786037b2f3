"""Perturbation self-test: how strongly each score reacts to known distortions of Geant4 showers.

``caloclouds evaluate --self-test REF.h5`` splits a Geant4 file into three disjoint samples of n
showers: A (the reference), B (the floor reference) and C. C is distorted in known ways and each
distorted copy is scored against A like a model, with the floor A vs B. The undistorted C is the
control: it should pass everything. The table shows what the evaluation can and cannot detect at
this sample size.

Distortions act on the points, before the projection onto cells:

* ``energy``: every point energy scaled by ``1 + amount`` (a calibration error);
* ``radial``: x and y scaled by ``1 + amount`` (a wider shower, about the nominal axis);
* ``depth``: each point moves one layer deeper with probability ``amount`` (layer 29 stays),
  a mean shift of about ``amount`` layers;
* ``core``: the core widened by ``amount`` mm: a point at distance r < R = 5 mm from the shower
  axis (x = y = 0) moves radially outward to ``r + amount * (1 - r / R)`` (points on the axis by
  ``amount``, at R and beyond not at all; monotone for amount < R; a point exactly on the axis
  moves in a random direction). Sub-cell-scale: a corner alignment, where four cells share the
  core, hides most of it; random impact positions should not.

For showers with a direction of incidence (``theta_deg``/``phi_deg``), ``radial`` and ``core`` act
about each shower's inclined axis, which at layer k sits ``depth_k tan(theta) (cos phi, sin phi)``
from x = y = 0 (``depth_k``: the middle of the detector's silicon layer k), as the evaluation
measures the radii.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from caloclouds.config import DEFAULT_EVALUATION, ILD_LIKE_DETECTOR, DetectorConfig, EvaluationConfig
from caloclouds.evaluation.options import ScoringOptions
from caloclouds.showers import Showers

__all__ = ["Perturbation", "DEFAULT_PERTURBATIONS", "perturb", "self_test", "self_test_rows"]

Kind = Literal["none", "energy", "radial", "depth", "core"]
KINDS: tuple[str, ...] = ("none", "energy", "radial", "depth", "core")
_LAST_LAYER = 29
CORE_RADIUS_MM = 5.0  # Radius within which the core perturbation moves points.


@dataclass(frozen=True)
class Perturbation:
    """A known distortion of Geant4 showers (see the module docstring)."""

    kind: Kind
    amount: float = 0.0  # Relative scale (energy, radial), probability (depth) or mm (core).

    @property
    def label(self) -> str:
        if self.kind == "none":
            return "none (control)"
        if self.kind == "depth":
            return f"depth +{self.amount:g} layers"
        if self.kind == "core":
            return f"core +{self.amount:g} mm"
        return f"{self.kind} {100 * self.amount:+g} %"


DEFAULT_PERTURBATIONS: tuple[Perturbation, ...] = (
    Perturbation("none"),
    Perturbation("energy", 0.02),
    Perturbation("radial", 0.02),
    Perturbation("radial", 0.05),
    Perturbation("depth", 0.3),
    Perturbation("core", 0.5),
)


def perturb(
    showers: Showers, perturbation: Perturbation, *, seed: int = 0, detector: DetectorConfig = ILD_LIKE_DETECTOR
) -> Showers:
    """A distorted copy of ``showers`` (the input is not changed); ``detector`` gives the layer depths
    of the inclined axis of showers with a direction."""
    points = showers.points.copy()
    axis_mm = None
    if showers.has_direction and perturbation.kind in ("radial", "core"):
        axis_mm = _inclined_axis_mm(showers, detector)
        points[:, :2] -= axis_mm
    if perturbation.kind == "energy":
        points[:, 3] *= np.float32(1.0 + perturbation.amount)
    elif perturbation.kind == "radial":
        points[:, :2] *= np.float32(1.0 + perturbation.amount)
    elif perturbation.kind == "depth":
        if not 0.0 <= perturbation.amount <= 1.0:
            raise ValueError(f"a depth perturbation is a probability in [0, 1], got {perturbation.amount}")
        rng = np.random.default_rng(seed)
        move = (rng.random(len(points)) < perturbation.amount) & (points[:, 2] < _LAST_LAYER)
        points[move, 2] += 1.0
    elif perturbation.kind == "core":
        _widen_core(points, perturbation.amount, np.random.default_rng(seed))
    elif perturbation.kind != "none":
        raise ValueError(f"unknown perturbation {perturbation.kind!r}; choose one of {', '.join(KINDS)}")
    if axis_mm is not None:
        points[:, :2] += axis_mm
    return Showers(points, showers.offsets.copy(), showers.incident_energy_gev.copy(), dict(showers.conditions))


def _inclined_axis_mm(showers: Showers, detector: DetectorConfig) -> np.ndarray:
    """(P, 2) float32 position of each point's shower axis in the point's layer (angled showers)."""
    from caloclouds.evaluation.observables import inclined_axis_slope

    layer = np.clip(np.floor(showers.layer).astype(np.int64), 0, detector.n_layers - 1)
    depth_mm = np.asarray(detector.layer_centre_z_mm, dtype=np.float64)[layer]
    slope = inclined_axis_slope(showers.theta_deg, showers.phi_deg)[showers.shower_index]
    return (depth_mm[:, None] * slope).astype(np.float32)


def _widen_core(points: np.ndarray, amount_mm: float, rng: np.random.Generator) -> None:
    """Move the points within CORE_RADIUS_MM of the axis outward in place (see the module docstring)."""
    if not 0.0 <= amount_mm < CORE_RADIUS_MM:
        raise ValueError(f"a core perturbation is a widening in [0, {CORE_RADIUS_MM:g}) mm, got {amount_mm}")
    x, y = points[:, 0].astype(np.float64), points[:, 1].astype(np.float64)
    r = np.hypot(x, y)
    inside = np.flatnonzero(r < CORE_RADIUS_MM)
    r_in = r[inside]
    new_r = r_in + amount_mm * (1.0 - r_in / CORE_RADIUS_MM)
    on_axis = r_in == 0.0
    angle = np.where(on_axis, rng.uniform(0.0, 2.0 * np.pi, len(inside)), np.arctan2(y[inside], x[inside]))
    points[inside, 0] = (new_r * np.cos(angle)).astype(np.float32)
    points[inside, 1] = (new_r * np.sin(angle)).astype(np.float32)


def self_test(
    showers: Showers,
    *,
    n: int | None = None,
    perturbations: Sequence[Perturbation] = DEFAULT_PERTURBATIONS,
    config: EvaluationConfig | None = None,
    detector: DetectorConfig = ILD_LIKE_DETECTOR,
    options: ScoringOptions | None = None,
    out_dir: Any = None,
    plots: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Score distorted Geant4 showers against Geant4, with the Geant4 floor.

    Args:
        showers: Geant4 showers (at least 3 n).
        n: showers per sample (default: a third of the file).
        perturbations: the distortions (the default set includes the undistorted control).
        config, detector, options: as for :func:`~caloclouds.evaluation.pipeline.evaluate`.
        out_dir: if given, the report of the run (scores.json, PNGs, report.html).
        plots: draw the PNGs (with ``out_dir``).
        progress: optional callback receiving one line per step.

    Returns:
        The :func:`~caloclouds.evaluation.pipeline.evaluate` result with one sample per
        perturbation label, plus ``"self_test"``: the perturbations as dicts.
    """
    from caloclouds.evaluation.pipeline import evaluate

    config = DEFAULT_EVALUATION if config is None else config
    n = len(showers) // 3 if n is None else n
    if n < 1 or 3 * n > len(showers):
        raise ValueError(f"the self-test needs 3 x {n} showers, the file holds {len(showers)}")
    labels = [p.label for p in perturbations]
    if len(set(labels)) != len(labels):
        raise ValueError(f"perturbations must differ, got {labels}")
    perm = np.random.default_rng(config.seed).permutation(len(showers))
    part_a, part_b, part_c = (showers[np.sort(perm[k * n : (k + 1) * n])] for k in range(3))
    distorted = {p.label: perturb(part_c, p, seed=config.seed, detector=detector) for p in perturbations}
    options = ScoringOptions() if options is None else options
    result = evaluate(
        part_a,
        distorted,
        config=config,
        detector=detector,
        options=replace(options, allow_spectrum_mismatch=False),
        floor_reference=part_b,
        out_dir=out_dir,
        reference_label="Geant4 A",
        plots=plots,
        progress=progress,
    )
    result["self_test"] = [{"label": p.label, "kind": p.kind, "amount": p.amount} for p in perturbations]
    return result


def _max_w1(sample: Mapping[str, Any]) -> tuple[str, float]:
    """The observable with the largest W1 ratio (bins grouped) and that ratio."""
    entries = {k: s for k, s in sample["w1"].items() if not k.startswith(("e_long_", "e_radial_"))}
    entries.update(sample["w1_groups"])
    name = max(entries, key=lambda k: entries[k]["ratio"])
    return name, float(entries[name]["ratio"])


def self_test_rows(result: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The self-test table: per perturbation, the largest W1 ratio, FPD/KPD ratios and both AUCs."""
    header = [
        "perturbation",
        "largest W1 ratio",
        "W1 radial profile",
        "FPD ratio",
        "KPD ratio",
        "AUC high-level",
        "AUC low-level",
        "verdict",
    ]
    floor = next(iter(result["samples"].values()))
    rows = [
        [
            "Geant4 floor (A vs B)",
            "1 (by definition)",
            "1",
            "1",
            "1",
            _auc(floor["auc"], value=True),
            _auc(floor.get("auc_low_level"), value=True),
            "",
        ]
    ]
    for p in result["self_test"]:
        s = result["samples"][p["label"]]
        name, ratio = _max_w1(s)
        rows.append(
            [
                p["label"],
                f"{ratio:.2f} ({name})",
                f"{s['w1']['radial_profile']['ratio']:.2f}",
                f"{s['fpd']['ratio']:.2f}",
                f"{s['kpd']['ratio']:.2f}",
                _auc(s["auc"]),
                _auc(s.get("auc_low_level")),
                "pass" if s["verdict"]["pass"] else f"FAIL ({len(s['verdict']['failed'])})",
            ]
        )
    return header, rows


def _auc(entry: Mapping[str, Any] | None, *, value: bool = False) -> str:
    if entry is None:
        return "-"
    return f"{entry['value']:.3f} ± {entry['error']:.3f}"
