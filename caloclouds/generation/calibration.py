"""Calibration of generated point clouds onto the Shower Flow's per-shower quantities.

The diffusion model places points i.i.d.; the Shower Flow knows how many points and how much energy
each layer has. These functions force the points onto the flow's values, for a whole ragged batch at
once (torch, CPU or CUDA, no loop over showers):

1. :func:`assign_layers_by_depth`: sort each shower's points by depth; layer l receives exactly n_l.
2. :func:`rescale_layer_energies`: negative energies go to 0, then each layer is scaled to E_l.
3. the transverse position, one of (``COG_MODES``):

   * ``rotate``: :func:`rotate_about_axis` turns each shower by a random angle about the beam
     axis. The detector is symmetric under it, so this keeps the network's own CoG fluctuations and
     removes any systematic x/y offset. Those fluctuations are too small (point-level CoG x
     0.16 mm rms for the per-layer model, Geant4 0.22 mm: the network's points are independent,
     while a Geant4 shower moves as a whole); a lumpy core (below) hides this at cell level;
   * ``flow``: :func:`shift_centre_of_gravity` moves x and y so that the energy-weighted CoG
     equals the flow's (the CaloClouds II step), which has Geant4's spread. With a lumpy core the
     shift widens the cell-level CoG (1.5x Geant4's for the previous depth-rank model); with the
     core sharing below the cell-level CoG is Geant4's (the shipped model's setting);
   * ``none``: the network's positions as they are.

4. :func:`share_core_energy` (``generation.core_radius_mm`` > 0): each point near the shower axis
   becomes four points at x +- s, y +- s with a quarter of its energy. The shower axis is where four
   ILD cells meet, and Geant4's clustered core is one point per 0.848 mm sub-cell on each side of
   it, so the four central cells share a layer's core energy evenly (hottest / mean of the four:
   1.26 in the training showers at 60-90 GeV). The network's core is a few heavier points placed
   independently (1.75); sharing them with s = 1 mm gives 1.27. Each point's energy-weighted
   position is kept, so the CoG does not move.

Before 3., the radial calibration (:class:`RadialCalibration`, :func:`map_radii`) moves each point
along its direction from the axis so that the energy-weighted radial profile of every layer is
Geant4's, as a function of the incident energy (fitted by ``caloclouds calibrate``).

The generator runs 2. to 4. (with the radial calibration) as one TorchScript call,
:func:`calibrate_points`, the same operations as the functions one by one, so the same bits.

The N-points calibration (:class:`PointCountCalibration`) maps the flow's N onto the number of points
the diffusion model needs to give the right number of cells, fitted by ``caloclouds calibrate``.

References:
    Buhmann et al., "CaloClouds II" (arXiv:2309.05704), Sec. 3.3 and the reference notes, Sec. 5.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from caloclouds.config import COG_MODES  # re-exported: the generator's modes are the config's

# the ragged helpers live next to Showers; imported here under the names this module has always exported
from caloclouds.rounding import largest_remainder
from caloclouds.showers import shower_index_torch as shower_of_point

__all__ = [
    "COG_MODES",
    "shower_of_point",
    "random_angles",
    "rotate_about_axis",
    "rotate_showers",
    "calibrate_points",
    "assign_layers_by_depth",
    "rescale_layer_energies",
    "rescale_energies_of_showers",
    "shift_centre_of_gravity",
    "shift_showers_to_cog",
    "largest_remainder",
    "share_core_energy",
    "share_core_points",
    "map_radii",
    "radial_grid",
    "PointCountCalibration",
    "RadialCalibration",
]


def assign_layers_by_depth(depth: Tensor, offsets: Tensor, points_per_layer: Tensor) -> Tensor:
    """Integer layer of each point such that shower b's layer l holds ``points_per_layer[b, l]`` points.

    Within each shower the shallowest points go to the first non-empty layer, and so on (assignment
    by depth rank), which keeps the model's longitudinal ordering while matching the flow's counts.

    Args:
        depth: (P,) continuous depth of each point (any monotonic depth unit).
        offsets: (B+1,) int64 ragged offsets; shower b has ``offsets[b+1]-offsets[b]`` points.
        points_per_layer: (B, L) int64 with ``points_per_layer.sum(1) == diff(offsets)``.

    Returns:
        (P,) int64 layer index of each point, in the input order.
    """
    counts = offsets[1:] - offsets[:-1]
    if not torch.equal(points_per_layer.sum(1), counts):
        msg = "points_per_layer rows must sum to the number of points of each shower"
        raise ValueError(msg)
    n_showers, n_layers = points_per_layer.shape
    shower = shower_of_point(offsets)
    # sort by depth, then stably by shower: the points of each shower end up contiguous and depth-ordered
    by_depth = torch.argsort(depth, stable=True)
    order = by_depth[torch.argsort(shower[by_depth], stable=True)]
    labels = torch.repeat_interleave(
        torch.arange(n_layers, device=depth.device).repeat(n_showers), points_per_layer.reshape(-1)
    )
    layer = torch.empty_like(labels)
    layer[order] = labels
    return layer


def rescale_layer_energies(e_mev: Tensor, layer: Tensor, offsets: Tensor, energy_per_layer_mev: Tensor) -> Tensor:
    """Scale the point energies of every (shower, layer) so that they sum to ``energy_per_layer_mev``.

    Negative energies are set to 0 first. A layer whose points carry no positive energy shares its
    target equally among its points. Energy asked for in a layer that has no points cannot be placed;
    the shower's other layers are then scaled up so that the shower's total is still kept.

    Args:
        e_mev: (P,) point energies.
        layer: (P,) int64 layer of each point.
        offsets: (B+1,) ragged offsets.
        energy_per_layer_mev: (B, L) targets.

    Returns:
        (P,) calibrated energies in MeV (float32), all >= 0.
    """
    return rescale_energies_of_showers(e_mev, layer, shower_of_point(offsets), energy_per_layer_mev)


def rescale_energies_of_showers(e_mev: Tensor, layer: Tensor, shower: Tensor, energy_per_layer_mev: Tensor) -> Tensor:
    """:func:`rescale_layer_energies` with each point's shower index ``shower`` (P,) instead of the
    offsets: TorchScript-compatible (the export calls it for one shower)."""
    n_showers, n_layers = energy_per_layer_mev.shape
    key = layer if n_showers == 1 else shower * n_layers + layer  # row of each point's (shower, layer)
    e = e_mev.double().clamp_min(0)
    flat_sum = torch.zeros(n_showers * n_layers, dtype=torch.float64, device=e.device).index_add_(0, key, e)
    flat_n = torch.zeros_like(flat_sum).index_add_(0, key, torch.ones_like(e))
    target = energy_per_layer_mev.double().clamp_min(0)
    # per row, then gathered (index_select: a third of the cost of indexing): the same values
    dead = (flat_sum <= 0).index_select(0, key)  # layers with points but no positive energy: equal shares
    share = (1.0 / flat_n.clamp_min(1)).index_select(0, key)
    e = torch.where(dead, share, e / flat_sum.clamp_min(1e-300).index_select(0, key))
    e = e * target.reshape(-1).index_select(0, key)
    # target energy that fell into layers without points goes to the shower's other layers
    placed = torch.zeros(n_showers, dtype=torch.float64, device=e.device).index_add_(0, shower, e)
    scale = torch.where(placed > 0, target.sum(1) / placed.clamp_min(1e-300), torch.ones_like(placed))
    return (e * per_point(scale, shower)).float()


def per_point(values: Tensor, shower: Tensor) -> Tensor:
    """(P,) ``values[shower]`` of (B,) per-shower values; for one shower a broadcast view, no copy."""
    if values.shape[0] == 1:
        return values.expand(shower.shape[0])
    return values.index_select(0, shower)


def random_angles(n_showers: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
    """(B,) uniform angles in [0, 2 pi) on ``device``: the one draw of :func:`rotate_about_axis`."""
    gen_device = generator.device if generator is not None else device
    return torch.rand(n_showers, generator=generator, device=gen_device).to(device) * (2 * torch.pi)


def rotate_about_axis(
    x_mm: Tensor, y_mm: Tensor, offsets: Tensor, *, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Rotate each shower about the beam axis x = y = 0 by its own uniform random angle."""
    angle = random_angles(len(offsets) - 1, x_mm.device, generator)
    return rotate_showers(x_mm, y_mm, angle, shower_of_point(offsets))


