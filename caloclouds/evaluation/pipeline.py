"""One-call evaluation of generated showers against a Geant4 reference.

:func:`evaluate` projects every sample onto the cells of the evaluation geometry, applies the
cell threshold, computes the observables and the 25 high-level features, and scores each
generated sample against the reference: W1 per observable, classifier AUC, FPD and KPD. Every
score is also computed for two disjoint halves of the reference (the "Geant4 floor"): a model is
as good as Geant4 when its scores reach the floor.

Splits (all drawn with ``config.seed``):

* the reference is shuffled and cut into halves A and B;
* W1 uses ``n_batches`` disjoint batches of ``b`` showers, with
  ``b = min(|A|, |B|, |generated|) // n_batches``: the floor compares A and B batch by batch, a
  model compares its batches with A's, so floor and model use the same batch size;
* the classifier, FPD and KPD compare a model with the whole reference (the larger sample is
  subsampled to the smaller one for the classifier), and the floor A with B.

With ``config.voxel_mesh`` set (e.g. ``"ds2"``), every sample is also voxelised onto that
cylindrical mesh and the FPD/KPD of the CaloChallenge high-level features are computed in voxel
space (``voxel_space`` in the result), so point-cloud and voxel models are compared on the
voxel models' own footing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from caloclouds.config import EvaluationConfig
from caloclouds.evaluation.classifier import classifier_auc
from caloclouds.evaluation.observables import (
    BinEdges,
    CellObservables,
    binned_energies,
    compute_observables,
    decile_edges,
    high_level_features,
)
from caloclouds.evaluation.scores import Observable, Score, batched_w1, fpd, kpd, standardisation
from caloclouds.showers import Showers

__all__ = ["FLOOR_LABEL", "cell_observables", "observable_table", "evaluate"]

FLOOR_LABEL = "Geant4 A vs B"
FORMAT_VERSION = 1


def cell_observables(showers: Showers, *, config: EvaluationConfig, geometry: Any = None) -> CellObservables:
    """Project showers onto the evaluation cells, apply the threshold, compute the observables.

    Args:
        showers: showers with integer layers (the ``layer`` column is the shower layer).
        config: the evaluation settings (geometry, MIP, threshold, radial axis).
        geometry: an already loaded ``projection`` geometry (default: ``config.geometry``).

    Returns:
        The :class:`CellObservables`.
    """
    import projection

    geometry = projection.get_geometry(config.geometry) if geometry is None else geometry
    hits = projection.project(showers, geometry, threshold_mev=config.threshold_mev)
    return compute_observables(
        hits, showers.incident_energy_gev, n_layers=int(geometry.n_layers), axis=config.radial_axis
    )


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


def _grouped(w1: Mapping[str, Score]) -> dict[str, Score]:
    """The bin groups as in CaloClouds II Table 2: mean of the means, error sqrt(sum of std^2)."""
    out = {}
    for group, prefix in (("e_long_bins", "e_long_"), ("e_radial_bins", "e_radial_")):
        members = [s for k, s in w1.items() if k.startswith(prefix)]
        out[group] = Score(
            float(np.mean([s.value for s in members])),
            float(np.sqrt(np.sum([s.error**2 for s in members]))),
        )
    return out


def _batches(idx: np.ndarray, n_batches: int, size: int) -> list[np.ndarray]:
    return [idx[k * size : (k + 1) * size] for k in range(n_batches)]


def _pd_sizes(n: int, config: EvaluationConfig) -> tuple[int, int, int]:
    """FPD bootstrap sizes (smallest, largest) and the KPD batch size, clipped to ``n`` showers."""
    max_s = min(config.fpd_max_samples, n)
    min_s = max(2, min(config.fpd_min_samples, int(max_s * config.fpd_min_samples / config.fpd_max_samples)))
    return min_s, max_s, max(2, min(config.kpd_batch_size, n // 2))


def _fpd_kpd(real: np.ndarray, gen: np.ndarray, config: EvaluationConfig) -> dict[str, Any]:
    min_s, max_s, kpd_batch = _pd_sizes(min(len(real), len(gen)), config)
    f = fpd(real, gen, min_samples=min_s, max_samples=max_s, seed=config.seed)
    k = kpd(real, gen, batch_size=kpd_batch, num_batches=config.kpd_batches, degree=config.kpd_degree, seed=config.seed)
    return {
        "fpd": {**f.to_dict(), "min_samples": min_s, "max_samples": max_s},
        "kpd": {**k.to_dict(), "batch_size": kpd_batch, "batches": config.kpd_batches, "degree": config.kpd_degree},
    }


def _auc(real: np.ndarray, gen: np.ndarray, config: EvaluationConfig, rng: np.random.Generator) -> dict[str, Any]:
    n = min(len(real), len(gen))
    r = real[np.sort(rng.permutation(len(real))[:n])]
    g = gen[np.sort(rng.permutation(len(gen))[:n])]
    return classifier_auc(
        r, g,
        folds=config.classifier_folds, hidden=config.classifier_hidden, epochs=config.classifier_epochs,
        batch_size=config.classifier_batch_size, learning_rate=config.classifier_learning_rate, seed=config.seed,
    ).to_dict()


#: Feature subsets scored with the same classifier: they tell where a high AUC comes from.
AUC_GROUPS = {
    "radial bins only": lambda name: name.startswith("e_radial_"),
    "without radial bins": lambda name: not name.startswith("e_radial_"),
}


def _auc_groups(real: np.ndarray, gen: np.ndarray, names: tuple[str, ...], config: EvaluationConfig) -> dict[str, Any]:
    out = {}
    for group, keep in AUC_GROUPS.items():
        cols = [i for i, name in enumerate(names) if keep(name)]
        out[group] = _auc(real[:, cols], gen[:, cols], config, np.random.default_rng(config.seed))
    return out


def _voxel_space(reference: Any, generated: Any, config: EvaluationConfig) -> dict[str, Any]:
    """FPD/KPD x 1e3 of the CaloChallenge high-level features of two voxelised samples."""
    from caloclouds.voxel.features import voxel_space_scores

    min_s, max_s, kpd_batch = _pd_sizes(min(len(reference), len(generated)), config)
    scores = voxel_space_scores(
        reference, generated, fpd_min_samples=min_s, fpd_max_samples=max_s, kpd_batch_size=kpd_batch, seed=config.seed,
    )
    return {"mesh": config.voxel_mesh, "mesh_name": reference.mesh.name, **scores}


def _summary(obs: CellObservables) -> dict[str, float]:
    return {
        "n_showers": len(obs),
        "mean_n_hits": float(obs.n_hits.mean()),
        "mean_e_ratio": float(obs.e_ratio.mean()),
        "incident_energy_gev_min": float(obs.incident_energy_gev.min()),
        "incident_energy_gev_max": float(obs.incident_energy_gev.max()),
    }


def evaluate(
    reference: Showers,
    generated: Mapping[str, Showers],
    *,
    config: EvaluationConfig | None = None,
    out_dir: str | Path | None = None,
    reference_label: str = "Geant4",
    sources: Mapping[str, str] | None = None,
    plots: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Score generated showers against a reference, with the reference-vs-reference floor.

    Args:
        reference: the reference (Geant4) showers, integer layers.
        generated: label -> generated showers (integer layers); several models can be compared.
        config: evaluation settings (default :class:`EvaluationConfig`).
        out_dir: if given, ``scores.json``, the PNG plots and ``report.html`` are written there.
        reference_label: name of the reference in plots and tables.
        sources: optional label -> file path, recorded in the scores.
        plots: draw the PNG plots (with ``out_dir``).
        progress: optional callback receiving one line per step (e.g. ``print``).

    Returns:
        The scores as a plain dict (the content of ``scores.json``): ``samples`` maps
        ``FLOOR_LABEL`` and every generated label to ``{"n_showers", "w1", "w1_groups", "auc", "auc_groups",
        "fpd", "kpd", "summary"}``; W1 entries are ``{"value", "error"}`` in units of the
        reference standard deviation.
    """
    import projection

    config = EvaluationConfig() if config is None else config
    say = progress or (lambda _msg: None)
    if not generated:
        raise ValueError("generated is empty: give at least one generated sample")
    if reference_label in generated or FLOOR_LABEL in generated:
        raise ValueError(f"generated labels must differ from {reference_label!r} and {FLOOR_LABEL!r}")
    n_half = len(reference) // 2
    if n_half < max(config.n_batches, config.classifier_folds):
        msg = (
            f"the reference has {len(reference)} showers; each half needs at least "
            f"max(n_batches, classifier_folds) = {max(config.n_batches, config.classifier_folds)}"
        )
        raise ValueError(msg)
    for label, showers in generated.items():
        if len(showers) < max(config.n_batches, config.classifier_folds):
            raise ValueError(f"generated sample {label!r} has only {len(showers)} showers")

    geometry = projection.get_geometry(config.geometry)
    say(f"projecting {len(reference)} reference showers onto {config.geometry!r} cells")
    ref_obs = cell_observables(reference, config=config, geometry=geometry)
    gen_obs = {}
    for label, showers in generated.items():
        say(f"projecting {len(showers)} showers of {label!r}")
        gen_obs[label] = cell_observables(showers, config=config, geometry=geometry)

    edges = decile_edges(ref_obs, n_longitudinal=config.n_longitudinal_bins, n_radial=config.n_radial_bins)
    ref_feat, feature_names = high_level_features(ref_obs, edges)
    gen_feat = {label: high_level_features(o, edges)[0] for label, o in gen_obs.items()}
    ref_table = observable_table(ref_obs, edges)
    scale = {name: standardisation(o) for name, o in ref_table.items()}

    rng = np.random.default_rng(config.seed)
    perm = rng.permutation(len(reference))
    half_a, half_b = perm[:n_half], perm[n_half : 2 * n_half]
    batch = min([n_half] + [len(s) for s in generated.values()]) // config.n_batches
    batches_a = _batches(half_a, config.n_batches, batch)

    samples: dict[str, Any] = {}
    say(f"scoring the Geant4 floor (two halves of {n_half} showers)")
    floor = batched_w1(ref_table, ref_table, reference_batches=batches_a,
                       other_batches=_batches(half_b, config.n_batches, batch), scale=scale)
    samples[FLOOR_LABEL] = {
        "n_showers": [int(n_half), int(n_half)],
        "w1": {k: s.to_dict() for k, s in floor.items()},
        "w1_groups": {k: s.to_dict() for k, s in _grouped(floor).items()},
        "auc": _auc(ref_feat[half_a], ref_feat[half_b], config, np.random.default_rng(config.seed)),
        "auc_groups": _auc_groups(ref_feat[half_a], ref_feat[half_b], feature_names, config),
        **_fpd_kpd(ref_feat[half_a], ref_feat[half_b], config),
        "summary": _summary(ref_obs),
    }
    mesh = ref_voxels = None
    if config.voxel_mesh:
        from caloclouds.voxel.mesh import get_mesh
        from caloclouds.voxel.voxelize import voxelize

        mesh = get_mesh(config.voxel_mesh)
        say(f"voxel-space FPD/KPD on the {mesh.name!r} mesh")
        ref_voxels = voxelize(reference, mesh)
        samples[FLOOR_LABEL]["voxel_space"] = _voxel_space(ref_voxels[half_a], ref_voxels[half_b], config)
    for label, obs in gen_obs.items():
        say(f"scoring {label!r}")
        gen_perm = np.random.default_rng(config.seed + 1).permutation(len(obs))
        w1 = batched_w1(ref_table, observable_table(obs, edges), reference_batches=batches_a,
                        other_batches=_batches(gen_perm, config.n_batches, batch), scale=scale)
        samples[label] = {
            "n_showers": [int(len(reference)), int(len(obs))],
            "w1": {k: s.to_dict() for k, s in w1.items()},
            "w1_groups": {k: s.to_dict() for k, s in _grouped(w1).items()},
            "auc": _auc(ref_feat, gen_feat[label], config, np.random.default_rng(config.seed)),
            "auc_groups": _auc_groups(ref_feat, gen_feat[label], feature_names, config),
            **_fpd_kpd(ref_feat, gen_feat[label], config),
            "summary": _summary(obs),
        }
        if mesh is not None:
            samples[label]["voxel_space"] = _voxel_space(ref_voxels, voxelize(generated[label], mesh), config)

    from caloclouds.config import config_to_dict

    result: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "reference_label": reference_label,
        "sources": dict(sources or {}),
        "config": config_to_dict(config),
        "threshold_mev": config.threshold_mev,
        "n_reference": len(reference),
        "w1_batch_size": int(batch),
        "w1_batches": config.n_batches,
        "w1_units": "reference standard deviations (W1 of standardised values)",
        "bin_edges": edges.to_dict(),
        "features": list(feature_names),
        "samples": samples,
    }
    if out_dir is not None:
        from caloclouds.evaluation.report import write_report

        say(f"writing the report to {out_dir}")
        write_report(
            Path(out_dir), result, ref_obs, gen_obs, edges,
            reference_label=reference_label, plots=plots,
        )
    return result
