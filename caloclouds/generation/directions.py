"""Directions of incidence for generation: one angle pair, ranges, or a shower file's own angles.

The convention is key4hep DDML's local one: θ = acos(d_z) (0 = normal incidence, z into the
calorimeter) and φ = atan2(d_y, d_x), both in degrees. Whether a model may generate a θ is one rule,
:func:`check_theta_range`, as the energies have theirs: θ outside the bundle's trained range is
refused unless extrapolation is allowed. φ is any angle (the detector is symmetric about the beam
axis, so a model needs no training range for it); it is wrapped into (-180, 180].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from caloclouds.direction import MAX_THETA_DEG, check_direction, wrap_phi_deg
from caloclouds.errors import CaloCloudsError, InputFileError

__all__ = ["check_theta_range", "directions_of_file", "incident_directions"]

_TOLERANCE_DEG = 1e-3  # float32 angles read back from a file


def incident_directions(
    n_showers: int,
    *,
    theta_deg: float | None = None,
    phi_deg: float | None = None,
    theta_range_deg: tuple[float, float] | None = None,
    phi_range_deg: tuple[float, float] | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray] | None:
    """(θ, φ) in degrees (float32, (n_showers,) each) from fixed angles or uniform ranges, or None
    when no angle option is given (normal incidence, and no angles in the output).

    A range draws uniformly in the angle (as the angled training files are made), from a stream of
    its own of ``seed`` (the showers' random stream is not touched).
    """
    if theta_deg is not None and theta_range_deg is not None:
        raise CaloCloudsError("give --theta-deg or --theta-range, not both")
    if phi_deg is not None and phi_range_deg is not None:
        raise CaloCloudsError("give --phi-deg or --phi-range, not both")
    if theta_deg is None and phi_deg is None and theta_range_deg is None and phi_range_deg is None:
        return None
    rng = np.random.default_rng([seed, 0xD1EC])  # a stream of its own
    theta = _draw(n_showers, theta_deg, theta_range_deg, rng, "--theta-range")
    phi = _draw(n_showers, phi_deg, phi_range_deg, rng, "--phi-range")
    problem = check_direction(theta, phi, "the angle options")
    if problem:
        raise CaloCloudsError(problem.replace("shower 0 has ", "").replace("expected a value", "expected"))
    return theta.astype(np.float32), wrap_phi_deg(phi).astype(np.float32)


def _draw(
    n: int, value: float | None, span: tuple[float, float] | None, rng: np.random.Generator, option: str
) -> np.ndarray:
    if span is not None:
        lo, hi = (float(v) for v in span)
        if not (np.isfinite(lo) and np.isfinite(hi)) or hi < lo:
            raise CaloCloudsError(f"{option} {lo:g} {hi:g}: expected LO <= HI, finite")
        return rng.uniform(lo, hi, n)
    return np.full(n, 0.0 if value is None else float(value))


def check_theta_range(
    theta_deg: np.ndarray,
    trained_range_deg: tuple[float, float],
    *,
    allow_extrapolation: bool,
    model: str = "this model",
) -> None:
    """Refuse polar angles outside the model's trained range (unless ``allow_extrapolation``).

    A normal-incidence model has the range (0, 0): it refuses any θ > 0, even with extrapolation,
    since it cannot lean a shower at all.
    """
    theta = np.asarray(theta_deg, np.float64)
    if theta.size == 0:
        return
    lo, hi = trained_range_deg
    outside = (theta < lo - _TOLERANCE_DEG) | (theta > hi + _TOLERANCE_DEG)
    if not np.any(outside):
        return
    bad = float(theta[np.argmax(outside)])
    if hi <= 0.0:
        raise CaloCloudsError(
            f"theta {bad:g} deg: {model} knows only normal incidence (theta = 0); use a direction-aware model"
        )
    if not allow_extrapolation:
        raise CaloCloudsError(
            f"theta {bad:g} deg is outside {model}'s trained range {lo:g}-{hi:g} deg; "
            "pass --allow-extrapolation to generate there anyway"
        )
    if bad > MAX_THETA_DEG:
        raise CaloCloudsError(f"theta {bad:g} deg is beyond {MAX_THETA_DEG:g} deg, where no model can go")


def directions_of_file(path: str | Path, *, n_showers: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """The (θ, φ) in degrees of a shower file's first ``n_showers`` showers (all: None), or None
    when the file has no direction (normal incidence). Our HDF5 is read lazily (the two datasets)."""
    from caloclouds.io.checks import check_input_file

    path = check_input_file(path, "shower file")
    import h5py

    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            if "theta_deg" not in f or "phi_deg" not in f:
                return None
            stop = None if n_showers is None else int(n_showers)
            theta = np.asarray(f["theta_deg"][:stop], np.float64)
            phi = np.asarray(f["phi_deg"][:stop], np.float64)
    else:
        from caloclouds.io.formats import iter_any
        from caloclouds.showers import Showers

        parts = list(iter_any(path))
        showers = Showers.concatenate(parts)[: n_showers if n_showers is not None else None]
        if not showers.has_direction:
            return None
        theta, phi = showers.theta_deg, showers.phi_deg
    problem = check_direction(theta, phi, str(path))
    if problem:
        raise InputFileError(path, problem)
    return theta.astype(np.float32), phi.astype(np.float32)