def rotate_showers(x_mm: Tensor, y_mm: Tensor, angle_rad: Tensor, shower: Tensor) -> tuple[Tensor, Tensor]:
    """Each shower's points rotated by its angle ``angle_rad`` (B,): ``caloclouds.showers.rotate_about_beam_axis``
    for torch alone, TorchScript-compatible, the same bits. :func:`rotate_about_axis` and
    :func:`calibrate_points` rotate through it."""
    cos, sin = per_point(angle_rad.cos(), shower), per_point(angle_rad.sin(), shower)
    return cos * x_mm - sin * y_mm, sin * x_mm + cos * y_mm


def shift_centre_of_gravity(
    x_mm: Tensor, y_mm: Tensor, e_mev: Tensor, offsets: Tensor, cog_mm: Tensor
) -> tuple[Tensor, Tensor]:
    """Translate each shower in x and y so that its energy-weighted centre of gravity is ``cog_mm`` (B, 2)."""
    return shift_showers_to_cog(x_mm, y_mm, e_mev, shower_of_point(offsets), cog_mm)


def shift_showers_to_cog(
    x_mm: Tensor, y_mm: Tensor, e_mev: Tensor, shower: Tensor, cog_mm: Tensor
) -> tuple[Tensor, Tensor]:
    """:func:`shift_centre_of_gravity` with each point's shower index ``shower`` (P,) instead of the
    offsets: TorchScript-compatible (the export calls it for one shower). A shower without energy
    is not moved."""
    e, x, y = e_mev.double(), x_mm.double(), y_mm.double()
    total = torch.zeros(cog_mm.shape[0], dtype=torch.float64, device=e.device).index_add_(0, shower, e)
    safe = total.clamp_min(1e-300)
    cx = torch.zeros_like(total).index_add_(0, shower, e * x) / safe
    cy = torch.zeros_like(total).index_add_(0, shower, e * y) / safe
    has_energy = total > 0
    dx = torch.where(has_energy, cog_mm[:, 0].double() - cx, torch.zeros_like(cx))
    dy = torch.where(has_energy, cog_mm[:, 1].double() - cy, torch.zeros_like(cy))
    return (x + per_point(dx, shower)).float(), (y + per_point(dy, shower)).float()


