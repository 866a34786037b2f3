"""Cell-level validation of generated showers against Geant4 (``caloclouds evaluate``).

* :mod:`~caloclouds.evaluation.observables`: per-shower cell observables and the 25 high-level
  features (CaloClouds II).
* :mod:`~caloclouds.evaluation.scores`: standardised W1 over batches, FPD and KPD.
* :mod:`~caloclouds.evaluation.classifier`: k-fold MLP classifier AUC on the high-level features.
* :mod:`~caloclouds.evaluation.lowlevel`: k-fold point-set (torch-geometric) classifier AUC on the cells.
* :mod:`~caloclouds.evaluation.floor`: the equal-size Geant4 floor, ratios and pass/fail.
* :mod:`~caloclouds.evaluation.spectrum`: KS check of incident-energy spectra, energy bins.
* :mod:`~caloclouds.evaluation.comparison`: every score of one comparison of two samples.
* :mod:`~caloclouds.evaluation.selftest`: perturbed Geant4 showers, to show what the scores detect.
* :mod:`~caloclouds.evaluation.mip`: the MIP most probable value from a Geant4 cell spectrum.
* :mod:`~caloclouds.evaluation.pipeline`: :func:`evaluate`, the one call that does it all.
* :mod:`~caloclouds.evaluation.plots` and :mod:`~caloclouds.evaluation.report`: PNGs, scores.json
  and report.html (hist, mplhep and matplotlib are imported only when plotting).
"""

from __future__ import annotations

from caloclouds.evaluation.classifier import ClassifierResult, classifier_auc, roc_auc
from caloclouds.evaluation.floor import Thresholds, plan_samples, random_batches, with_floor
from caloclouds.evaluation.lowlevel import LowLevelConfig, low_level_auc
from caloclouds.evaluation.mip import MipFit, fit_mip_peak, measure_mip
from caloclouds.evaluation.observables import (
    FEATURE_NAMES,
    BinEdges,
    CellObservables,
    binned_energies,
    compute_observables,
    decile_edges,
    high_level_features,
)
from caloclouds.evaluation.options import ScoringOptions
from caloclouds.evaluation.pipeline import FLOOR_LABEL, cell_observables, evaluate
from caloclouds.evaluation.scores import Score, batched_fpd, batched_kpd, batched_w1, fpd, kpd, mmd_poly_unbiased
from caloclouds.evaluation.spectrum import SpectrumCheck, SpectrumMismatchError, check_spectra, compare_spectra

__all__ = [
    "FEATURE_NAMES",
    "FLOOR_LABEL",
    "BinEdges",
    "LowLevelConfig",
    "ScoringOptions",
    "SpectrumCheck",
    "SpectrumMismatchError",
    "Thresholds",
    "CellObservables",
    "ClassifierResult",
    "MipFit",
    "Score",
    "batched_fpd",
    "batched_kpd",
    "batched_w1",
    "check_spectra",
    "compare_spectra",
    "binned_energies",
    "cell_observables",
    "classifier_auc",
    "compute_observables",
    "decile_edges",
    "evaluate",
    "fit_mip_peak",
    "fpd",
    "high_level_features",
    "kpd",
    "low_level_auc",
    "measure_mip",
    "mmd_poly_unbiased",
    "plan_samples",
    "random_batches",
    "roc_auc",
    "with_floor",
]
