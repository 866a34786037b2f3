"""The ragged shower container: every point of a batch of showers in one flat array.

A batch of N showers with P points in total is stored as

* ``points``: (P, 4) float32, columns ``x_mm, y_mm, layer, e_mev`` (local frame: the shower axis
  is +z, x and y are transverse in mm, ``layer`` is the integer silicon layer stored as float, or
  a fractional depth in layer units for models that work in continuous depth);
* ``offsets``: (N+1,) int64, shower i is ``points[offsets[i]:offsets[i+1]]``;
* ``incident_energy_gev``: (N,) float32;
* ``conditions``: extra per-shower arrays, each with N rows (incidence angles, ``raw_visible_mev``...).

Nothing is padded. All operations are vectorised over showers and points.

The ragged helpers every module uses live here too, once each, with a torch twin where the
generation or training path works on tensors (torch is imported only when a twin is called):

* :func:`shower_index` / :func:`shower_index_torch`: offsets -> the shower of every point;
* :func:`ragged_take` / :func:`ragged_take_torch`: element indices and offsets of chosen rows;
* :func:`rotate_about_beam_axis`: rotate every point about x = y = 0 by its shower's angle
  (:func:`rotate_xy`: the rotation itself, by one angle or one per point);
* :func:`standardised_w1`: the 1-D Wasserstein distance in units of a scale (the reference std).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "COLUMNS",
    "COLUMNS_V1",
    "PHI",
    "THETA",
    "Showers",
    "ragged_take",
    "ragged_take_torch",
    "rotate_about_beam_axis",
    "rotate_xy",
    "shower_index",
    "shower_index_torch",
    "standardised_w1",
]

COLUMNS: tuple[str, str, str, str] = ("x_mm", "y_mm", "layer", "e_mev")
COLUMNS_V1: tuple[str, str, str, str] = ("x_mm", "y_mm", "layer", "e_MeV")  # schema version 1 names, still read
X, Y, LAYER, E = range(4)
# The direction of incidence, as conditions (key4hep DDML's local angles: theta = acos(d_z),
# phi = atan2(d_y, d_x), degrees). A batch without them is normal incidence.
THETA, PHI = "theta_deg", "phi_deg"


def shower_index(offsets: np.ndarray) -> np.ndarray:
    """(P,) int64 index of the shower of every point of a ragged batch with (N+1,) ``offsets``."""
    offsets = np.asarray(offsets, dtype=np.int64)
    return np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))


def shower_index_torch(offsets: Tensor) -> Tensor:
    """:func:`shower_index` for a tensor of offsets, on its device."""
    import torch

    return torch.repeat_interleave(torch.arange(len(offsets) - 1, device=offsets.device), offsets[1:] - offsets[:-1])


def rotate_about_beam_axis(x_mm: Any, y_mm: Any, angle_rad: Any, shower: Any) -> tuple[Any, Any]:
    """Rotate every point about the beam axis x = y = 0 by the angle of its shower.

    Args:
        x_mm, y_mm: (P,) transverse positions (numpy or torch).
        angle_rad: (N,) one angle per shower, counter-clockwise.
        shower: (P,) the shower of every point (:func:`shower_index`).

    Returns:
        ``(x, y)`` rotated, of the inputs' type.
    """
    if isinstance(angle_rad, np.ndarray):
        cos, sin = np.cos(angle_rad)[shower], np.sin(angle_rad)[shower]
    else:
        cos, sin = angle_rad.cos()[shower], angle_rad.sin()[shower]
    return rotate_xy(x_mm, y_mm, cos, sin)


def rotate_xy(x_mm: Any, y_mm: Any, cos: Any, sin: Any) -> tuple[Any, Any]:
    """Rotate points counter-clockwise about x = y = 0: ``(cos x - sin y, sin x + cos y)``.

    ``cos`` and ``sin`` are one value for all points or one per point (numpy or torch); the
    arithmetic is done in the inputs' types, in this order (no fused operations), so that numpy
    and torch give the same bits. :func:`rotate_about_beam_axis` and the projection's placement
    (``projection.placement.place_xy``) rotate through it.
    """
    return cos * x_mm - sin * y_mm, sin * x_mm + cos * y_mm


def standardised_w1(
    a: np.ndarray,
    b: np.ndarray,
    *,
    scale: float | None = None,
    a_weights: np.ndarray | None = None,
    b_weights: np.ndarray | None = None,
) -> float:
    """W1(a, b) / scale: the 1-D Wasserstein distance in units of ``scale``.

    Args:
        a, b: 1-D samples (``b`` the reference).
        scale: the unit (default: ``std(b)``, at least 1e-12); a scale <= 0 gives 0.
        a_weights, b_weights: optional non-negative weights of the samples.

    Returns:
        The distance, or NaN when a sample is empty or its weights sum to 0.
    """
    from scipy.stats import wasserstein_distance

    if len(a) == 0 or len(b) == 0 or any(w is not None and w.sum() <= 0 for w in (a_weights, b_weights)):
        return float("nan")
    if scale is None:
        scale = max(float(np.std(b)), 1e-12)
    if scale <= 0:
        return 0.0
    return float(wasserstein_distance(a, b, a_weights, b_weights) / scale)


def ragged_take(offsets: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Element indices and new offsets selecting the rows ``idx`` of a ragged array.

    Args:
        offsets: (N+1,) int64 offsets of the ragged array.
        idx: (K,) indices of the rows to keep (any order, repeats allowed).

    Returns:
        ``(element_idx, new_offsets)``: flat indices into the element arrays and (K+1,) offsets.
    """
    idx = np.asarray(idx, dtype=np.int64)
    counts = offsets[idx + 1] - offsets[idx]
    new_offsets = np.zeros(len(idx) + 1, dtype=np.int64)
    np.cumsum(counts, out=new_offsets[1:])
    # element j of output row k comes from offsets[idx[k]] + j
    shift = np.repeat(offsets[idx] - new_offsets[:-1], counts)
    return np.arange(new_offsets[-1], dtype=np.int64) + shift, new_offsets