def share_core_points(points: Tensor, radius_mm: float, spread_mm: float) -> tuple[Tensor, Tensor]:
    """The points with every one closer than ``radius_mm`` to the axis replaced by four copies.

    The copies sit at (x - s, y - s), (x + s, y - s), (x - s, y + s), (x + s, y + s) with
    s = ``spread_mm`` (finite, as the config requires) and a quarter of the energy each, in place of
    the point, so the order of the points is kept. TorchScript-compatible (the export calls it for one shower).

    Returns:
        ``(points, copies)``: the new (P', 4) points and (P,) int64 number of copies of each input point.
    """
    core = torch.hypot(points[:, 0], points[:, 1]) < radius_mm
    copies = torch.where(core, 4, 1)
    first = torch.cumsum(copies, 0) - copies  # where each input point's first copy goes
    core_index = core.nonzero().squeeze(1)
    # every point to its first row, then a core point's four rows overwritten by its copies
    # (cheaper than repeat_interleave and a boolean index at a thousand points)
    out = torch.empty([points.shape[0] + 3 * core_index.shape[0], 4], dtype=points.dtype, device=points.device)
    out.index_copy_(0, first, points)
    rows = (first.index_select(0, core_index).unsqueeze(1) + torch.arange(4, device=points.device)).reshape(-1)
    # copy j: (x, y) + corner j (x * 1 and layer + 0 are exact), a quarter of the energy
    corners = torch.tensor(
        [[-1.0, -1.0, 0.0, 0.0], [1.0, -1.0, 0.0, 0.0], [-1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]],
        device=points.device,
    )
    quarter = torch.tensor([1.0, 1.0, 1.0, 0.25], dtype=points.dtype, device=points.device)
    shared = points.index_select(0, core_index).unsqueeze(1) * quarter + (corners * spread_mm).to(points.dtype)
    return out.index_copy_(0, rows, shared.reshape(-1, 4)), copies


