"""One-call evaluation of generated showers against a Geant4 reference, next to the Geant4 floor.

:func:`evaluate` checks that every sample has the reference's incident-energy spectrum (KS test),
projects every sample onto the cells of the evaluation geometry, applies the cell threshold,
computes the observables and the 25 high-level features, and scores each generated sample against
the reference: W1 per observable, the high-level and the low-level classifier AUC, FPD and KPD.

**The floor.** Every score is also computed between two independent Geant4 samples of exactly the
size at which the models are scored, with the same batching (:mod:`~caloclouds.evaluation.floor`):

* with ``floor_reference`` (an independent Geant4 file), the floor is reference vs floor reference
  and a model is reference vs model, all cut to one common size n;
* without it, the reference is split into halves A and B; the floor is A vs B, and a model is
  scored against A with n showers as well.

Each score is stored with ``value``, ``floor``, ``ratio`` (value / floor) and ``pass``; a perfect
model has ratios near 1. Scores are also broken down by incident energy (10-30, 30-60, 60-90 GeV
by default), with the same equal-size floor in each range.

With ``config.voxel_mesh`` set (e.g. ``"ds2"``), every sample is also voxelised onto that
cylindrical mesh and the FPD/KPD of the CaloChallenge high-level features are computed in voxel
space (``voxel_space`` in the result).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from caloclouds.config import DEFAULT_EVALUATION, ILD_LIKE_DETECTOR, DetectorConfig, EvaluationConfig
from caloclouds.evaluation.comparison import (
    Context,
    Side,
    energy_bin_indices,
    make_side,
    observable_table,
    pd_sizes,
    score_pair,
)
from caloclouds.evaluation.floor import floor_entry, plan_samples, with_floor
from caloclouds.evaluation.impact import impact_offsets, impact_rng, reference_cell, shifted
from caloclouds.evaluation.observables import (
    CellObservables,
    compute_observables,
    decile_edges,
    high_level_features,
    inclined_axis_slope,
)
from caloclouds.evaluation.options import ScoringOptions
from caloclouds.evaluation.scores import standardisation
from caloclouds.evaluation.spectrum import (
    ANGLES,
    THETA_BINS_DEG,
    check_angle_spectra,
    check_spectra,
    energy_bin_label,
    theta_bin_label,
)
from caloclouds.showers import Showers

__all__ = ["FLOOR_LABEL", "FORMAT_VERSION", "cell_observables", "observable_table", "evaluate"]

FLOOR_LABEL = "Geant4 floor"
FORMAT_VERSION = 2

#: Keys of ``score_pair`` results that are single scores, by kind (distance: judged on the ratio).
_DISTANCES = ("fpd", "kpd")
_AUCS = ("auc", "auc_low_level")


def cell_observables(
    showers: Showers,
    *,
    config: EvaluationConfig,
    detector: DetectorConfig = ILD_LIKE_DETECTOR,
    geometry: Any = None,
    impact: str = "corner",
    stream: int = 0,
) -> CellObservables:
    """Project showers onto the evaluation cells, apply the threshold, compute the observables.

    Args:
        showers: showers with integer layers (the ``layer`` column is the shower layer).
        config: the evaluation settings (geometry, radial axis, the seed of the impact positions).
        detector: the showers' detector (layer count and depths, cell pitch, MIP and threshold).
        geometry: an already loaded ``projection`` geometry (default: ``config.geometry`` for ``detector``).
        impact: where each shower's axis hits the cells: ``"random"``, ``"corner"`` (x = y = 0 on the
            ILD grid) or ``"centre"`` (:mod:`~caloclouds.evaluation.impact`).
        stream: the sample's stream of random impact positions (0 the reference, 1 the floor
            reference, 2 + k the k-th generated sample).

    Returns:
        The :class:`CellObservables`, with x, y, the CoG and the radii measured from each shower's axis.
        Showers with a direction (``theta_deg``/``phi_deg``) have their radii measured about the
        inclined axis through the impact point, and keep the direction for the classifiers.
    """
    import projection

    geometry = projection.get_geometry(config.geometry, detector=detector) if geometry is None else geometry
    cell = reference_cell(geometry)
    axis_mm = impact_offsets(cell, impact, len(showers), rng=impact_rng(config.seed, stream))
    hits = projection.project(  # the threshold rule of generate --cells and project --threshold-mip
        shifted(showers, axis_mm),
        geometry,
        threshold_mip=detector.cell_threshold_mip,
        mip_mev=detector.mip_mev,
        n_shower_layers=detector.n_layers,
    )
    direction = (showers.theta_deg, showers.phi_deg) if showers.has_direction else None
    return compute_observables(
        hits,
        showers.incident_energy_gev,
        n_layers=int(geometry.n_layers),
        axis=config.radial_axis,
        axis_mm=axis_mm if axis_mm.any() else None,
        axis_slope=None if direction is None else inclined_axis_slope(*direction),
        direction_deg=direction,
    )


def _judge(raw: Mapping[str, Any], floor: Mapping[str, Any], options: ScoringOptions | None) -> dict[str, Any]:
    """Put every score of ``raw`` next to the same score of ``floor`` (options None: the floor itself)."""
    thresholds = None if options is None else options.thresholds

    def pair(score: Mapping[str, Any], f: Mapping[str, Any], kind: str) -> dict[str, Any]:
        if options is None:
            return floor_entry(score, kind=kind)  # type: ignore[arg-type]
        return with_floor(score, f, kind=kind, thresholds=thresholds)  # type: ignore[arg-type]

    out: dict[str, Any] = {}
    for key in ("w1", "w1_groups"):
        out[key] = {name: pair(s, floor[key][name], "distance") for name, s in raw[key].items()}
    for key in _DISTANCES:
        if key in raw:
            out[key] = pair(raw[key], floor[key], "distance")
    for key in _AUCS:
        if key in raw:
            out[key] = pair(raw[key], floor[key], key)
    if "auc_groups" in raw:
        out["auc_groups"] = {g: pair(s, floor["auc_groups"][g], "auc") for g, s in raw["auc_groups"].items()}
    for key in ("fpd_extrapolated", "kpd_unbiased"):  # the field's definitions, about 0 at the floor: no ratio
        if key in raw:
            out[key] = {**raw[key], "floor": floor[key]["value"], "floor_error": floor[key]["error"]}
    return out


def _judged_scores(entry: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The scores of a sample (or of one energy range) that take part in the verdict."""
    judged = {f"w1 {k}": s for k, s in entry["w1"].items() if not k.startswith(("e_long_", "e_radial_"))}
    judged.update({f"w1 {k}": s for k, s in entry["w1_groups"].items()})
    judged.update({k: entry[k] for k in (*_DISTANCES, *_AUCS) if k in entry})
    return judged