def ragged_take_torch(offsets: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`ragged_take` for int64 tensors, on the device of ``offsets``."""
    import torch

    counts = offsets[idx + 1] - offsets[idx]
    new_offsets = torch.zeros(len(idx) + 1, dtype=torch.int64, device=offsets.device)
    torch.cumsum(counts, 0, out=new_offsets[1:])
    shift = torch.repeat_interleave(offsets[idx] - new_offsets[:-1], counts)
    return torch.arange(int(new_offsets[-1]), dtype=torch.int64, device=offsets.device) + shift, new_offsets


@dataclass
class Showers:
    """A batch of showers as flat points plus offsets (see the module docstring).

    Args:
        points: (P, 4) float32 ``x_mm, y_mm, layer, e_mev``.
        offsets: (N+1,) int64, starting at 0 and ending at P.
        incident_energy_gev: (N,) float32.
        conditions: extra per-shower arrays with N rows each.
    """

    points: np.ndarray
    offsets: np.ndarray
    incident_energy_gev: np.ndarray
    conditions: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.points = np.ascontiguousarray(self.points, dtype=np.float32).reshape(-1, 4)
        self.offsets = np.ascontiguousarray(self.offsets, dtype=np.int64).reshape(-1)
        self.incident_energy_gev = np.ascontiguousarray(self.incident_energy_gev, dtype=np.float32).reshape(-1)
        self.conditions = {k: np.asarray(v) for k, v in self.conditions.items()}
        problem = self.check()
        if problem:
            raise ValueError(f"inconsistent Showers: {problem}")

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def empty(cls) -> Showers:
        return cls(np.zeros((0, 4), np.float32), np.zeros(1, np.int64), np.zeros(0, np.float32))

    @classmethod
    def from_counts(
        cls,
        points: np.ndarray,
        counts: np.ndarray,
        incident_energy_gev: np.ndarray,
        conditions: Mapping[str, np.ndarray] | None = None,
    ) -> Showers:
        """Build from flat points and the number of points of each shower."""
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return cls(points, offsets, incident_energy_gev, dict(conditions or {}))

    @classmethod
    def from_list(
        cls,
        showers: Sequence[np.ndarray],
        incident_energy_gev: Sequence[float] | np.ndarray,
    ) -> Showers:
        """Build from a list of (n_i, 4) arrays (a convenience for small hand-made batches)."""
        counts = np.array([len(s) for s in showers], dtype=np.int64)
        flat = (
            np.concatenate([np.asarray(s, np.float32).reshape(-1, 4) for s in showers])
            if showers
            else np.zeros((0, 4), np.float32)
        )
        return cls.from_counts(flat, counts, np.asarray(incident_energy_gev, np.float32))

    @classmethod
    def concatenate(cls, parts: Sequence[Showers]) -> Showers:
        """Join several batches into one (conditions present in every part are kept).

        The direction (``theta_deg``, ``phi_deg``) is kept when any part has it: a part without it
        is normal incidence (0, 0).
        """
        if not parts:
            return cls.empty()
        counts = np.concatenate([p.n_points for p in parts])
        if any(p.has_direction for p in parts) and not all(p.has_direction for p in parts):
            parts = [p.with_direction(p.theta_deg, p.phi_deg) for p in parts]
        keys = set(parts[0].conditions).intersection(*(p.conditions for p in parts[1:]))
        conditions = {k: np.concatenate([p.conditions[k] for p in parts]) for k in sorted(keys)}
        return cls.from_counts(
            np.concatenate([p.points for p in parts]),
            counts,
            np.concatenate([p.incident_energy_gev for p in parts]),
            conditions,
        )

    # -- direction of incidence -------------------------------------------------------------------

    @property
    def has_direction(self) -> bool:
        """True when the showers carry ``theta_deg`` and ``phi_deg`` (a file without them is normal
        incidence)."""
        return THETA in self.conditions and PHI in self.conditions

    @property
    def theta_deg(self) -> np.ndarray:
        """(N,) float64 polar angle of the incident particle from +z (the depth axis), degrees; 0 when
        the showers carry no direction."""
        return np.asarray(self.conditions.get(THETA, np.zeros(len(self))), np.float64)

    @property
    def phi_deg(self) -> np.ndarray:
        """(N,) float64 azimuth of the incident particle in the layer plane, degrees (atan2(d_y, d_x));
        0 when the showers carry no direction."""
        return np.asarray(self.conditions.get(PHI, np.zeros(len(self))), np.float64)

    def with_direction(self, theta_deg: np.ndarray, phi_deg: np.ndarray) -> Showers:
        """A copy (points shared) whose conditions carry ``theta_deg`` and ``phi_deg`` (float32)."""
        conditions = dict(self.conditions)
        conditions[THETA] = np.broadcast_to(np.asarray(theta_deg, np.float32), (len(self),)).copy()
        conditions[PHI] = np.broadcast_to(np.asarray(phi_deg, np.float32), (len(self),)).copy()
        return Showers(self.points, self.offsets, self.incident_energy_gev, conditions)

    # -- checks -----------------------------------------------------------------------------------

    def check(self) -> str | None:
        """Return a description of the first structural problem, or None if consistent."""
        n = len(self.incident_energy_gev)
        if len(self.offsets) != n + 1:
            return f"offsets has {len(self.offsets)} entries, expected N+1 = {n + 1}"
        if self.offsets[0] != 0:
            return f"offsets[0] is {self.offsets[0]}, expected 0"
        if self.offsets[-1] != len(self.points):
            return f"offsets[-1] is {self.offsets[-1]} but there are {len(self.points)} points"
        if n and np.any(np.diff(self.offsets) < 0):
            bad = int(np.argmax(np.diff(self.offsets) < 0))
            return f"offsets decrease at shower {bad}"
        for key, value in self.conditions.items():
            if len(value) != n:
                return f"condition {key!r} has {len(value)} rows, expected {n}"
        return None

    def check_values(self, *, n_layers: int | None = None) -> str | None:
        """Return a description of the first bad value, or None.

        Bad values: NaN/inf anywhere, incident energies that are not > 0, negative point energies,
        and, when ``n_layers`` is given, layers that are not integers in ``[0, n_layers)``.
        """
        if not np.all(np.isfinite(self.points)):
            row = int(np.argmax(~np.isfinite(self.points).all(axis=1)))
            return f"point {row} (shower {self.shower_of_point(row)}) has a NaN or inf value"
        if not np.all(np.isfinite(self.incident_energy_gev)):
            return "incident_energy_gev has NaN or inf values"
        if np.any(self.incident_energy_gev <= 0):
            i = int(np.argmax(self.incident_energy_gev <= 0))
            return f"shower {i} has incident energy {self.incident_energy_gev[i]:g} GeV, expected > 0"
        if np.any(self.points[:, E] < 0):
            row = int(np.argmax(self.points[:, E] < 0))
            return f"point {row} (shower {self.shower_of_point(row)}) has negative energy {self.points[row, E]:g} MeV"
        if n_layers is not None:
            layer = self.points[:, LAYER]
            bad = (layer != np.floor(layer)) | (layer < 0) | (layer >= n_layers)
            if np.any(bad):
                row = int(np.argmax(bad))
                return (
                    f"point {row} (shower {self.shower_of_point(row)}) has layer {layer[row]:g}, "
                    f"expected an integer in 0-{n_layers - 1}"
                )
        return None

    # -- sizes and indexing -----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.incident_energy_gev)

    @property
    def n_points(self) -> np.ndarray:
        """(N,) number of points of each shower."""
        return np.diff(self.offsets)

    @property
    def shower_index(self) -> np.ndarray:
        """(P,) index of the shower each point belongs to."""
        return shower_index(self.offsets)

    def shower_of_point(self, row: int) -> int:
        return int(np.searchsorted(self.offsets, row, side="right") - 1)

    def __getitem__(self, key: Any) -> Showers:
        """Select showers by integer, slice, integer array or boolean mask; always a Showers."""
        n = len(self)
        if isinstance(key, (int, np.integer)):
            i = int(key) + n if key < 0 else int(key)
            if not 0 <= i < n:
                raise IndexError(f"shower index {key} out of range for {n} showers")
            idx = np.array([i])
        elif isinstance(key, slice):
            idx = np.arange(n)[key]
        else:
            idx = np.asarray(key)
            if idx.dtype == bool:
                if idx.shape != (n,):
                    raise IndexError(f"boolean mask has shape {idx.shape}, expected ({n},)")
                idx = np.flatnonzero(idx)
            elif idx.size and not np.issubdtype(idx.dtype, np.integer):
                raise IndexError(f"cannot index showers with an array of {idx.dtype}")
            idx = idx.astype(np.int64).reshape(-1)
            if idx.size and (idx.max() >= n or idx.min() < -n):
                raise IndexError(f"shower index out of range for {n} showers")
            idx = np.where(idx < 0, idx + n, idx)
        if isinstance(key, slice) and (key.step in (None, 1)) and len(idx):
            lo, hi = self.offsets[idx[0]], self.offsets[idx[-1] + 1]
            return Showers(
                self.points[lo:hi],
                self.offsets[idx[0] : idx[-1] + 2] - lo,
                self.incident_energy_gev[idx],
                {k: v[idx] for k, v in self.conditions.items()},
            )
        point_idx, offsets = ragged_take(self.offsets, idx)
        return Showers(
            self.points[point_idx],
            offsets,
            self.incident_energy_gev[idx],
            {k: v[idx] for k, v in self.conditions.items()},
        )

    def __iter__(self) -> Iterator[Showers]:
        for i in range(len(self)):
            yield self[i]

    def shower_points(self, i: int) -> np.ndarray:
        """(n_i, 4) points of shower i, a view into ``points``."""
        return self.points[self.offsets[i] : self.offsets[i + 1]]

    def select_energy(self, lo_gev: float, hi_gev: float) -> Showers:
        """Showers with ``lo_gev <= incident_energy_gev <= hi_gev``."""
        e = self.incident_energy_gev
        return self[(e >= lo_gev) & (e <= hi_gev)]

    def chunks(self, size: int) -> Iterator[Showers]:
        """Consecutive batches of at most ``size`` showers."""
        for start in range(0, len(self), size):
            yield self[start : start + size]

    # -- columns and reductions -------------------------------------------------------------------

    @property
    def x_mm(self) -> np.ndarray:
        return self.points[:, X]

    @property
    def y_mm(self) -> np.ndarray:
        return self.points[:, Y]

    @property
    def layer(self) -> np.ndarray:
        return self.points[:, LAYER]

    @property
    def e_mev(self) -> np.ndarray:
        return self.points[:, E]

    def per_shower_sum(self, values: np.ndarray) -> np.ndarray:
        """(N,) sum of a per-point array over each shower (float64)."""
        values = np.asarray(values, dtype=np.float64)
        return np.bincount(self.shower_index, weights=values, minlength=len(self))

    def visible_energy_mev(self) -> np.ndarray:
        """(N,) summed point energy of each shower in MeV."""
        return self.per_shower_sum(self.e_mev)

    def layer_sums(self, n_layers: int, values: np.ndarray | None = None) -> np.ndarray:
        """(N, n_layers) per-layer sum of ``values`` (default: energy in MeV).

        Points are binned by ``floor(layer)``; points outside [0, n_layers) are ignored.
        """
        values = self.e_mev if values is None else values
        layer = np.floor(self.layer).astype(np.int64)
        ok = (layer >= 0) & (layer < n_layers)
        flat = self.shower_index[ok] * n_layers + layer[ok]
        sums = np.bincount(flat, weights=np.asarray(values, np.float64)[ok], minlength=len(self) * n_layers)
        return sums.reshape(len(self), n_layers)

    def layer_counts(self, n_layers: int) -> np.ndarray:
        """(N, n_layers) number of points per layer."""
        return self.layer_sums(n_layers, np.ones(len(self.points))).astype(np.int64)

    def centre_of_gravity_mm(self) -> np.ndarray:
        """(N, 2) energy-weighted mean x and y in mm (0 for a shower without energy)."""
        e = self.visible_energy_mev()
        safe = np.where(e > 0, e, 1.0)
        cx = self.per_shower_sum(self.x_mm * self.e_mev) / safe
        cy = self.per_shower_sum(self.y_mm * self.e_mev) / safe
        return np.stack([cx, cy], axis=1)

    # -- awkward ----------------------------------------------------------------------------------

    def to_awkward(self) -> Any:
        """An awkward array of records ``{x_mm, y_mm, layer, e_mev}``, one list per shower."""
        import awkward as ak

        record = ak.zip({c: self.points[:, i] for i, c in enumerate(COLUMNS)})
        return ak.unflatten(record, self.n_points)

    @classmethod
    def from_awkward(
        cls,
        array: Any,
        incident_energy_gev: np.ndarray,
        conditions: Mapping[str, np.ndarray] | None = None,
    ) -> Showers:
        """Inverse of :meth:`to_awkward`: a jagged record array with fields ``x_mm, y_mm, layer, e_mev``
        (or the version-1 name ``e_MeV``)."""
        import awkward as ak

        fields = ak.fields(array)
        names = COLUMNS_V1 if COLUMNS[E] not in fields and COLUMNS_V1[E] in fields else COLUMNS
        missing = [c for c in names if c not in fields]
        if missing:
            raise ValueError(f"awkward array lacks fields {missing}; it has {fields}")
        counts = ak.to_numpy(ak.num(array, axis=1))
        flat = np.stack([ak.to_numpy(ak.flatten(array[c])) for c in names], axis=1)
        return cls.from_counts(flat, counts, incident_energy_gev, conditions)

    def __repr__(self) -> str:
        n = len(self)
        if n == 0:
            return "Showers(0 showers)"
        e = self.incident_energy_gev
        return (
            f"Showers({n} showers, {len(self.points)} points, "
            f"E_inc {e.min():.3g}-{e.max():.3g} GeV, conditions={sorted(self.conditions)})"
        )