@functools.cache
def compiled(function: Callable[..., Any]) -> Callable[..., Any]:
    """One of this module's TorchScript-compatible functions compiled by TorchScript (once per process).

    The generator runs :func:`calibrate_points` through it, :class:`RadialCalibration` and
    :func:`share_core_energy` their functions: the same operations without Python's per-operation cost.
    """
    return torch.jit.script(function)


def share_core_energy(points: Tensor, offsets: Tensor, *, radius_mm: float, spread_mm: float) -> tuple[Tensor, Tensor]:
    """:func:`share_core_points` for a ragged batch: ``(points, offsets)`` in, the same out.

    Args:
        points: (P, 4) ``x_mm, y_mm, layer, e_MeV`` in the shower's local frame.
        offsets: (B+1,) ragged offsets.
        radius_mm, spread_mm: as in ``GenerationConfig``; ``radius_mm <= 0`` returns the input.
    """
    if radius_mm <= 0 or len(points) == 0:
        return points, offsets
    out, copies = compiled(share_core_points)(points, radius_mm, spread_mm)
    counts = torch.zeros(len(offsets) - 1, dtype=torch.long, device=points.device)
    counts.index_add_(0, shower_of_point(offsets), copies)
    new_offsets = torch.zeros_like(offsets)
    new_offsets[1:] = torch.cumsum(counts, 0)
    return out, new_offsets


def calibrate_points(
    raw: Tensor,
    layer: Tensor,
    shower: Tensor,
    energy_per_layer_mev: Tensor,
    incident_energy_gev: Tensor,
    cog_mm: Tensor,
    angle_rad: Tensor,
    nodes_gev: Tensor,
    table: Tensor,
    cog_mode: str,
    calibrate_radii: bool,
    core_radius_mm: float,
    core_spread_mm: float,
) -> tuple[Tensor, Tensor]:
    """The generator's whole calibration of a ragged batch of drawn points, in one TorchScript-compatible call.

    Layer energies (:func:`rescale_energies_of_showers`), radii (:func:`map_radii`, if
    ``calibrate_radii``), the transverse position by ``cog_mode`` (:func:`rotate_showers` by
    ``angle_rad`` or :func:`shift_showers_to_cog` to ``cog_mm``), points without energy dropped,
    core sharing (:func:`share_core_points`, if ``core_radius_mm`` > 0): the same operations as
    the functions one by one, so the same bits, without recomputing the shower of each point.

    Args:
        raw: (P, 4) drawn points ``x_mm, y_mm, *, e`` (column 2 unused: the layer is ``layer``).
        layer, shower: (P,) int64 layer and shower of each point.
        energy_per_layer_mev: (B, L); incident_energy_gev: (B,); cog_mm: (B, 2); angle_rad: (B,).
        nodes_gev, table: :meth:`RadialCalibration.tensors` (unused unless ``calibrate_radii``).

    Returns:
        ``(points, offsets)``: (P', 4) float32 ``x_mm, y_mm, layer, e_MeV`` and (B+1,) int64 offsets.
    """
    e = rescale_energies_of_showers(raw[:, 3], layer, shower, energy_per_layer_mev)
    x, y = raw[:, 0], raw[:, 1]
    if calibrate_radii:
        x, y = map_radii(x, y, layer, incident_energy_gev, nodes_gev, table, shower=shower)
    if cog_mode == "rotate":
        x, y = rotate_showers(x, y, angle_rad, shower)
    elif cog_mode == "flow":
        x, y = shift_showers_to_cog(x, y, e, shower, cog_mm)
    kept = (e > 0).nonzero().squeeze(1)  # points whose energy is zero after calibration carry nothing
    points = torch.stack([x, y, layer.to(torch.float32), e], dim=1).index_select(0, kept)
    kept_shower = shower.index_select(0, kept)
    if core_radius_mm > 0:
        points, copies = share_core_points(points, core_radius_mm, core_spread_mm)
    else:
        copies = torch.ones_like(kept_shower)
    counts = torch.zeros(energy_per_layer_mev.shape[0], dtype=torch.long, device=raw.device)
    counts.index_add_(0, kept_shower, copies)
    return points, torch.cat([torch.zeros(1, dtype=torch.long, device=raw.device), torch.cumsum(counts, 0)])


