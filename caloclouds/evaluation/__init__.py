"""Cell-level validation of generated showers against Geant4 (``caloclouds evaluate``).

* :mod:`~caloclouds.evaluation.observables`: per-shower cell observables and the 25 high-level
  features (CaloClouds II).
* :mod:`~caloclouds.evaluation.scores`: standardised W1 over batches, FPD and KPD.
* :mod:`~caloclouds.evaluation.classifier`: k-fold MLP classifier AUC.
* :mod:`~caloclouds.evaluation.mip`: the MIP most probable value from a Geant4 cell spectrum.
* :mod:`~caloclouds.evaluation.pipeline`: :func:`evaluate`, the one call that does it all.
* :mod:`~caloclouds.evaluation.plots` and :mod:`~caloclouds.evaluation.report`: PNGs, scores.json
  and report.html (matplotlib is imported only when plotting).
"""

from __future__ import annotations

from caloclouds.evaluation.classifier import ClassifierResult, classifier_auc, roc_auc
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
from caloclouds.evaluation.pipeline import FLOOR_LABEL, cell_observables, evaluate
from caloclouds.evaluation.scores import Score, batched_w1, fpd, kpd, mmd_poly_unbiased

__all__ = [
    "FEATURE_NAMES",
    "FLOOR_LABEL",
    "BinEdges",
    "CellObservables",
    "ClassifierResult",
    "MipFit",
    "Score",
    "batched_w1",
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
    "measure_mip",
    "mmd_poly_unbiased",
    "roc_auc",
]
