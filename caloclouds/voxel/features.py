"""CaloChallenge high-level features of voxel showers.

Per layer l with voxel energies E_i at centres ``(eta, phi) = (r cos alpha, r sin alpha)`` (mm):
``E_l``, the centres of energy ``EC_eta``, ``EC_phi``, ``EC_r``, the widths
``W_x = sqrt(max(<x^2> - EC_x^2, 0))`` and ``sparsity_l = 1 - mean(E_i > 0)``. The feature vector
is ``[log10 E_inc, log10(E_l + 1e-8), EC_eta/100, EC_phi/100, W_eta/100, W_phi/100 (layers with
more than one alpha bin), log10(E_tot + 1e-8), sparsity_l, EC_r/100, W_r/100]`` with energies in
MeV, of dimension ``2 + 4 L + 4 L_alpha`` (242 for the default 30-layer mesh, 362 for dataset 2).
Voxels below ``min_voxel_mev`` (CaloChallenge datasets 2/3: 15.15 keV) are zeroed first.

The FPD/KPD between two samples of these features is
:func:`caloclouds.evaluation.voxelspace.voxel_space_scores` (voxel code does not import the evaluation).

References:
    CaloChallenge ``code/HighLevelFeatures.py`` and ``evaluate.py``
    (``prepare_high_data_for_classifier``).
"""

from __future__ import annotations

import numpy as np

from caloclouds.voxel.voxelize import VoxelShowers

__all__ = ["CALOCHALLENGE_DS2_MIN_VOXEL_MEV", "high_level_features"]

CALOCHALLENGE_DS2_MIN_VOXEL_MEV = 0.5e-3 / 0.033  # 15.15 keV voxel threshold of CaloChallenge datasets 2 and 3.
_EPS_ENERGY = 1e-16  # Denominator guard of the centres of energy (as in HighLevelFeatures.py).
_LOG_FLOOR = 1e-8  # log10(E + 1e-8) as in prepare_high_data_for_classifier.
_MM_SCALE = 100.0  # Centres and widths are divided by 100 (mm).


def high_level_features(voxels: VoxelShowers, *, min_voxel_mev: float = CALOCHALLENGE_DS2_MIN_VOXEL_MEV) -> np.ndarray:
    """(N, 2 + 4 L + 4 L_alpha) float64 CaloChallenge high-level features (see the module docstring)."""
    mesh = voxels.mesh
    e = voxels.energy_mev.astype(np.float64)
    e = np.where(e >= min_voxel_mev, e, 0.0)
    centre = mesh.voxel_centres()
    starts = mesh.layer_offsets[:-1]

    def layer_sum(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(values, starts, axis=1)

    e_layer = layer_sum(e)
    denom = e_layer + _EPS_ENERGY
    out: dict[str, np.ndarray] = {}
    for name, coord in (("eta", centre["x_mm"]), ("phi", centre["y_mm"]), ("r", centre["r_mm"])):
        mean = layer_sum(e * coord) / denom
        second = layer_sum(e * coord**2) / denom
        out[f"ec_{name}"], out[f"w_{name}"] = mean, np.sqrt(np.clip(second - mean**2, 0, None))
    sparsity = 1.0 - layer_sum((e > 0).astype(np.float64)) / mesh.voxels_per_layer
    binned = np.asarray(mesh.n_alpha) > 1
    parts = [
        np.log10(voxels.incident_energy_gev.astype(np.float64) * 1000.0)[:, None],
        np.log10(e_layer + _LOG_FLOOR),
        out["ec_eta"][:, binned] / _MM_SCALE,
        out["ec_phi"][:, binned] / _MM_SCALE,
        out["w_eta"][:, binned] / _MM_SCALE,
        out["w_phi"][:, binned] / _MM_SCALE,
        np.log10(e.sum(axis=1) + _LOG_FLOOR)[:, None],
        sparsity,
        out["ec_r"] / _MM_SCALE,
        out["w_r"] / _MM_SCALE,
    ]
    return np.concatenate(parts, axis=1)
