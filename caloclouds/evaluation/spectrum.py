"""Incident-energy spectra: a KS check that two samples were drawn at the same energies, and the
energy bins in which the scores are broken down.

Scores of a generated sample against Geant4 are only meaningful when both were made at the same
incident energies: a uniform 10-90 GeV reference against a 10/50/90 GeV sample differs in every
observable whatever the model does. :func:`compare_spectra` runs the two-sample
Kolmogorov-Smirnov test on the incident energies; :func:`check_spectra` refuses a clearly
different pair (p below ``min_p_value``). ``caloclouds generate --energies-from REF.h5`` makes a
sample with exactly the reference's energies.

Samples with a direction of incidence are checked on the angles the same way
(:func:`check_angle_spectra`): the KS test on ``theta_deg`` and on ``phi_deg`` (taken modulo 360,
so that phi in (-180, 180] and in [0, 360) compare equal), and the scores are also broken down by
theta (:data:`THETA_BINS_DEG`). ``caloclouds generate --conditions-from REF.h5`` makes a sample at
the reference's energies and angles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "ANGLES",
    "ENERGY_BINS_GEV",
    "MIN_P_VALUE",
    "THETA_BINS_DEG",
    "AngleMismatchError",
    "check_angle_spectra",
    "theta_bin_label",
    "SpectrumCheck",
    "SpectrumMismatchError",
    "compare_spectra",
    "check_spectra",
    "energy_bin_label",
]

#: The energy ranges of the score breakdown, GeV: low, medium, high third of the 10-90 GeV range.
ENERGY_BINS_GEV: tuple[tuple[float, float], ...] = ((10.0, 30.0), (30.0, 60.0), (60.0, 90.0))
#: KS p-value below which two spectra count as clearly different. Two independent uniform draws
#: fall below it once in a thousand; 1000 showers at 10/50/90 GeV against a uniform 10-90 GeV
#: sample give p ~ 1e-30.
MIN_P_VALUE = 1e-3
#: The polar-angle ranges of the score breakdown of samples with a direction, degrees.
THETA_BINS_DEG: tuple[tuple[float, float], ...] = ((0.0, 10.0), (10.0, 20.0), (20.0, 30.0), (30.0, 40.0))
#: The angles whose distributions must match the reference's (the conditions of ``caloclouds.showers``).
ANGLES: tuple[str, ...] = ("theta_deg", "phi_deg")


class SpectrumMismatchError(ValueError):
    """The incident-energy spectra of two samples are clearly different."""

    def __init__(self, label: str, check: SpectrumCheck) -> None:
        self.label = label
        self.check = check
        msg = (
            f"incident-energy spectrum differs from the reference ({check.describe()}); "
            "generate with --energies-from REF.h5, or pass --allow-spectrum-mismatch"
        )
        super().__init__(msg)


class AngleMismatchError(SpectrumMismatchError):
    """The distribution of an angle of incidence (``theta_deg`` or ``phi_deg``) differs clearly."""

    def __init__(self, label: str, angle: str, check: SpectrumCheck) -> None:
        self.label = label
        self.angle = angle
        self.check = check
        msg = (
            f"{angle} distribution differs from the reference's (KS D = {check.statistic:.3f}, "
            f"p = {check.p_value:.2g}; mean {check.mean_sample_gev:.1f} deg vs {check.mean_reference_gev:.1f} deg, "
            f"{check.n_sample} vs {check.n_reference} showers); generate with --conditions-from REF.h5, "
            "or pass --allow-spectrum-mismatch"
        )
        ValueError.__init__(self, msg)


@dataclass(frozen=True)
class SpectrumCheck:
    """Result of the two-sample KS test on incident energies (GeV)."""

    statistic: float
    p_value: float
    n_reference: int
    n_sample: int
    mean_reference_gev: float
    mean_sample_gev: float

    def describe(self) -> str:
        return (
            f"KS D = {self.statistic:.3f}, p = {self.p_value:.2g}; mean {self.mean_sample_gev:.1f} GeV "
            f"vs {self.mean_reference_gev:.1f} GeV, {self.n_sample} vs {self.n_reference} showers"
        )

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.__dict__.items()}


def compare_spectra(reference_gev: np.ndarray, sample_gev: np.ndarray) -> SpectrumCheck:
    """Two-sample KS test of two incident-energy arrays (GeV)."""
    from scipy.stats import ks_2samp

    ref = np.asarray(reference_gev, dtype=np.float64).reshape(-1)
    other = np.asarray(sample_gev, dtype=np.float64).reshape(-1)
    if len(ref) == 0 or len(other) == 0:
        raise ValueError(f"need incident energies on both sides, got {len(ref)} and {len(other)}")
    result = ks_2samp(ref, other)
    return SpectrumCheck(
        statistic=float(result.statistic),
        p_value=float(result.pvalue),
        n_reference=len(ref),
        n_sample=len(other),
        mean_reference_gev=float(ref.mean()),
        mean_sample_gev=float(other.mean()),
    )


def check_spectra(
    reference_gev: np.ndarray,
    samples_gev: dict[str, np.ndarray],
    *,
    min_p_value: float = MIN_P_VALUE,
    allow_mismatch: bool = False,
) -> dict[str, SpectrumCheck]:
    """KS-compare every sample's spectrum with the reference's; raise on a clear mismatch.

    Args:
        reference_gev: (N,) incident energies of the reference.
        samples_gev: label -> incident energies of each other sample.
        min_p_value: a p-value below this is a mismatch.
        allow_mismatch: record the checks but never raise.

    Returns:
        Label -> :class:`SpectrumCheck`.

    Raises:
        SpectrumMismatchError: for the first mismatching sample, unless ``allow_mismatch``.
    """
    checks = {label: compare_spectra(reference_gev, e) for label, e in samples_gev.items()}
    if not allow_mismatch:
        for label, check in checks.items():
            if check.p_value < min_p_value:
                raise SpectrumMismatchError(label, check)
    return checks


def check_angle_spectra(
    reference_deg: dict[str, np.ndarray],
    samples_deg: dict[str, dict[str, np.ndarray]],
    *,
    min_p_value: float = MIN_P_VALUE,
    allow_mismatch: bool = False,
) -> dict[str, dict[str, dict[str, float]]]:
    """KS-compare every sample's angles of incidence with the reference's; raise on a clear mismatch.

    Args:
        reference_deg: ``{"theta_deg": (N,), "phi_deg": (N,)}`` of the reference.
        samples_deg: label -> the same for each other sample.
        min_p_value: a p-value below this is a mismatch.
        allow_mismatch: record the checks but never raise.

    Returns:
        Label -> angle -> ``{"statistic", "p_value", "n_reference", "n_sample", "mean_reference_deg",
        "mean_sample_deg"}`` (phi taken modulo 360).

    Raises:
        AngleMismatchError: for the first mismatching sample and angle, unless ``allow_mismatch``.
    """

    def wrapped(angle: str, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        return np.mod(values, 360.0) if angle == "phi_deg" else values

    out: dict[str, dict[str, dict[str, float]]] = {}
    for label, angles in samples_deg.items():
        out[label] = {}
        for angle in ANGLES:
            check = compare_spectra(wrapped(angle, reference_deg[angle]), wrapped(angle, angles[angle]))
            if check.p_value < min_p_value and not allow_mismatch:
                raise AngleMismatchError(label, angle, check)
            out[label][angle] = {
                "statistic": check.statistic,
                "p_value": check.p_value,
                "n_reference": float(check.n_reference),
                "n_sample": float(check.n_sample),
                "mean_reference_deg": check.mean_reference_gev,
                "mean_sample_deg": check.mean_sample_gev,
            }
    return out


def theta_bin_label(lo_deg: float, hi_deg: float) -> str:
    """``"theta 10-20 deg"``: the key of a theta range in ``scores.json``."""
    return f"theta {lo_deg:g}-{hi_deg:g} deg"


def energy_bin_label(lo_gev: float, hi_gev: float) -> str:
    """``"10-30 GeV"``: the key of an energy bin in ``scores.json``."""
    return f"{lo_gev:g}-{hi_gev:g} GeV"
