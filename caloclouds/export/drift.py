"""The drift of the shower's centre with depth, for checks of the export at oblique incidence.

An angled shower's axis moves by tan θ per mm of depth along φ. These two functions measure it the
same way on exported, generated and Geant4 showers: the energy-weighted centre of each layer, the
showers pooled, projected onto each shower's own φ direction (``along``) and across it, and the
slope of ``along`` against the layer depth z_l (least squares weighted by the layers' energies).
"""

from __future__ import annotations

import numpy as np

__all__ = ["drift_per_mm", "layer_centres_mm"]


def layer_centres_mm(
    points: np.ndarray, phi_deg: float | np.ndarray, n_layers: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Energy-weighted centre of each layer along φ and across it, pooled over the given points.

    Args:
        points: (P, 4) ``x_mm, y_mm, layer, e_MeV`` of one or many showers.
        phi_deg: φ of each point's shower (P,), or one value for all.
        n_layers: L.

    Returns:
        ``(along_mm, across_mm, energy_mev)``, each (L,); the centres are NaN in a layer without energy.
    """
    phi = np.radians(np.broadcast_to(np.asarray(phi_deg, np.float64), (len(points),)))
    x, y = points[:, 0].astype(np.float64), points[:, 1].astype(np.float64)
    e = points[:, 3].astype(np.float64)
    layer = points[:, 2].astype(np.int64)
    along = np.cos(phi) * x + np.sin(phi) * y
    across = -np.sin(phi) * x + np.cos(phi) * y
    energy = np.bincount(layer, weights=e, minlength=n_layers)
    with np.errstate(invalid="ignore", divide="ignore"):
        along_l = np.bincount(layer, weights=e * along, minlength=n_layers) / energy
        across_l = np.bincount(layer, weights=e * across, minlength=n_layers) / energy
    return along_l, across_l, energy


def drift_per_mm(centre_mm: np.ndarray, energy_mev: np.ndarray, layer_z_mm: np.ndarray) -> float:
    """Slope (mm per mm of depth) of the layers' centres against their depth ``layer_z_mm``, least
    squares weighted by each layer's energy (layers without energy left out)."""
    centre, w, z = (np.asarray(a, np.float64) for a in (centre_mm, energy_mev, layer_z_mm))
    keep = (w > 0) & np.isfinite(centre)
    if keep.sum() < 2:
        raise ValueError("the drift needs at least two layers with energy")
    z, centre, w = z[keep], centre[keep], w[keep]
    z_mean = np.average(z, weights=w)
    c_mean = np.average(centre, weights=w)
    return float(np.sum(w * (z - z_mean) * (centre - c_mean)) / np.sum(w * (z - z_mean) ** 2))