COUNT_TABLE_MAX = 1 << 16  # PointCountCalibration's lookup table covers N below this at most


@dataclass(frozen=True)
class PointCountCalibration:
    """Maps the flow's number of points N to the number of points to generate.

    The clustered Geant4 points and the model's points do not merge into cells in the same way, so
    the same N gives a different number of cells. Two cubic fits (as in CaloClouds II, Sec. 3.3)
    describe the number of cells above threshold as a function of the number of points:

    * ``g4_cells_from_points``: N_cells = P_g4(N), fitted on Geant4;
    * ``model_cells_from_points``: N_cells = P_model(N), fitted on the uncalibrated model;

    and the model generates N' = P_model^-1(P_g4(N)) points, so that it makes as many cells as
    Geant4. Both fits regress cells on points; inverting P_model numerically (rather than fitting
    points on cells) avoids the regression-dilution bias of an inverse fit. The ratio N'/N is
    evaluated with N clipped to ``points_range`` (the range the fits saw), so a cubic is never
    extrapolated. No fits means the identity. Coefficients are in numpy ``polyfit`` order.
    """

    g4_cells_from_points: tuple[float, ...] | None = None
    model_cells_from_points: tuple[float, ...] | None = None
    points_range: tuple[float, float] = (1.0, 1e9)
    min_points: int = 1

    @property
    def is_identity(self) -> bool:
        return self.g4_cells_from_points is None or self.model_cells_from_points is None

    def scale(self, n_points: np.ndarray) -> np.ndarray:
        """k(N) = N'/N, the factor applied to N."""
        n = np.asarray(n_points, dtype=np.float64)
        if self.is_identity:
            return np.ones_like(n)
        lo, hi = self.points_range
        n = np.clip(n, lo, hi)
        grid, cells = self._inverse_grid
        wanted = np.polyval(self.g4_cells_from_points, n)
        return np.interp(wanted, cells, grid) / n

    @functools.cached_property
    def _inverse_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """The model's cubic, made monotone, on a grid wide enough for any correction up to a factor 4
        (built once: at batch 1 it was a third of a millisecond per shower)."""
        lo, hi = self.points_range
        grid = np.linspace(lo / 4, hi * 4, 8192)
        return grid, np.maximum.accumulate(np.polyval(self.model_cells_from_points, grid))

    def calibrated(self, n_points: np.ndarray) -> np.ndarray:
        """N' = rint(N k(N)), at least ``min_points``, as float64."""
        n = np.asarray(n_points, dtype=np.float64)
        return np.rint(np.clip(n * self.scale(n), self.min_points, None))

    @functools.cached_property
    def _table(self) -> Tensor:
        """(T,) int64 N' of every N = 0 .. T-1, to the end of ``points_range`` (at most
        ``COUNT_TABLE_MAX`` entries): a lookup instead of a round trip through numpy at every call."""
        size = min(int(self.points_range[1]) + 2, COUNT_TABLE_MAX)
        return torch.as_tensor(self.calibrated(np.arange(size)), dtype=torch.long)

    def __call__(self, n_points: Tensor) -> Tensor:
        if self.is_identity:
            return n_points.long()
        n = n_points.long()
        table = self._table
        if n.numel() and 0 <= int(n.min()) and int(n.max()) < table.shape[0]:
            return table.to(n.device).index_select(0, n.reshape(-1)).reshape(n.shape)
        out = self.calibrated(n_points.double().cpu().numpy())
        return torch.as_tensor(out, dtype=torch.long, device=n_points.device)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> PointCountCalibration:
        def tup(v: object) -> tuple[float, ...] | None:
            return None if v is None else tuple(float(c) for c in v)  # type: ignore[union-attr]

        return cls(
            tup(data.get("g4_cells_from_points")),
            tup(data.get("model_cells_from_points")),
            tup(data.get("points_range")) or (1.0, 1e9),  # type: ignore[arg-type]
            int(data.get("min_points", 1)),
        )


