"""Incident energies for generation: a range, a list, or a text file (one energy in GeV per line).

Energies far outside the training range of the model are refused (:func:`check_energy_range`)
unless extrapolation is asked for: the allowed band extends the training range [lo, hi] by
:data:`EXTRAPOLATION_FRACTION` of its width in ln E on each side (5.8-156 GeV for 10-90 GeV).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from caloclouds.errors import CaloCloudsError, InputFileError

__all__ = [
    "energies_from_file",
    "incident_energies",
    "allowed_energy_range_gev",
    "check_energy_range",
    "EXTRAPOLATION_FRACTION",
    "MAX_SHOWERS",
]

EXTRAPOLATION_FRACTION = 0.25  # of the training range's width in ln E, allowed on each side
MAX_SHOWERS = 100_000_000  # one request at most (the energy list alone is 400 MB)


def energies_from_file(path: str | Path) -> np.ndarray:
    """Read one energy in GeV per line; blank lines and ``#`` comments are skipped."""
    from caloclouds.io.checks import check_input_file

    path = check_input_file(path, "energies file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        raise InputFileError(path, "not a text file (expected one energy in GeV per line)")
    values = []
    for number, line in enumerate(text.splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            value = float(text)
        except ValueError:
            raise InputFileError(
                path, f"line {number}: {text!r} is not a number (one energy in GeV per line)"
            ) from None
        if not np.isfinite(value) or value <= 0:
            raise InputFileError(path, f"line {number}: energy {value} GeV must be finite and > 0")
        values.append(value)
    if not values:
        raise InputFileError(path, "no energies in file")
    return np.asarray(values, dtype=np.float32)


def incident_energies(
    *,
    energy_range_gev: tuple[float, float] | None = None,
    energies_gev: list[float] | None = None,
    energies_file: str | Path | None = None,
    n_showers: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """The energies to generate, from exactly one of the three sources.

    * ``energy_range_gev=(lo, hi)``: ``n_showers`` energies uniform in [lo, hi] (seeded);
    * ``energies_gev=[e1, e2, ...]``: ``n_showers`` showers at each energy;
    * ``energies_file``: one shower per line (``n_showers`` not needed).
    """
    given = [x is not None for x in (energy_range_gev, energies_gev, energies_file)]
    if sum(given) != 1:
        raise CaloCloudsError("give exactly one of --energy-range, --energies or --energies-file")
    if energies_file is not None:
        return energies_from_file(energies_file)
    if n_showers is None or not 1 <= n_showers <= MAX_SHOWERS:
        raise CaloCloudsError(f"-n must be a number of showers in 1-{MAX_SHOWERS:.0e}, got {n_showers}")
    if energy_range_gev is not None:
        lo, hi = energy_range_gev
        if not (0 < lo <= hi < np.inf):
            raise CaloCloudsError(f"--energy-range needs finite 0 < LO <= HI, got {lo} {hi}")
        rng = np.random.default_rng(seed)
        return rng.uniform(lo, hi, size=n_showers).astype(np.float32)
    values = np.asarray(energies_gev, dtype=np.float64)
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise CaloCloudsError(f"--energies must be positive numbers in GeV, got {energies_gev}")
    if values.size * n_showers > MAX_SHOWERS:
        raise CaloCloudsError(f"{values.size} energies x -n {n_showers} is more than {MAX_SHOWERS:.0e} showers")
    return np.repeat(values, n_showers).astype(np.float32)


def allowed_energy_range_gev(training_range_gev: tuple[float, float]) -> tuple[float, float]:
    """The band of incident energies generated without ``allow_extrapolation``."""
    lo, hi = (float(v) for v in training_range_gev)
    if not (0 < lo <= hi < np.inf):
        return 0.0, float("inf")
    margin = EXTRAPOLATION_FRACTION * np.log(hi / lo) if hi > lo > 0 else np.log(1.25)
    return float(lo * np.exp(-margin)), float(hi * np.exp(margin))


def check_energy_range(
    incident_energy_gev: np.ndarray, training_range_gev: tuple[float, float], *, allow_extrapolation: bool
) -> None:
    """Refuse energies outside :func:`allowed_energy_range_gev` unless ``allow_extrapolation``.

    Raises:
        CaloCloudsError: naming the first energy outside, the training range and the option.
    """
    energies = np.asarray(incident_energy_gev, dtype=np.float64)
    if energies.size == 0 or allow_extrapolation:
        return
    lo, hi = allowed_energy_range_gev(training_range_gev)
    outside = (energies < lo) | (energies > hi)
    if np.any(outside):
        bad = float(energies[np.argmax(outside)])
        t_lo, t_hi = training_range_gev
        raise CaloCloudsError(
            f"incident energy {bad:g} GeV is far outside the model's training range {t_lo:.4g}-{t_hi:.4g} GeV "
            f"(allowed without --allow-extrapolation: {lo:.3g}-{hi:.3g} GeV)"
        )
