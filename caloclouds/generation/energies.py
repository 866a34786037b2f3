"""Incident energies for generation: a range, a list, or a text file (one energy in GeV per line).

Whether a model may generate them is one rule, the flow's: :func:`flows.sampling.check_energy_range`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from caloclouds.errors import CaloCloudsError, InputFileError

__all__ = [
    "energies_from_file",
    "incident_energies",
    "MAX_SHOWERS",
]

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
