"""Incident energies for generation: a range, a list, or a file (text, one energy in GeV per line, or
a shower file, one shower per energy).

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


def energies_from_file(path: str | Path, *, n_showers: int | None = None) -> np.ndarray:
    """One incident energy in GeV (float32) per shower to generate, in file order, from either kind
    of file:

    * a text file, one energy in GeV per line (blank lines and ``#`` comments are skipped);
    * a shower file of any supported format (e.g. the Geant4 reference of ``caloclouds evaluate``):
      its showers' incident energies (our HDF5 is read lazily, only ``incident_energy_gev``).

    Args:
        n_showers: take only the first ``n_showers`` energies (None: all).

    Raises:
        InputFileError: missing or unreadable file, no energies, a bad line, or fewer than ``n_showers``.
    """
    from caloclouds.io.checks import check_input_file

    path = check_input_file(path, "energies file")
    if n_showers is not None and n_showers < 1:
        raise InputFileError(path, f"-n must be >= 1, got {n_showers}")
    import h5py

    with open(path, "rb") as fh:
        head = fh.read(4)
    if head == b"root" or h5py.is_hdf5(path):  # a shower file (ROOT or HDF5), read by its own reader
        energies = _energies_of_shower_file(path, n_showers)
        if len(energies) == 0:
            raise InputFileError(path, "holds no showers")
    else:
        energies = _energies_of_text(path)
    if n_showers is not None:
        if n_showers > len(energies):
            raise InputFileError(path, f"holds {len(energies)} showers, fewer than -n {n_showers}")
        energies = energies[:n_showers]
    return energies


def _energies_of_text(path: Path) -> np.ndarray:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        text = "\x00"
    if "\x00" in text:
        raise InputFileError(path, "neither a text file (one energy in GeV per line) nor a shower file")
    values = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            value = float(entry)
        except ValueError:
            raise InputFileError(
                path, f"line {number}: {entry!r} is not a number (one energy in GeV per line, or a shower file)"
            ) from None
        if not np.isfinite(value) or value <= 0:
            raise InputFileError(path, f"line {number}: energy {value} GeV must be finite and > 0")
        values.append(value)
    if not values:
        raise InputFileError(path, "no energies in file")
    return np.asarray(values, dtype=np.float32)


def _energies_of_shower_file(path: Path, n_showers: int | None) -> np.ndarray:
    from caloclouds.io import ShowerFile, detect_format, iter_any

    if detect_format(path) == "hdf5":
        with ShowerFile(path) as f:
            return np.asarray(f.incident_energy_gev, dtype=np.float32)
    parts, n = [], 0
    for chunk in iter_any(path):
        parts.append(chunk.incident_energy_gev)
        n += len(chunk)
        if n_showers is not None and n >= n_showers:
            break
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def incident_energies(
    *,
    energy_range_gev: tuple[float, float] | None = None,
    energies_gev: list[float] | None = None,
    energies_from: str | Path | None = None,
    n_showers: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """The energies to generate, from exactly one of the three sources.

    * ``energy_range_gev=(lo, hi)``: ``n_showers`` energies uniform in [lo, hi] (seeded);
    * ``energies_gev=[e1, e2, ...]``: ``n_showers`` showers at each energy;
    * ``energies_from``: a text or shower file, one shower per energy (:func:`energies_from_file`;
      ``n_showers``: the first N).
    """
    given = [x is not None for x in (energy_range_gev, energies_gev, energies_from)]
    if sum(given) != 1:
        raise CaloCloudsError("give exactly one of --energy-range, --energies or --energies-from")
    if energies_from is not None:
        return energies_from_file(energies_from, n_showers=n_showers)
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
