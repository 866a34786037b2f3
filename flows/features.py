"""Per-shower targets of the Shower Flow, computed from any shower file (chunk by chunk, cached).

For every shower the flow learns, given the incident energy:

* ``points_per_layer`` n_l (L,) and ``energy_per_layer_mev`` E_l (L,), L from the detector config;
* the energy-weighted centre of gravity ``cog_mm`` (x, y);
* and through them N = sum n_l and E_vis = sum E_l (points outside layers 0..L-1 are ignored, so
  the totals match the per-layer values exactly).

A flow conditioned on the direction (``theta_deg`` among ``flow.condition_names``) sees each shower
in the frame of its inclined axis (:mod:`caloclouds.direction`): the CoG is the offset from that
axis, and φ is put back at generation by a turn. A shower without a direction has θ = φ = 0.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from caloclouds.errors import InputFileError
from caloclouds.io.checks import check_input_file
from caloclouds.io.formats import iter_training_showers
from caloclouds.io.atomic import atomic_path
from caloclouds.direction import to_axis_frame
from caloclouds.showers import PHI, THETA, Showers

__all__ = ["ShowerFeatures", "compute_features", "file_features"]

_CACHE_VERSION = 2  # bump when the feature definition changes; old caches are then recomputed


@dataclass
class ShowerFeatures:
    """Flow targets and conditions of N showers (numpy arrays).

    Args:
        incident_energy_gev: (N,) float64 incident energy.
        points_per_layer: (N, L) int64 number of points in each layer.
        energy_per_layer_mev: (N, L) float64 summed point energy in each layer.
        cog_mm: (N, 2) float64 energy-weighted mean x and y.
        conditions: (N, K) float64 extra conditions (K may be 0).
    """

    incident_energy_gev: np.ndarray
    points_per_layer: np.ndarray
    energy_per_layer_mev: np.ndarray
    cog_mm: np.ndarray
    conditions: np.ndarray

    def __len__(self) -> int:
        return len(self.incident_energy_gev)

    @property
    def n_layers(self) -> int:
        return self.points_per_layer.shape[1]

    @property
    def n_points(self) -> np.ndarray:
        """(N,) total number of points."""
        return self.points_per_layer.sum(axis=1)

    @property
    def visible_energy_mev(self) -> np.ndarray:
        """(N,) total visible energy in MeV."""
        return self.energy_per_layer_mev.sum(axis=1)

    def __getitem__(self, key: slice | np.ndarray) -> ShowerFeatures:
        return ShowerFeatures(
            self.incident_energy_gev[key],
            self.points_per_layer[key],
            self.energy_per_layer_mev[key],
            self.cog_mm[key],
            self.conditions[key],
        )

    @classmethod
    def concatenate(cls, parts: Sequence[ShowerFeatures]) -> ShowerFeatures:
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))

    def to_npz_dict(self) -> dict[str, np.ndarray]:
        return {f: getattr(self, f) for f in _FIELDS}


_FIELDS = ("incident_energy_gev", "points_per_layer", "energy_per_layer_mev", "cog_mm", "conditions")


def _condition_matrix(showers: Showers, condition_names: Sequence[str], source: str) -> np.ndarray:
    columns = []
    for name in condition_names:
        if name in (THETA, PHI):  # normal incidence when absent
            columns.append((showers.theta_deg if name == THETA else showers.phi_deg).reshape(len(showers), 1))
            continue
        if name not in showers.conditions:
            msg = f"condition {name!r} (flow.condition_names) not found; the showers have {sorted(showers.conditions)}"
            raise InputFileError(source, msg)
        columns.append(np.asarray(showers.conditions[name], np.float64).reshape(len(showers), -1))
    if not columns:
        return np.zeros((len(showers), 0), np.float64)
    return np.concatenate(columns, axis=1)


def compute_features(
    showers: Showers,
    *,
    n_layers: int,
    condition_names: Sequence[str] = (),
    source: str = "showers",
    layer_z_mm: Sequence[float] | None = None,
) -> ShowerFeatures:
    """Flow targets of a batch of showers.

    Args:
        showers: the showers (``layer`` column: integer layer index; binned by floor).
        n_layers: number of detector layers L.
        condition_names: extra per-shower conditions to take from ``showers.conditions``.
        source: name used in error messages (the file).
        layer_z_mm: (L,) depth of each silicon layer's middle; needed when ``theta_deg`` is a
            condition (the CoG is then taken in the frame of the inclined axis).

    Returns:
        The :class:`ShowerFeatures` of the batch.
    """
    if THETA in condition_names:
        if layer_z_mm is None:
            raise ValueError("a flow conditioned on theta_deg needs the layer depths (layer_z_mm)")
        showers = to_axis_frame(showers, np.asarray(layer_z_mm, np.float64))
    elif showers.has_direction and np.any(showers.theta_deg):
        msg = (
            "holds angled showers (theta_deg > 0), but this flow is not conditioned on the direction "
            "(add theta_deg to flow.condition_names)"
        )
        raise InputFileError(source, msg)
    counts = showers.layer_counts(n_layers)
    energy = showers.layer_sums(n_layers)
    in_range = (showers.layer >= 0) & (showers.layer < n_layers)
    # CoG of the points that are counted (points outside the layers are ignored everywhere)
    e_used = np.where(in_range, showers.e_mev, 0.0)
    e_sum = showers.per_shower_sum(e_used)
    safe = np.where(e_sum > 0, e_sum, 1.0)
    cog = np.stack(
        [showers.per_shower_sum(showers.x_mm * e_used) / safe, showers.per_shower_sum(showers.y_mm * e_used) / safe],
        axis=1,
    )
    return ShowerFeatures(
        incident_energy_gev=showers.incident_energy_gev.astype(np.float64),
        points_per_layer=counts.astype(np.int64),
        energy_per_layer_mev=energy.astype(np.float64),
        cog_mm=cog,
        conditions=_condition_matrix(showers, condition_names, source),
    )


def _cache_key(path: Path, n_layers: int, condition_names: Sequence[str]) -> str:
    stat = path.stat()
    text = f"{_CACHE_VERSION}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{n_layers}|{','.join(condition_names)}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_features(
    path: str | Path,
    *,
    n_layers: int,
    condition_names: Sequence[str] = (),
    chunk_showers: int = 1000,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    layer_z_mm: Sequence[float] | None = None,
) -> ShowerFeatures:
    """Flow targets of every shower of a file, read chunk by chunk, cached in ``cache_dir``.

    The cache file is named after the input file and a key of its path, size, modification time,
    the layer count and the conditions, so a changed file is never served stale features.

    Args:
        path: a shower HDF5 file.
        n_layers: number of detector layers L.
        condition_names: extra per-shower condition datasets to read.
        chunk_showers: showers read at a time.
        cache_dir: folder for the ``features-*.npz`` cache (no caching if None).
        progress: show a progress bar.
        layer_z_mm: as in :func:`compute_features`.

    Returns:
        The :class:`ShowerFeatures` of the whole file.
    """
    path = Path(path)
    check_input_file(path, "shower file")
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"features-{path.stem}-{_cache_key(path, n_layers, condition_names)}.npz"
        if cache.is_file():
            with np.load(cache) as data:
                return ShowerFeatures(*(data[f] for f in _FIELDS))
    from tqdm import tqdm

    parts = []
    chunks = iter_training_showers(path, chunk_showers=chunk_showers)  # our HDF5 or ROOT; clear errors otherwise
    for chunk in tqdm(chunks, desc=f"features {path.name}", unit="chunk", disable=not progress, leave=False):
        parts.append(
            compute_features(
                chunk, n_layers=n_layers, condition_names=condition_names, source=str(path), layer_z_mm=layer_z_mm
            )
        )
    features = ShowerFeatures.concatenate(parts)
    if cache is not None:
        with atomic_path(cache) as tmp:
            with open(tmp, "wb") as out:
                np.savez(out, **features.to_npz_dict())
    return features
