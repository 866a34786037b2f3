"""The point stage: the drawn points of a ragged batch forced onto the Shower Flow's per-shower values.

Every step is one batched, TorchScript-compatible function of the points and of each point's shower
index ``shower`` (P,) (:func:`caloclouds.showers.shower_index_torch` of the offsets), used alike by
the generator, the export and the tests; :func:`calibrate_points` runs steps 2 to 4 as one call.
See :mod:`caloclouds.generation.calibration` for what each step does and why.
"""

from __future__ import annotations

import torch
from torch import Tensor

from caloclouds.generation.calibration.energy import map_point_energies
from caloclouds.generation.calibration.radial import map_radii
from caloclouds.generation.calibration.tensors import per_point
from caloclouds.showers import shower_index_torch

__all__ = [
    "assign_layers_by_depth",
    "rescale_layer_energies",
    "random_angles",
    "rotate_showers",
    "shift_showers_to_cog",
    "share_core_energy",
    "calibrate_points",
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
    shower = shower_index_torch(offsets)
    # sort by depth, then stably by shower: the points of each shower end up contiguous and depth-ordered
    by_depth = torch.argsort(depth, stable=True)
    order = by_depth[torch.argsort(shower[by_depth], stable=True)]
    labels = torch.repeat_interleave(
        torch.arange(n_layers, device=depth.device).repeat(n_showers), points_per_layer.reshape(-1)
    )
    layer = torch.empty_like(labels)
    layer[order] = labels
    return layer


def rescale_layer_energies(e_mev: Tensor, layer: Tensor, shower: Tensor, energy_per_layer_mev: Tensor) -> Tensor:
    """Scale the point energies of every (shower, layer) so that they sum to ``energy_per_layer_mev``.

    Negative energies are set to 0 first. A layer whose points carry no positive energy shares its
    target equally among its points. Energy asked for in a layer that has no points cannot be placed;
    the shower's other layers are then scaled up so that the shower's total is still kept.

    Args:
        e_mev: (P,) point energies.
        layer: (P,) int64 layer of each point.
        shower: (P,) int64 shower of each point.
        energy_per_layer_mev: (B, L) targets.

    Returns:
        (P,) calibrated energies in MeV (float32), all >= 0.
    """
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


def random_angles(n_showers: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
    """(B,) uniform angles in [0, 2 pi) on ``device``: the generator's one draw for ``cog: rotate``."""
    gen_device = generator.device if generator is not None else device
    return torch.rand(n_showers, generator=generator, device=gen_device).to(device) * (2 * torch.pi)


def rotate_showers(x_mm: Tensor, y_mm: Tensor, angle_rad: Tensor, shower: Tensor) -> tuple[Tensor, Tensor]:
    """Each shower's points rotated about the beam axis x = y = 0 by its angle ``angle_rad`` (B,)
    (counter-clockwise): ``caloclouds.showers.rotate_about_beam_axis`` for torch alone,
    TorchScript-compatible, the same bits."""
    cos, sin = per_point(angle_rad.cos(), shower), per_point(angle_rad.sin(), shower)
    return cos * x_mm - sin * y_mm, sin * x_mm + cos * y_mm


def shift_showers_to_cog(
    x_mm: Tensor, y_mm: Tensor, e_mev: Tensor, shower: Tensor, cog_mm: Tensor
) -> tuple[Tensor, Tensor]:
    """Translate each shower in x and y so that its energy-weighted centre of gravity is ``cog_mm`` (B, 2).

    A shower without energy is not moved.
    """
    e, x, y = e_mev.double(), x_mm.double(), y_mm.double()
    total = torch.zeros(cog_mm.shape[0], dtype=torch.float64, device=e.device).index_add_(0, shower, e)
    safe = total.clamp_min(1e-300)
    cx = torch.zeros_like(total).index_add_(0, shower, e * x) / safe
    cy = torch.zeros_like(total).index_add_(0, shower, e * y) / safe
    has_energy = total > 0
    dx = torch.where(has_energy, cog_mm[:, 0].double() - cx, torch.zeros_like(cx))
    dy = torch.where(has_energy, cog_mm[:, 1].double() - cy, torch.zeros_like(cy))
    return (x + per_point(dx, shower)).float(), (y + per_point(dy, shower)).float()


def share_core_energy(
    points: Tensor, shower: Tensor, n_showers: int, radius_mm: float, spread_mm: float
) -> tuple[Tensor, Tensor]:
    """The points with every one closer than ``radius_mm`` to the axis replaced by four copies.

    The copies sit at (x - s, y - s), (x + s, y - s), (x - s, y + s), (x + s, y + s) with
    s = ``spread_mm`` (finite, as the config requires) and a quarter of the energy each, in place of
    the point, so the order of the points is kept.

    Args:
        points: (P, 4) ``x_mm, y_mm, layer, e_MeV`` in the shower's local frame, grouped by shower.
        shower: (P,) int64 shower of each point.
        n_showers: the number of showers B.
        radius_mm, spread_mm: as in ``GenerationConfig``; ``radius_mm <= 0`` shares nothing.

    Returns:
        ``(points, offsets)``: the new (P', 4) points and (B+1,) int64 offsets.
    """
    if radius_mm > 0:
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
        points = out.index_copy_(0, rows, shared.reshape(-1, 4))
    else:
        copies = torch.ones_like(shower)
    counts = torch.zeros(n_showers, dtype=torch.long, device=points.device)
    counts.index_add_(0, shower, copies)
    return points, torch.cat([torch.zeros(1, dtype=torch.long, device=points.device), torch.cumsum(counts, 0)])


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
    energy_table: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The generator's whole calibration of a ragged batch of drawn points, in one TorchScript-compatible call.

    Layer energies (:func:`rescale_layer_energies`), the point energies
    (:func:`~caloclouds.generation.calibration.energy.map_point_energies`, if ``energy_table``),
    radii (:func:`map_radii`, if ``calibrate_radii``), the transverse position by ``cog_mode``
    (:func:`rotate_showers` by ``angle_rad`` or :func:`shift_showers_to_cog` to ``cog_mm``), points
    without energy dropped,
    core sharing (:func:`share_core_energy`, if ``core_radius_mm`` > 0): the same operations as
    the functions one by one, so the same bits, without recomputing the shower of each point.

    Args:
        raw: (P, 4) drawn points ``x_mm, y_mm, *, e`` (column 2 unused: the layer is ``layer``).
        layer, shower: (P,) int64 layer and shower of each point.
        energy_per_layer_mev: (B, L); incident_energy_gev: (B,); cog_mm: (B, 2); angle_rad: (B,).
        nodes_gev, table: :meth:`RadialCalibration.tensors` (unused unless ``calibrate_radii``).
        energy_table: :meth:`PointEnergyCalibration.table`, or None (no point-energy map).

    Returns:
        ``(points, offsets)``: (P', 4) float32 ``x_mm, y_mm, layer, e_MeV`` and (B+1,) int64 offsets.
    """
    e = rescale_layer_energies(raw[:, 3], layer, shower, energy_per_layer_mev)
    if energy_table is not None:
        n_showers, n_layers = energy_per_layer_mev.shape
        row = layer if n_showers == 1 else shower * n_layers + layer
        e = map_point_energies(e, row, n_showers * n_layers, energy_table)
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
    return share_core_energy(points, kept_shower, energy_per_layer_mev.shape[0], core_radius_mm, core_spread_mm)
