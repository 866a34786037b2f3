"""Per-shower cell-level observables and the high-level features of the classifier test.

Everything here works on projected cells (any object with the ``CellHits`` attributes of
``projection``: ``offsets``, ``layer``, ``x_mm``, ``y_mm``, ``z_mm``, ``e_mev``), after the cell
threshold. Per shower we keep

* the number of hits (cells above threshold) and the visible energy, and E_vis / E_inc;
* the energy per layer (longitudinal profile);
* the energy-weighted centre of gravity in x, y and depth z;
* per hit: its energy (the cell-energy spectrum), its layer and its distance to the shower axis
  (for the radial profile).

The shower axis is the **nominal axis** x = y = 0 of the local frame by default: the Geant4 photons
enter there at normal incidence, and a model that puts its showers off axis should be penalised
by the radial observables rather than hidden by re-centring. ``axis="cog"`` measures radii about
each shower's own energy-weighted x, y instead.

**Oblique incidence.** A shower whose photon arrives at polar angle theta and azimuth phi (the
``theta_deg``/``phi_deg`` conditions) has its axis inclined: at depth z it sits at
``z tan(theta) (cos phi, sin phi)`` from the impact point (:func:`inclined_axis_slope`). With ``axis_slope``
given, the radii are measured about that inclined axis, each hit at its cell's depth ``z_mm`` (the
middle of the silicon layer, ``detector.silicon_front_mm[k] + thickness / 2``); the hits' x, y and
the centre of gravity stay in the layer frame relative to the impact point. The direction is kept
with the observables (``theta_deg``, ``phi_deg``) for the classifiers and the theta breakdown.

The 10 longitudinal and 10 radial energy bins follow the CaloClouds II paper: their edges are the
deciles of the hit counts of the reference (Geant4) set, so each bin holds about a tenth of the
reference hits. :func:`decile_edges` computes them once from the reference; the same edges are
then applied to every sample and stored with the results.

References:
    Buss et al., "CaloClouds II: ultra-fast geometry-independent highly-granular calorimeter
    simulation", JINST 19 (2024) P04020, arXiv:2309.05704, Sec. 5 and Table 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from caloclouds.showers import ragged_take, shower_index

__all__ = [
    "CellObservables",
    "BinEdges",
    "FEATURE_NAMES",
    "inclined_axis_slope",
    "compute_observables",
    "direction_features",
    "decile_edges",
    "binned_energies",
    "high_level_features",
]

Axis = Literal["nominal", "cog"]
_MEV_PER_GEV = 1000.0


@dataclass
class CellObservables:
    """Cell-level observables of N showers with H hits in total (after the threshold).

    Attributes:
        incident_energy_gev: (N,) incident energy.
        n_hits: (N,) number of cells above threshold.
        e_vis_mev: (N,) summed cell energy.
        layer_e_mev: (N, L) energy per layer (the longitudinal profile).
        cog_mm: (N, 3) energy-weighted x, y and depth z of the cells; 0 for an empty shower.
        hit_offsets: (N+1,) shower i owns hits ``hit_offsets[i]:hit_offsets[i+1]``.
        hit_e_mev: (H,) cell energies (the cell-energy spectrum).
        hit_layer: (H,) layer index of each hit.
        hit_r_mm: (H,) distance of each hit's cell centre to the shower axis.
        hit_x_mm, hit_y_mm: (H,) transverse cell centre of each hit (the low-level classifier's input).
        theta_deg, phi_deg: (N,) direction of incidence of each shower, or None (normal incidence,
            a sample without direction).
    """

    incident_energy_gev: np.ndarray
    n_hits: np.ndarray
    e_vis_mev: np.ndarray
    layer_e_mev: np.ndarray
    cog_mm: np.ndarray
    hit_offsets: np.ndarray
    hit_e_mev: np.ndarray
    hit_layer: np.ndarray
    hit_r_mm: np.ndarray
    hit_x_mm: np.ndarray
    hit_y_mm: np.ndarray
    theta_deg: np.ndarray | None = None
    phi_deg: np.ndarray | None = None

    @property
    def has_direction(self) -> bool:
        return self.theta_deg is not None and self.phi_deg is not None

    def __len__(self) -> int:
        return len(self.n_hits)

    @property
    def n_layers(self) -> int:
        return self.layer_e_mev.shape[1]

    @property
    def e_ratio(self) -> np.ndarray:
        """(N,) E_vis / E_inc (both in MeV): the sampling fraction seen by the cells."""
        return self.e_vis_mev / (_MEV_PER_GEV * self.incident_energy_gev.astype(np.float64))

    @property
    def hit_shower(self) -> np.ndarray:
        """(H,) shower index of each hit."""
        return shower_index(self.hit_offsets)

    def take(self, idx: np.ndarray) -> CellObservables:
        """The observables of the showers ``idx`` (in that order)."""
        idx = np.asarray(idx, dtype=np.int64)
        hit_idx, offsets = ragged_take(self.hit_offsets, idx)
        return CellObservables(
            incident_energy_gev=self.incident_energy_gev[idx],
            n_hits=self.n_hits[idx],
            e_vis_mev=self.e_vis_mev[idx],
            layer_e_mev=self.layer_e_mev[idx],
            cog_mm=self.cog_mm[idx],
            hit_offsets=offsets,
            hit_e_mev=self.hit_e_mev[hit_idx],
            hit_layer=self.hit_layer[hit_idx],
            hit_r_mm=self.hit_r_mm[hit_idx],
            hit_x_mm=self.hit_x_mm[hit_idx],
            hit_y_mm=self.hit_y_mm[hit_idx],
            theta_deg=None if self.theta_deg is None else self.theta_deg[idx],
            phi_deg=None if self.phi_deg is None else self.phi_deg[idx],
        )


def inclined_axis_slope(theta_deg: np.ndarray, phi_deg: np.ndarray) -> np.ndarray:
    """(N, 2) float64 transverse displacement of each shower's axis per mm of depth:
    ``tan(theta) (cos phi, sin phi)`` (key4hep DDML's local angles, degrees)."""
    theta = np.radians(np.asarray(theta_deg, dtype=np.float64).reshape(-1))
    phi = np.radians(np.asarray(phi_deg, dtype=np.float64).reshape(-1))
    return np.tan(theta)[:, None] * np.column_stack([np.cos(phi), np.sin(phi)])


def direction_features(obs: CellObservables) -> np.ndarray | None:
    """(N, 3) float64 ``theta_deg, cos phi, sin phi`` of every shower (phi continuous across 0/360),
    the conditions the classifiers see next to the showers' features; None without a direction."""
    if not obs.has_direction:
        return None
    phi = np.radians(np.asarray(obs.phi_deg, dtype=np.float64))
    return np.column_stack([np.asarray(obs.theta_deg, dtype=np.float64), np.cos(phi), np.sin(phi)])


def compute_observables(
    hits: Any,
    incident_energy_gev: np.ndarray,
    *,
    n_layers: int,
    threshold_mev: float | None = None,
    axis: Axis = "nominal",
    axis_mm: np.ndarray | None = None,
    axis_slope: np.ndarray | None = None,
    direction_deg: tuple[np.ndarray, np.ndarray] | None = None,
) -> CellObservables:
    """Observables of every shower from its projected cells.

    Args:
        hits: a ``projection.CellHits`` (or any object with its attributes), usually already
            thresholded by ``projection.project(..., threshold_mev=...)``.
        incident_energy_gev: (N,) incident energy of each shower.
        n_layers: number of detector layers (width of the longitudinal profile).
        threshold_mev: if given, cells with energy below it are dropped here as well.
        axis: ``"nominal"`` (radii about x = y = 0) or ``"cog"`` (about each shower's own x, y CoG).
        axis_mm: optional (N, 2) position of each shower's axis in the cells' frame (its impact
            position, :mod:`~caloclouds.evaluation.impact`): the hits' x, y (and so the CoG and the
            radii) are then measured from it. None: every axis at x = y = 0.
        axis_slope: optional (N, 2) inclination of each shower's axis, mm per mm of depth
            (:func:`inclined_axis_slope`): with ``axis="nominal"`` the radii are measured about the inclined
            axis at each hit's depth ``z_mm``. None: a vertical axis (normal incidence).
        direction_deg: optional ``(theta_deg, phi_deg)`` of every shower, kept with the observables.

    Returns:
        The :class:`CellObservables`; cells with zero energy are never counted as hits.
    """
    if axis not in ("nominal", "cog"):
        msg = f"axis must be 'nominal' or 'cog', got {axis!r}"
        raise ValueError(msg)
    offsets = np.asarray(hits.offsets, dtype=np.int64)
    n = len(offsets) - 1
    incident = np.asarray(incident_energy_gev, dtype=np.float32).reshape(-1)
    if len(incident) != n:
        msg = f"incident_energy_gev has {len(incident)} entries but the cell hits hold {n} showers"
        raise ValueError(msg)
    e = np.asarray(hits.e_mev, dtype=np.float64)
    keep = e > 0.0
    if threshold_mev is not None:
        keep &= e >= threshold_mev  # as in CaloClouds' mip_cut: only cells below it are removed
    shower = shower_index(offsets)[keep]
    e = e[keep]
    layer = np.asarray(hits.layer, dtype=np.int64)[keep]
    x = np.asarray(hits.x_mm, dtype=np.float64)[keep]
    y = np.asarray(hits.y_mm, dtype=np.float64)[keep]
    if axis_mm is not None:
        axis_mm = np.asarray(axis_mm, dtype=np.float64)
        if axis_mm.shape != (n, 2):
            raise ValueError(f"axis_mm must have shape ({n}, 2), got {axis_mm.shape}")
        x = x - axis_mm[shower, 0]
        y = y - axis_mm[shower, 1]
    z = np.asarray(hits.z_mm, dtype=np.float64)[keep]
    if len(layer) and (layer.min() < 0 or layer.max() >= n_layers):
        msg = f"cell layers span {layer.min()}..{layer.max()}, outside 0..{n_layers - 1}"
        raise ValueError(msg)

    n_hits = np.bincount(shower, minlength=n).astype(np.int64)
    hit_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(n_hits, out=hit_offsets[1:])
    e_vis = np.bincount(shower, weights=e, minlength=n)
    layer_e = np.bincount(shower * n_layers + layer, weights=e, minlength=n * n_layers)
    safe = np.where(e_vis > 0, e_vis, 1.0)
    cog = np.stack([np.bincount(shower, weights=e * c, minlength=n) / safe for c in (x, y, z)], axis=1)
    if axis == "cog":
        r = np.hypot(x - cog[shower, 0], y - cog[shower, 1])
    elif axis_slope is not None:
        slope = np.asarray(axis_slope, dtype=np.float64)
        if slope.shape != (n, 2):
            raise ValueError(f"axis_slope must have shape ({n}, 2), got {slope.shape}")
        r = np.hypot(x - z * slope[shower, 0], y - z * slope[shower, 1])
    else:
        r = np.hypot(x, y)
    theta = phi = None
    if direction_deg is not None:
        theta, phi = (np.asarray(a, dtype=np.float64).reshape(-1) for a in direction_deg)
        if len(theta) != n or len(phi) != n:
            raise ValueError(f"direction_deg must hold {n} angles each, got {len(theta)} and {len(phi)}")
    return CellObservables(
        incident_energy_gev=incident,
        n_hits=n_hits,
        e_vis_mev=e_vis,
        layer_e_mev=layer_e.reshape(n, n_layers),
        cog_mm=cog,
        hit_offsets=hit_offsets,
        hit_e_mev=e,
        hit_layer=layer,
        hit_r_mm=r,
        hit_x_mm=x,
        hit_y_mm=y,
        theta_deg=theta,
        phi_deg=phi,
    )


# ------------------------------------------------------------------------------------------------
# Decile bins (CaloClouds II, Sec. 5: "the bin edges are chosen such that each bin contains
# approximately 10 % of the Geant4 hits").


@dataclass(frozen=True)
class BinEdges:
    """Edges of the longitudinal and radial energy bins.

    Attributes:
        layer: (B_l + 1,) integer layer edges; bin k holds layers ``layer[k] <= l < layer[k+1]``
            (the last edge is the number of layers, so the last bin includes the last layer).
        radius_mm: (B_r + 1,) radius edges, from 0 to infinity; bin k holds
            ``radius_mm[k] <= r < radius_mm[k+1]``.
    """

    layer: np.ndarray
    radius_mm: np.ndarray

    def to_dict(self) -> dict[str, list[float]]:
        return {"layer": [int(v) for v in self.layer], "radius_mm": [float(v) for v in self.radius_mm]}


def _strictly_increasing(idx: np.ndarray, n_candidates: int) -> np.ndarray:
    """Nudge sorted interior edge indices in [1, n_candidates-1] so that they are distinct."""
    idx = np.sort(np.asarray(idx, dtype=np.int64))
    k = len(idx)
    if n_candidates - 1 < k:
        msg = f"cannot place {k} distinct interior edges among {n_candidates - 1} candidates"
        raise ValueError(msg)
    # lower bound j+1 and upper bound n_candidates-1-(k-1-j) keep room for every other edge
    lo = np.arange(1, k + 1)
    hi = n_candidates - k + np.arange(k)
    idx = np.clip(idx, lo, hi)
    for j in range(1, k):  # k <= number of bins (10): not a loop over data
        idx[j] = max(idx[j], idx[j - 1] + 1)
    return idx


def decile_edges(
    reference: CellObservables,
    *,
    n_longitudinal: int = 10,
    n_radial: int = 10,
) -> BinEdges:
    """Bin edges such that each bin holds about the same number of reference hits.

    Longitudinal edges are integer layer boundaries whose cumulative hit fraction is closest to
    k / n_longitudinal. Radial edges are placed half-way between neighbouring distinct hit radii,
    again closest to the target fractions, so no hit sits on an edge.

    Args:
        reference: observables of the reference (Geant4) set.
        n_longitudinal: number of longitudinal bins (10 in the paper).
        n_radial: number of radial bins (10 in the paper).

    Returns:
        The :class:`BinEdges`.
    """
    if len(reference.hit_layer) == 0:
        raise ValueError("the reference has no hits above threshold: cannot place decile edges")
    n_layers = reference.n_layers
    counts = np.bincount(reference.hit_layer, minlength=n_layers)
    below = np.concatenate([[0], np.cumsum(counts)]) / counts.sum()  # fraction with layer < l
    targets = np.arange(1, n_longitudinal) / n_longitudinal
    idx = np.abs(below[None, :] - targets[:, None]).argmin(axis=1)
    layer_edges = np.concatenate([[0], _strictly_increasing(idx, n_layers + 1), [n_layers]])

    radii, r_counts = np.unique(reference.hit_r_mm, return_counts=True)
    if len(radii) < n_radial:
        msg = f"the reference hits have only {len(radii)} distinct radii, fewer than {n_radial} bins"
        raise ValueError(msg)
    r_below = np.cumsum(r_counts)[:-1] / r_counts.sum()  # fraction with r <= radii[j], j < last
    mids = 0.5 * (radii[1:] + radii[:-1])  # candidate edge j between radii[j] and radii[j+1]
    targets = np.arange(1, n_radial) / n_radial
    ridx = np.abs(r_below[None, :] - targets[:, None]).argmin(axis=1)
    ridx = _strictly_increasing(ridx + 1, len(mids) + 1) - 1
    radius_edges = np.concatenate([[0.0], mids[ridx], [np.inf]])
    return BinEdges(layer=layer_edges.astype(np.int64), radius_mm=radius_edges)


def binned_energies(obs: CellObservables, edges: BinEdges) -> tuple[np.ndarray, np.ndarray]:
    """Energy per shower in the longitudinal and radial bins.

    Returns:
        ``(longitudinal, radial)``: (N, B_l) and (N, B_r) summed cell energy in MeV.
    """
    n = len(obs)
    n_long = len(edges.layer) - 1
    n_rad = len(edges.radius_mm) - 1
    layer_bin = np.searchsorted(edges.layer, np.arange(obs.n_layers), side="right") - 1
    layer_bin = np.clip(layer_bin, 0, n_long - 1)
    longitudinal = np.zeros((n, n_long))
    np.add.at(longitudinal.T, layer_bin, obs.layer_e_mev.T)  # adds whole (N,) columns, L times
    r_bin = np.clip(np.searchsorted(edges.radius_mm, obs.hit_r_mm, side="right") - 1, 0, n_rad - 1)
    radial = np.bincount(obs.hit_shower * n_rad + r_bin, weights=obs.hit_e_mev, minlength=n * n_rad).reshape(n, n_rad)
    return longitudinal, radial


def _feature_names(n_long: int, n_rad: int) -> tuple[str, ...]:
    return (
        ("cog_x_mm", "cog_y_mm", "cog_z_mm", "n_hits", "e_ratio")
        + tuple(f"e_long_{k}_mev" for k in range(n_long))
        + tuple(f"e_radial_{k}_mev" for k in range(n_rad))
    )


#: Names of the 25 high-level features (10 longitudinal and 10 radial bins).
FEATURE_NAMES: tuple[str, ...] = _feature_names(10, 10)


def high_level_features(obs: CellObservables, edges: BinEdges) -> tuple[np.ndarray, tuple[str, ...]]:
    """The high-level feature vector of the CaloClouds II classifier test, one row per shower.

    Columns: CoG x, y, z (mm), number of hits, E_vis / E_inc, the energy in each longitudinal bin
    and in each radial bin (MeV): 5 + 10 + 10 = 25 with the default edges.

    Returns:
        ``(features, names)``: (N, F) float64 and the F column names.
    """
    longitudinal, radial = binned_energies(obs, edges)
    features = np.column_stack([obs.cog_mm, obs.n_hits.astype(np.float64), obs.e_ratio, longitudinal, radial])
    return features, _feature_names(longitudinal.shape[1], radial.shape[1])