RADIAL_GRID_POINTS = 1024  # radii of the lookup table of the radial map, uniform in ln(1 + r / r0) ...
RADIAL_GRID_R0_MM = 0.1  # ... with this r0
RADIAL_GRID_END_MM = 2000.0  # ... up to this radius (beyond: the last ratio)


def radial_grid(
    model_r: Tensor, g4_r: Tensor, *, r0_mm: float = RADIAL_GRID_R0_MM, r_end_mm: float = RADIAL_GRID_END_MM
) -> Tensor:
    """The radial map of every table row on a fixed grid of radii, for :func:`map_radii`.

    Row b maps the model's quantile radii ``model_r[b]`` onto Geant4's ``g4_r[b]``, linearly in
    between; below the first and beyond the last quantile the radius is scaled by the ratio there
    (a knot at (0, 0) and one far out on the line through the last pair). The map is sampled at
    ``RADIAL_GRID_POINTS`` radii uniform in ln(1 + r / r0_mm), so that applying it is a lookup
    instead of a search (at 10 mm the grid step is 0.1 mm).

    Returns:
        (R, G) float32: the mapped radius (mm) of grid radius g in row b.
    """
    step = math.log1p(r_end_mm / r0_mm) / (RADIAL_GRID_POINTS - 1)
    grid = r0_mm * np.expm1(np.arange(RADIAL_GRID_POINTS) * step)
    model, g4 = model_r.double().cpu().numpy(), g4_r.double().cpu().numpy()
    far = 1.0e6
    table = np.empty((len(model), RADIAL_GRID_POINTS))
    for b in range(len(model)):  # once per table row (150 of them), when the bundle is loaded
        last = g4[b, -1] / max(model[b, -1], 1e-9)
        knots_model = np.concatenate([[0.0], model[b], [far]])
        table[b] = np.interp(grid, knots_model, np.concatenate([[0.0], g4[b], [far * last]]))
    return torch.as_tensor(table, dtype=torch.float32)


def _grid_lookup(
    table: Tensor, row: Tensor, cell: Tensor, t: Tensor, one_minus_t: Tensor, r: Tensor, beyond: Tensor, r_end_mm: float
) -> Tensor:
    """Mapped radius of each point in its table row: linear between grid radii, the last ratio beyond
    (``beyond``: r > r_end_mm)."""
    n_grid = table.shape[1]
    flat = table.reshape(-1)
    at = row * n_grid + cell
    inside = flat.index_select(0, at) * one_minus_t + flat.index_select(0, at + 1) * t
    return torch.where(beyond, r * table[:, n_grid - 1].index_select(0, row) / r_end_mm, inside)


