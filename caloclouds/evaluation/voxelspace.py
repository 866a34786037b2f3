"""FPD and KPD between two samples of voxel showers, on their CaloChallenge high-level features.

The features are :func:`caloclouds.voxel.features.high_level_features`; the distances are
:func:`caloclouds.evaluation.scores.fpd` and :func:`~caloclouds.evaluation.scores.kpd`. The
scoring lives here so that the voxel model never imports the evaluation.

References:
    CaloChallenge ``code/evaluate.py``; Kansal et al., arXiv:2211.10295 (FPD, KPD).
"""

from __future__ import annotations

from typing import Any

from caloclouds.evaluation.scores import fpd, kpd
from caloclouds.voxel.features import CALOCHALLENGE_DS2_MIN_VOXEL_MEV, high_level_features
from caloclouds.voxel.voxelize import VoxelShowers

__all__ = ["voxel_space_scores"]


def voxel_space_scores(
    reference: VoxelShowers,
    generated: VoxelShowers,
    *,
    min_voxel_mev: float = CALOCHALLENGE_DS2_MIN_VOXEL_MEV,
    fpd_min_samples: int | None = None,
    fpd_max_samples: int | None = None,
    kpd_batch_size: int | None = None,
    fpd_points: int = 10,
    fpd_batches: int = 20,
    seed: int = 42,
) -> dict[str, Any]:
    """FPD and KPD (x 1e3, as the CaloChallenge reports them) of the high-level features.

    Sample sizes default to what the samples allow (jetnet's 10000-50000 need far more showers
    than our validation sets; the values are then not comparable to published CaloChallenge ones).
    """
    real = high_level_features(reference, min_voxel_mev=min_voxel_mev)
    gen = high_level_features(generated, min_voxel_mev=min_voxel_mev)
    n = min(len(real), len(gen))
    max_s = fpd_max_samples or n
    min_s = fpd_min_samples or max(2, max_s // 5)
    batch = kpd_batch_size or max(2, n // 2)
    f = fpd(real, gen, min_samples=min_s, max_samples=max_s, num_points=fpd_points, num_batches=fpd_batches, seed=seed)
    k = kpd(real, gen, batch_size=batch, seed=seed)
    return {
        "n_features": int(real.shape[1]),
        "fpd_x1e3": 1e3 * f.value,
        "fpd_err_x1e3": 1e3 * f.error,
        "kpd_x1e3": 1e3 * k.value,
        "kpd_err_x1e3": 1e3 * k.error,
        "fpd_samples": [min_s, max_s],
        "kpd_batch_size": batch,
        "min_voxel_mev": min_voxel_mev,
    }
