"""Per-layer calibration of the Shower Flow's mean longitudinal profile, fitted on training data.

A flow matches the bulk of each layer-fraction distribution well, but a small shift of a skewed
distribution in the square-root space moves the mean of the fraction by several per cent
(the first layers, whose fractions are often zero, are the most sensitive). After training, the
flow is sampled at the training energies and each layer's fraction of points and of energy is
scaled by (training mean) / (flow mean), iterated because the fractions are renormalised. The
scales live in the preprocessing (``point_frac_scale``, ``energy_frac_scale``) and are applied
before renormalisation, so every sampling invariant still holds exactly.
"""

from __future__ import annotations

import numpy as np
import torch

from flows.features import ShowerFeatures
from flows.sampling import ShowerFlow

__all__ = ["calibrate_layer_profile"]

_SCALE_LIMITS = (0.5, 2.0)  # a calibration outside this range means a broken flow: clip it
_SAMPLE_BATCH = 4096


def _mean_profiles(flow: ShowerFlow, energies: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    gen = torch.Generator(device=flow.device).manual_seed(seed)
    points, energy = 0.0, 0.0
    for start in range(0, len(energies), _SAMPLE_BATCH):
        s = flow.sample(torch.as_tensor(energies[start : start + _SAMPLE_BATCH], dtype=torch.float32), generator=gen)
        points = points + s.points_per_layer.double().sum(0).cpu().numpy()
        energy = energy + s.energy_per_layer_mev.double().sum(0).cpu().numpy()
    return points / len(energies), energy / len(energies)


def calibrate_layer_profile(
    flow: ShowerFlow,
    features: ShowerFeatures,
    *,
    samples_per_shower: int = 4,
    iterations: int = 3,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Fit the per-layer fraction scales of ``flow`` in place so its mean profile matches ``features``.

    Args:
        flow: the trained flow (without extra conditions).
        features: the training showers.
        samples_per_shower: flow samples per training energy.
        iterations: fixed-point iterations (the renormalisation couples the layers).
        seed: seed of the flow samples (the same samples in every iteration).

    Returns:
        ``{"point_frac_scale": [...], "energy_frac_scale": [...]}``.
    """
    if features.conditions.shape[1]:
        raise ValueError("calibrate_layer_profile supports flows without extra conditions only")
    pre = flow.preprocessing
    target_points = features.points_per_layer.mean(axis=0)
    target_energy = features.energy_per_layer_mev.mean(axis=0)
    energies = np.repeat(features.incident_energy_gev, samples_per_shower)
    for _ in range(iterations):
        points, energy = _mean_profiles(flow, energies, seed)
        for buf, target, got in (
            (pre.point_frac_scale, target_points, points),
            (pre.energy_frac_scale, target_energy, energy),
        ):
            ratio = np.where(got > 0, target / np.where(got > 0, got, 1.0), 1.0)
            new = (buf.cpu().double().numpy() * ratio).clip(*_SCALE_LIMITS)
            buf.copy_(torch.as_tensor(new, dtype=buf.dtype))
    return {"point_frac_scale": pre.point_frac_scale.tolist(), "energy_frac_scale": pre.energy_frac_scale.tolist()}