def _verdict(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Which judged scores fail: W1 per observable, the bin groups, FPD, KPD and both AUCs of the
    whole sample, and the same in every energy range (``"10-30 GeV: w1 n_hits"``); scores with
    ``pass`` None (per-range AUCs on too few showers) are shown but not judged. Samples with a
    direction of incidence are judged in every theta range as well (``"theta 10-20 deg: auc"``)."""
    judged = dict(_judged_scores(entry))
    for breakdown in ("energy_bins", "theta_bins"):
        for key, energy_bin in entry.get(breakdown, {}).items():
            if "w1" in energy_bin:
                judged.update({f"{key}: {k}": s for k, s in _judged_scores(energy_bin).items()})
    failed = [k for k, s in judged.items() if s["pass"] is False]
    not_judged = [k for k, s in judged.items() if s["pass"] is None]
    return {"pass": not failed, "failed": failed, "n_judged": len(judged) - len(not_judged), "not_judged": not_judged}


def _angle_summary(obs: CellObservables) -> dict[str, float]:
    theta = _theta(obs)
    return {"theta_deg_min": float(theta.min()), "theta_deg_max": float(theta.max())}


def _direction_record(ref_obs: CellObservables, detector: DetectorConfig) -> dict[str, Any]:
    """What ``scores.json`` says about the directions of an angled evaluation."""
    from caloclouds.evaluation.lowlevel import DIRECTION_FEATURES

    theta = _theta(ref_obs)
    return {
        "theta_deg_range": [float(theta.min()), float(theta.max())],
        "radial_axis": "inclined: at depth z (the cell layer's middle, detector.silicon_front_mm + "
        f"{detector.silicon_thickness_mm / 2:g} mm) the axis is z tan(theta) (cos phi, sin phi) from the impact point",
        "classifier_conditions": list(DIRECTION_FEATURES),
        "theta_bins_deg": [list(b) for b in THETA_BINS_DEG],
        "normal_incidence": "samples without theta_deg/phi_deg are taken as theta = phi = 0",
    }


def _summary(obs: CellObservables) -> dict[str, float]:
    return {
        "n_showers": len(obs),
        "mean_n_hits": float(obs.n_hits.mean()),
        "mean_e_ratio": float(obs.e_ratio.mean()),
        "incident_energy_gev_min": float(obs.incident_energy_gev.min()),
        "incident_energy_gev_max": float(obs.incident_energy_gev.max()),
    }


def _check_sizes(reference: Showers, generated: Mapping[str, Showers], n: int, config: EvaluationConfig) -> None:
    need = max(config.n_batches, config.classifier_folds)
    if n < need:
        sizes = ", ".join(f"{label!r} {len(s)}" for label, s in generated.items())
        msg = (
            f"the comparisons would use {n} showers per sample (reference {len(reference)}, {sizes}); "
            f"each half of the reference and each sample needs at least max(n_batches, classifier_folds) = {need}"
        )
        raise ValueError(msg)


def _breakdown(
    ref: Side,
    others: Mapping[str, Side],
    ctx: Context,
    *,
    ranges: tuple[tuple[float, float], ...],
    values: Callable[[CellObservables], np.ndarray],
    key_of: Callable[[float, float], str],
    what: str,
    floor_base: Side | None = None,
    progress: Callable[[str], None],
) -> dict[str, dict[str, Any]]:
    """Label -> range -> W1 (all observables) and high-level AUC, on equal-size samples per range.

    ``values`` gives the per-shower quantity the ranges cut on (the incident energy, or theta);
    the top range is closed. The floor sample is compared with the reference's showers in the range,
    or, with ``floor_base`` (floor from two halves of the floor reference), with that half's.
    """
    labels = list(others)
    out: dict[str, dict[str, Any]] = {label: {} for label in labels}
    bases = [ref] if floor_base is None else [ref, floor_base]
    for lo, hi in ranges:
        key = key_of(lo, hi)
        cut = [values(side.obs) for side in bases] + [values(others[label].obs) for label in labels]
        top = hi == max(h for _, h in ranges)
        idx = energy_bin_indices(cut, lo, hi, seed=ctx.config.seed, closed=top)
        n = len(idx[0])
        if n < 2 * max(ctx.config.n_batches, ctx.config.classifier_folds):
            for label in labels:
                out[label][key] = {"n_showers": n, "skipped": "too few showers in this range"}
            continue
        progress(f"{what} range {key}: {n} showers per sample")
        sides = [make_side(side.obs.take(i), ctx.edges) for side, i in zip(bases, idx)]
        raw = {
            label: score_pair(
                sides[-1] if label == FLOOR_LABEL else sides[0],
                make_side(others[label].obs.take(i), ctx.edges),
                ctx,
                low_level=False,
                groups=False,
                distances=False,
            )
            for label, i in zip(labels, idx[len(bases) :])
        }
        floor = raw[FLOOR_LABEL]
        for label in labels:
            judged = _judge(raw[label], floor, None if label == FLOOR_LABEL else ctx.options)
            if n < ctx.options.min_judged_showers and label != FLOOR_LABEL:
                for k in _AUCS:  # too few showers for a verdict: shown, not judged
                    if k in judged:
                        judged[k] = {
                            **judged[k],
                            "pass": None,
                            "not_judged": f"fewer than {ctx.options.min_judged_showers} showers a side",
                        }
            out[label][key] = {"n_showers": n, **judged}
    return out


def _incident_energy(obs: CellObservables) -> np.ndarray:
    return obs.incident_energy_gev


def _theta(obs: CellObservables) -> np.ndarray:
    return np.zeros(len(obs)) if obs.theta_deg is None else obs.theta_deg


def _directed(showers: Showers) -> Showers:
    """``showers`` with its direction of incidence; one without it is normal incidence (0, 0)."""
    return showers if showers.has_direction else showers.with_direction(showers.theta_deg, showers.phi_deg)


def evaluate(
    reference: Showers,
    generated: Mapping[str, Showers],
    *,
    config: EvaluationConfig | None = None,
    detector: DetectorConfig = ILD_LIKE_DETECTOR,
    options: ScoringOptions | None = None,
    floor_reference: Showers | None = None,
    out_dir: str | Path | None = None,
    reference_label: str = "Geant4",
    sources: Mapping[str, str] | None = None,
    plots: bool = True,
    progress: Callable[[str], None] | None = None,
    floor_halves: bool = False,
) -> dict[str, Any]:
    """Score generated showers against a reference, each score next to the equal-size Geant4 floor.

    Args:
        reference: the reference (Geant4) showers, integer layers.
        generated: label -> generated showers (integer layers); several models can be compared.
        config: evaluation settings (default :data:`caloclouds.config.DEFAULT_EVALUATION`).
        detector: the detector of every sample (layers, cell pitch, MIP and cell threshold); default
            :data:`caloclouds.config.ILD_LIKE_DETECTOR`; ``caloclouds evaluate --config`` passes its own.
        options: floor, thresholds, energy bins, spectrum check, low-level classifier
            (default :class:`ScoringOptions`).
        floor_reference: an independent Geant4 sample for the floor (default: reference halves).
        out_dir: if given, ``scores.json``, the PNG plots and ``report.html`` are written there.
        reference_label: name of the reference in plots and tables.
        sources: optional label -> file path, recorded in the scores.
        plots: draw the PNG plots (with ``out_dir``).
        progress: optional callback receiving one line per step (e.g. ``print``).
        floor_halves: the floor is two disjoint halves of ``floor_reference`` (required then), each
            of the common size, instead of the reference against it.

    **Oblique incidence.** When any sample carries a direction (``theta_deg``/``phi_deg``; one
    without it is normal incidence, 0/0), the radii are measured about each shower's inclined axis,
    the classifiers see ``theta_deg, cos phi, sin phi`` beside the features, the angles'
    distributions are KS-checked like the energies (``angle_spectra``), and the scores are also
    broken down by theta (``theta_bins``: 0-10, 10-20, 20-30, 30-40 deg). ``direction`` in the
    result records it. Without any direction the result is what it was before.

    Returns:
        The scores as a plain dict (the content of ``scores.json``): ``samples`` maps
        ``FLOOR_LABEL`` and every generated label to ``{"n_showers", "w1", "w1_groups", "auc",
        "auc_groups", "auc_low_level", "fpd", "kpd", "energy_bins", "verdict", ...}``; every
        score is ``{"value", "error", "floor", "floor_error", "ratio", "ratio_error", "pass"}``,
        W1 in units of the reference standard deviation.

    Raises:
        SpectrumMismatchError: a sample's incident energies differ clearly from the reference's
            (KS p below ``options.min_spectrum_p``) and ``options.allow_spectrum_mismatch`` is off.
        ValueError: bad labels or too few showers.
    """
    import projection

    config = DEFAULT_EVALUATION if config is None else config
    options = ScoringOptions() if options is None else options
    say = progress or (lambda _msg: None)
    if not generated:
        raise ValueError("generated is empty: give at least one generated sample")
    if reference_label in generated or FLOOR_LABEL in generated:
        raise ValueError(f"generated labels must differ from {reference_label!r} and {FLOOR_LABEL!r}")
    if floor_halves and floor_reference is None:
        raise ValueError("floor_halves needs a floor reference: the floor is two halves of it")
    angled = any(s.has_direction for s in (reference, floor_reference, *generated.values()) if s is not None)
    if angled:
        reference = _directed(reference)
        floor_reference = None if floor_reference is None else _directed(floor_reference)
        generated = {label: _directed(s) for label, s in generated.items()}
    plan = plan_samples(
        len(reference),
        {label: len(s) for label, s in generated.items()},
        n_floor_reference=None if floor_reference is None else len(floor_reference),
        seed=config.seed,
        floor_halves=floor_halves,
    )
    _check_sizes(reference, generated, plan.n, config)
    spectra = {label: s.incident_energy_gev for label, s in generated.items()}
    if floor_reference is not None:
        spectra[FLOOR_LABEL] = floor_reference.incident_energy_gev
    checks = check_spectra(
        reference.incident_energy_gev,
        spectra,
        min_p_value=options.min_spectrum_p,
        allow_mismatch=options.allow_spectrum_mismatch,
    )
    angle_checks = {}
    if angled:
        to_check = dict(generated) if floor_reference is None else {**generated, FLOOR_LABEL: floor_reference}
        angle_checks = check_angle_spectra(
            {a: reference.conditions[a] for a in ANGLES},
            {label: {a: s.conditions[a] for a in ANGLES} for label, s in to_check.items()},
            min_p_value=options.min_spectrum_p,
            allow_mismatch=options.allow_spectrum_mismatch,
        )

    from tqdm.auto import tqdm

    geometry = projection.get_geometry(config.geometry, detector=detector)
    # stream 0: the reference, 1: the floor reference, 2 + k: the k-th generated sample
    to_project = [(reference_label, reference, 0)]
    if floor_reference is not None:
        to_project.append((FLOOR_LABEL, floor_reference, 1))
    to_project += [(label, showers, 2 + k) for k, (label, showers) in enumerate(generated.items())]
    projected = {}
    for label, showers, stream in tqdm(to_project, desc="project", unit="sample", disable=None, leave=False):
        say(f"projecting {len(showers)} showers of {label!r} onto {config.geometry!r} cells, impact {options.impact}")
        projected[label] = cell_observables(
            showers, config=config, detector=detector, geometry=geometry, impact=options.impact, stream=stream
        )
    ref_obs = projected[reference_label]
    floor_obs = projected.get(FLOOR_LABEL, ref_obs)
    gen_obs = {label: projected[label] for label in generated}

    edges = decile_edges(ref_obs, n_longitudinal=config.n_longitudinal_bins, n_radial=config.n_radial_bins)
    scale = {name: standardisation(o) for name, o in observable_table(ref_obs, edges).items()}
    ref_side = make_side(ref_obs.take(plan.reference), edges)
    feature_names = high_level_features(ref_side.obs, edges)[1]
    ctx = Context(config=config, options=options, edges=edges, scale=scale, feature_names=feature_names)
    others = {FLOOR_LABEL: make_side(floor_obs.take(plan.floor), edges)}
    others.update({label: make_side(gen_obs[label].take(plan.generated[label]), edges) for label in generated})
    # the floor sample is compared with the reference, or with the other half of the floor reference
    floor_base = None if plan.floor_base is None else make_side(floor_obs.take(plan.floor_base), edges)
    raw = {}
    for label, side in tqdm(others.items(), desc="score", unit="sample", disable=None, leave=False):
        say(f"scoring {label!r} ({plan.n} vs {plan.n} showers)")
        raw[label] = score_pair(floor_base if label == FLOOR_LABEL and floor_base is not None else ref_side, side, ctx)
    bins = _breakdown(
        ref_side,
        others,
        ctx,
        ranges=ctx.options.energy_bins_gev,
        values=_incident_energy,
        key_of=energy_bin_label,
        what="energy",
        floor_base=floor_base,
        progress=say,
    )
    theta_bins = {}
    if angled:
        theta_bins = _breakdown(
            ref_side,
            others,
            ctx,
            ranges=THETA_BINS_DEG,
            values=_theta,
            key_of=theta_bin_label,
            what="theta",
            floor_base=floor_base,
            progress=say,
        )

    samples: dict[str, Any] = {}
    for label in others:
        entry = _judge(raw[label], raw[FLOOR_LABEL], None if label == FLOOR_LABEL else options)
        source_obs = floor_obs if label == FLOOR_LABEL else gen_obs[label]
        samples[label] = {
            "n_showers": [plan.n, plan.n],
            **entry,
            "energy_bins": bins[label],
            "summary": _summary(source_obs),
        }
        if angled:
            samples[label]["theta_bins"] = theta_bins[label]
            samples[label]["summary"].update(_angle_summary(source_obs))
        if label in checks:
            samples[label]["spectrum"] = checks[label].to_dict()
        if label in angle_checks:
            samples[label]["angle_spectra"] = angle_checks[label]
        if label != FLOOR_LABEL:
            samples[label]["verdict"] = _verdict(samples[label])
    if config.voxel_mesh:
        _add_voxel_space(samples, reference, floor_reference, generated, plan, config, say)

    from caloclouds.config import config_to_dict

    result: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "reference_label": reference_label,
        "sources": dict(sources or {}),
        "config": config_to_dict(config),
        "detector": config_to_dict(detector),
        "options": asdict(options),
        "floor_from": plan.floor_from,
        "impact": options.impact,
        "geometry": config.geometry,
        "threshold_mev": detector.threshold_mev,
        "n_reference": len(reference),
        "n_compared": plan.n,
        "w1_batch_size": max(1, plan.n // config.n_batches),
        "w1_draws": options.w1_draws,
        "w1_units": "reference standard deviations (W1 of standardised values)",
        "bin_edges": edges.to_dict(),
        "features": list(feature_names),
        "samples": samples,
    }
    if angled:
        result["direction"] = _direction_record(ref_obs, detector)
    if out_dir is not None:
        from caloclouds.evaluation.report import write_report

        say(f"writing the report to {out_dir}")
        plotted = dict(gen_obs)
        if floor_reference is not None:
            plotted = {FLOOR_LABEL: floor_obs, **plotted}
        write_report(
            Path(out_dir),
            result,
            ref_obs,
            plotted,
            edges,
            reference_label=reference_label,
            plots=plots,
        )
    return result


def _add_voxel_space(
    samples: dict[str, Any],
    reference: Showers,
    floor_reference: Showers | None,
    generated: Mapping[str, Showers],
    plan: Any,
    config: EvaluationConfig,
    say: Callable[[str], None],
) -> None:
    """FPD/KPD x 1e3 of the CaloChallenge features of the voxelised samples, on the planned showers."""
    from caloclouds.evaluation.voxelspace import voxel_space_scores
    from caloclouds.voxel.mesh import get_mesh
    from caloclouds.voxel.voxelize import voxelize

    mesh = get_mesh(config.voxel_mesh)
    say(f"voxel-space FPD/KPD on the {mesh.name!r} mesh")
    ref_vox = voxelize(reference[plan.reference], mesh)
    floor_source = reference if floor_reference is None else floor_reference
    sides = {FLOOR_LABEL: voxelize(floor_source[plan.floor], mesh)}
    sides.update({label: voxelize(s[plan.generated[label]], mesh) for label, s in generated.items()})
    min_s, max_s, kpd_batch = pd_sizes(plan.n, config)
    floor_vox = ref_vox if plan.floor_base is None else voxelize(floor_source[plan.floor_base], mesh)
    for label, vox in sides.items():
        scores = voxel_space_scores(
            floor_vox if label == FLOOR_LABEL else ref_vox,
            vox,
            fpd_min_samples=min_s,
            fpd_max_samples=max_s,
            kpd_batch_size=kpd_batch,
            seed=config.seed,
        )
        samples[label]["voxel_space"] = {"mesh": config.voxel_mesh, "mesh_name": mesh.name, **scores}