def radial_node_weights(incident_energy_gev: Tensor, nodes_gev: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """For :func:`map_radii`: the energy node below each energy and the weight of the one above (``dtype``)."""
    n_nodes = nodes_gev.shape[0]
    if n_nodes == 1:
        lower = torch.zeros(incident_energy_gev.shape, dtype=torch.long, device=incident_energy_gev.device)
        return lower, torch.zeros(incident_energy_gev.shape, dtype=dtype, device=incident_energy_gev.device)
    energy = incident_energy_gev.to(nodes_gev.dtype)
    lower = (torch.searchsorted(nodes_gev, energy) - 1).clamp(0, n_nodes - 2)
    weight = ((energy - nodes_gev[lower]) / (nodes_gev[lower + 1] - nodes_gev[lower])).clamp(0.0, 1.0).to(dtype)
    return lower, weight


def map_radii(
    x_mm: Tensor,
    y_mm: Tensor,
    layer: Tensor,
    incident_energy_gev: Tensor,
    nodes_gev: Tensor,
    table: Tensor,
    r0_mm: float = RADIAL_GRID_R0_MM,
    r_end_mm: float = RADIAL_GRID_END_MM,
    shower: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Move each point along its direction from the axis by the radial calibration.

    Args:
        x_mm, y_mm: (P,) positions about the shower axis.
        layer: (P,) int64 layer of each point.
        incident_energy_gev: (P,) the incident energy of each point's shower, or with ``shower``
            (P,) the shower of each point, (B,) the incident energy of each shower.
        nodes_gev: (K,) increasing energies at which the maps are given.
        table: :func:`radial_grid` of the (K * L) rows, row ``k * L + layer``. Between two nodes
            the mapped radii are interpolated linearly; beyond ``r_end_mm`` the last ratio is kept.
        r0_mm, r_end_mm: the grid of ``table`` (as in :func:`radial_grid`).

    Returns:
        The new ``(x_mm, y_mm)``. TorchScript-compatible.
    """
    n_nodes = nodes_gev.shape[0]
    n_rows, n_grid = table.shape
    n_layers = n_rows // n_nodes
    lower, weight = radial_node_weights(incident_energy_gev, nodes_gev, x_mm.dtype)
    lower_row, upper_row = lower * n_layers, (lower + 1).clamp_max(n_nodes - 1) * n_layers
    weight_lower = torch.rsub(weight, 1.0)
    if shower is not None:  # once per shower, then per point: the same values
        lower_row, upper_row = per_point(lower_row, shower), per_point(upper_row, shower)
        weight, weight_lower = per_point(weight, shower), per_point(weight_lower, shower)
    table = table.to(x_mm.dtype)
    r = torch.hypot(x_mm, y_mm)
    u = torch.log1p(r / r0_mm) * ((n_grid - 1) / math.log1p(r_end_mm / r0_mm))
    cell = u.floor().clamp(0, n_grid - 2)
    t = (u - cell).clamp(0.0, 1.0)
    one_minus_t = torch.rsub(t, 1.0)
    cell = cell.long()
    beyond = r > r_end_mm
    mapped = (
        _grid_lookup(table, lower_row + layer, cell, t, one_minus_t, r, beyond, r_end_mm) * weight_lower
        + _grid_lookup(table, upper_row + layer, cell, t, one_minus_t, r, beyond, r_end_mm) * weight
    )
    scale = torch.where(r > 0, mapped / r.clamp_min(1e-12), 1.0)
    return x_mm * scale, y_mm * scale


@dataclass(frozen=True)
class RadialCalibration:
    """Energy-weighted radial quantiles per (energy node, layer) of the model and of Geant4.

    ``caloclouds calibrate`` fits them on the training showers and on the model at the same
    energies (before the N calibration and the core sharing; the radial profile of a layer does not
    depend on how many points are drawn). Empty tables mean the identity.
    """

    nodes_gev: tuple[float, ...] = ()
    levels: tuple[float, ...] = ()
    model_r_mm: tuple[tuple[float, ...], ...] = ()  # (K * L) rows of Q quantiles, row k * L + layer
    g4_r_mm: tuple[tuple[float, ...], ...] = ()

    @property
    def is_identity(self) -> bool:
        return len(self.nodes_gev) == 0

    @functools.cached_property
    def _cpu_tensors(self) -> tuple[Tensor, Tensor]:
        table = radial_grid(
            torch.tensor(self.model_r_mm, dtype=torch.float64), torch.tensor(self.g4_r_mm, dtype=torch.float64)
        )
        return torch.tensor(self.nodes_gev, dtype=torch.float64), table

    def tensors(self, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """``(nodes_gev, table)`` for :func:`map_radii` (built once)."""
        return tuple(t.to(device) for t in self._cpu_tensors)  # type: ignore[return-value]

    def apply(self, x_mm: Tensor, y_mm: Tensor, layer: Tensor, incident_energy_gev: Tensor) -> tuple[Tensor, Tensor]:
        """:func:`map_radii` with these tables (the identity when empty)."""
        if self.is_identity or len(x_mm) == 0:
            return x_mm, y_mm
        return compiled(map_radii)(x_mm, y_mm, layer, incident_energy_gev, *self.tensors(x_mm.device))

    def to_dict(self) -> dict:
        def rows(t: tuple) -> list:
            return [[round(v, 4) for v in row] for row in t]

        return {
            "nodes_gev": list(self.nodes_gev),
            "levels": list(self.levels),
            "model_r_mm": rows(self.model_r_mm),
            "g4_r_mm": rows(self.g4_r_mm),
        }

    @classmethod
    def from_dict(cls, data: dict | None) -> RadialCalibration:
        data = data or {}

        def rows(v: object) -> tuple[tuple[float, ...], ...]:
            return tuple(tuple(float(x) for x in row) for row in (v or ()))  # type: ignore[union-attr]

        cal = cls(
            tuple(float(v) for v in data.get("nodes_gev", ())),
            tuple(float(v) for v in data.get("levels", ())),
            rows(data.get("model_r_mm")),
            rows(data.get("g4_r_mm")),
        )
        cal.check()
        return cal

    def check(self) -> None:
        """Raise ValueError, saying what is wrong, unless the tables have the shapes :func:`map_radii` needs."""
        if self.is_identity:
            return
        n_nodes, n_levels = len(self.nodes_gev), len(self.levels)
        nodes = np.asarray(self.nodes_gev)
        if not (np.all(np.isfinite(nodes)) and np.all(np.diff(nodes) > 0)):
            raise ValueError(f"nodes_gev must be finite and increasing, got {list(self.nodes_gev)}")
        for name, table in (("model_r_mm", self.model_r_mm), ("g4_r_mm", self.g4_r_mm)):
            if not table or len(table) % n_nodes:
                raise ValueError(f"{name} has {len(table)} rows, not a multiple of the {n_nodes} energy nodes")
            for i, row in enumerate(table):
                if len(row) != n_levels:
                    raise ValueError(f"{name} row {i} has {len(row)} quantiles, the levels {n_levels}")
                radii = np.asarray(row)
                if not (np.all(np.isfinite(radii)) and np.all(np.diff(radii) >= 0) and radii[0] >= 0):
                    raise ValueError(f"{name} row {i} is not a finite, non-decreasing list of radii >= 0")
        if len(self.model_r_mm) != len(self.g4_r_mm):
            raise ValueError(f"model_r_mm has {len(self.model_r_mm)} rows, g4_r_mm {len(self.g4_r_mm)}")
