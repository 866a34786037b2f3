"""PointWise Net: EDM diffusion on ragged point clouds and its consistency distillation.

* :mod:`.preprocessing`: :class:`PointNormaliser`, the invertible per-feature point transform.
* :mod:`.pointwise`: :class:`PointWiseNet` (ConcatSquash layers, per-shower context).
* :mod:`.edm`: :class:`EDMDenoiser` (Karras preconditioning, per-point loss), :class:`RaggedCond`.
* :mod:`.consistency`: :class:`ConsistencyDenoiser` and the distillation loss.
* :mod:`.sampling`: ``karras_sigmas``, ``sample_euler``, ``sample_heun``, ``sample_consistency``.
* :mod:`.training`: ``train_diffusion`` and ``distill``.
* :mod:`.model`: ``load_point_model(path) -> PointModel`` with ``.sample(...)``.
* :mod:`.evaluation`: point-level W1 against Geant4 and CPU timing.
"""

from __future__ import annotations

from caloclouds.diffusion.consistency import ConsistencyDenoiser, consistency_distillation_loss
from caloclouds.diffusion.edm import EDMDenoiser, RaggedCond, per_shower_mean, sample_log_normal_sigma
from caloclouds.diffusion.model import PointModel, load_point_model
from caloclouds.diffusion.pointwise import ConcatSquashLinear, PointWiseNet
from caloclouds.diffusion.preprocessing import PointNormaliser
from caloclouds.diffusion.sampling import karras_sigmas, sample_consistency, sample_euler, sample_heun

__all__ = [
    "ConcatSquashLinear",
    "ConsistencyDenoiser",
    "EDMDenoiser",
    "PointModel",
    "PointNormaliser",
    "PointWiseNet",
    "RaggedCond",
    "consistency_distillation_loss",
    "karras_sigmas",
    "load_point_model",
    "per_shower_mean",
    "sample_consistency",
    "sample_euler",
    "sample_heun",
    "sample_log_normal_sigma",
]
