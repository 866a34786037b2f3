"""The whole single-shower pipeline as one TorchScript module with DDML's CaloClouds calling convention.

``forward(energy_gev, theta_deg, phi_deg)``, each a (1, 1) float32 tensor, returns a 1-D float32
tensor::

    [n_0, 0, 0, 0, n_1, 0, 0, 0, ..., n_{L-1}, 0, 0, 0,      # header: 4 L entries, count of layer l at 4 l
     x, y, layer, e,  x, y, layer, e, ...]                    # sum(n_l) points, grouped by ascending layer

with x, y in mm in the local frame of the layers (x = y = 0 where the photon enters the front face),
the layer index as a float and e in MeV. The steps are those of
``caloclouds.generation.ShowerGenerator``:

1. the Shower Flow (:class:`~caloclouds.export.flow.ScriptShowerFlow`) draws n_l and E_l;
2. the N calibration (a lookup table of the bundle's ``PointCountCalibration``) sets the number
   of points to draw, split over the layers by largest remainder;
3. the point stage (:mod:`caloclouds.export.points`) draws the points, grouped by layer;
4. each layer's energies are scaled to E_l, the radii calibrated (the bundle's radial
   calibration), the shower is rotated by a random angle about its
   axis or its CoG shifted to the flow's (the bundle's ``generation.cog``), points left without
   energy are dropped, and the energy of points near the axis is shared over four copies
   (``generation.core_radius_mm``, :func:`caloclouds.generation.calibration.share_core_energy`).

Random numbers come from torch's global generator in the same order as ``ShowerGenerator`` with
``generator=None``, so ``torch.manual_seed(s)`` gives the same shower in Python, in this module and
in libtorch. Projection onto cells is not included: Geant4 (DDML) places the points in its cells.

The direction of incidence follows key4hep DDML's ``CaloCloudsTwoAngleModel``: θ = acos(d_z) and
φ = atan2(d_y, d_x) in degrees, d the photon's direction in the layers' local frame with z into the
calorimeter, so θ = 0 is normal incidence. A **direction-aware bundle** (``diffusion.direction``
and ``theta_deg`` among ``flow.condition_names``) uses them as ``ShowerGenerator.generate(...,
theta_deg=, phi_deg=)`` does: the flow is conditioned on θ, the PointWise Net on tan θ, steps 1-4
run in the frame of the inclined axis (for ``cog: rotate`` a shower with θ > 0 gets no random
turn), and the points then go to the layers' frame by
:func:`caloclouds.direction.from_axis_frame` (the axis z_l tan θ added along x, the shower turned
by φ) before x, y are clipped to the calorimeter. φ may be any finite angle (it is wrapped into
(-180, 180]); θ is clamped into the bundle's trained range (:func:`trained_theta_range_deg`), since
a Geant4 track cannot be refused inside the simulation: a photon beyond it gets the shower of the
nearest trained angle. A **normal-incidence bundle** checks the angles' shape and otherwise
ignores them, as before: every call returns a normal-incidence shower (see the ``angles`` entry of
the metadata).
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import Tensor, nn

from caloclouds.direction import from_axis_frame
from caloclouds.export.flow import ScriptShowerFlow
from caloclouds.export.points import build_point_stage
from caloclouds.generation.calibration import calibrate_points as calibrate_drawn_points
from caloclouds.rounding import largest_remainder
from caloclouds.showers import THETA

__all__ = ["ScriptShowerPipeline", "calibration_table", "is_direction_aware", "trained_theta_range_deg"]


def is_direction_aware(bundle: Any) -> bool:
    """Whether ``bundle`` knows the direction of incidence (:attr:`ModelBundle.direction_aware`)."""
    return bool(bundle.direction_aware)


def trained_theta_range_deg(bundle: Any) -> tuple[float, float, str]:
    """(lo, hi, where it comes from): the θ range (degrees) the bundle was trained on, as the bundle
    says it (:attr:`ModelBundle.theta_range_deg`, :attr:`ModelBundle.theta_range_source`); a
    normal-incidence bundle: (0, 0)."""
    lo, hi = bundle.theta_range_deg
    return lo, hi, bundle.theta_range_source


def calibration_table(calibration: Any) -> tuple[Tensor, float, int]:
    """The N calibration as a lookup table: (table (T,) int64 of calibrated N for N = 0..T-1, k, min_points).

    Beyond the table the calibration's ratio is constant (N is clipped to ``points_range``), so
    N >= T maps to ``max(min_points, rint(N * k))``; the table reproduces the calibration exactly.
    """
    hi = 1 if calibration.is_identity else int(calibration.points_range[1]) + 2
    n = torch.arange(hi + 1, dtype=torch.int64)
    table = calibration(n).clamp_min(1)
    k = float(calibration.scale(float(hi + 1))) if not calibration.is_identity else 1.0
    return table, k, int(calibration.min_points)


class ScriptShowerPipeline(nn.Module):
    """Flow, N calibration, point stage and layer calibration for one shower (see the module doc).

    Args:
        bundle: an opened ``caloclouds.generation.bundle.ModelBundle`` with a consistency model.
        steps: consistency steps of the point stage (1 = the shipped sampler).
    """

    def __init__(self, bundle: Any, *, steps: int = 1) -> None:
        super().__init__()
        self.flow = ScriptShowerFlow(bundle.flow(device="cpu"))
        self.points = build_point_stage(bundle.point_model("cm", device="cpu"), steps=steps)
        self.n_layers = int(bundle.config.detector.n_layers)
        if self.flow.n_layers != self.n_layers:
            msg = f"the flow has {self.flow.n_layers} layers but the detector config {self.n_layers}"
            raise ValueError(msg)
        table, k, min_points = calibration_table(bundle.calibration)
        self.register_buffer("n_table", table)
        self.n_ratio_beyond = k
        self.min_points = min_points
        settings = bundle.config.generation
        self.cog_mode: str = settings.cog
        self.core_radius_mm = float(settings.core_radius_mm)
        self.core_spread_mm = float(settings.core_spread_mm)
        self.half_width_mm = float(bundle.config.detector.half_width_mm)  # points clipped to it, as generate does
        self.calibrate_radii = not bundle.radial.is_identity
        nodes, table = bundle.radial.tensors() if self.calibrate_radii else (torch.zeros(1), torch.zeros(1, 2))
        self.register_buffer("radial_nodes_gev", nodes)
        self.register_buffer("radial_table", table)
        energy = bundle.energy_calibration
        self.calibrate_energies = not energy.is_identity
        # the point-energy map (PointEnergyCalibration.table; a placeholder, unused, without one)
        self.register_buffer("energy_table", energy.table() if self.calibrate_energies else torch.zeros(3, 2))
        self.check_inputs = True
        self.direction_aware = is_direction_aware(bundle)
        if self.direction_aware and not getattr(self.points, "direction", False):
            raise ValueError("a direction-aware bundle needs a per-layer PointWise Net conditioned on tan(theta)")
        if self.direction_aware != self.flow.direction:
            flow_is = "is" if self.flow.direction else "is not"
            raise ValueError(f"the flow {flow_is} conditioned on {THETA}, the bundle config disagrees")
        lo, hi, _ = trained_theta_range_deg(bundle)
        self.theta_min_deg, self.theta_max_deg = lo, hi
        self.register_buffer("layer_z_mm", torch.tensor(bundle.axis_depth_mm, dtype=torch.float32))

    def calibrate_n(self, n_points: Tensor) -> Tensor:
        """(B,) int64 numbers of points to draw (``PointCountCalibration`` then >= 1)."""
        size = self.n_table.shape[0]
        inside = self.n_table.index_select(0, n_points.clamp(0, size - 1))
        beyond = torch.round(n_points.double() * self.n_ratio_beyond).clamp_min(float(self.min_points)).long()
        return torch.where(n_points < size, inside, beyond).clamp_min(1)

    def shower(self, incident_energy_gev: Tensor) -> Tensor:
        """(P, 4) calibrated points of one shower at ``incident_energy_gev`` (1,), grouped by layer."""
        noise = torch.randn([1, self.flow.dim])
        per_layer, energy_per_layer, cog = self.flow.sample_with_cog(incident_energy_gev, noise)
        n_flow_per_layer = per_layer
        n_flow = per_layer.sum(1)
        n_points = self.calibrate_n(n_flow)
        # both splits and a select, not a branch: the graph stays free of data-dependent control flow
        split = largest_remainder(per_layer.double(), n_points)
        per_layer = torch.where((n_points == n_flow).unsqueeze(1), per_layer, split)
        raw = self.points(per_layer[0], n_flow_per_layer[0], energy_per_layer[0], incident_energy_gev)
        angle = torch.rand([1]) * (2 * math.pi) if self.cog_mode == "rotate" else torch.zeros([1])
        return self.calibrate_points(raw, energy_per_layer[0], cog[0], incident_energy_gev, angle)

    def shower_at(self, incident_energy_gev: Tensor, theta_rad: Tensor, phi_rad: Tensor) -> Tensor:
        """(P, 4) points of one shower of a direction-aware bundle at ``incident_energy_gev``, θ and φ
        (each (1,), radians, float32), in the layers' frame, not yet clipped: ``ShowerGenerator._generate``
        with a direction (the same random numbers in the same order as :meth:`shower`)."""
        tan_theta = torch.tan(theta_rad)
        noise = torch.randn([1, self.flow.dim])
        per_layer, energy_per_layer, cog = self.flow.sample_with_cog(
            incident_energy_gev, noise, torch.rad2deg(theta_rad).unsqueeze(1)
        )
        n_flow_per_layer = per_layer
        n_flow = per_layer.sum(1)
        n_points = self.calibrate_n(n_flow)
        split = largest_remainder(per_layer.double(), n_points)
        per_layer = torch.where((n_points == n_flow).unsqueeze(1), per_layer, split)
        raw = self.points(per_layer[0], n_flow_per_layer[0], energy_per_layer[0], incident_energy_gev, tan_theta)
        angle = torch.rand([1]) * (2 * math.pi) if self.cog_mode == "rotate" else torch.zeros([1])
        angle = torch.where(theta_rad > 0, torch.zeros_like(angle), angle)  # an angled shower leans along +x: no turn
        points = self.calibrate_axis_frame(raw, energy_per_layer[0], cog[0], incident_energy_gev, angle)
        n = points.shape[0]
        x, y = from_axis_frame(
            points[:, 0], points[:, 1], points[:, 2], tan_theta.expand(n), phi_rad.expand(n), self.layer_z_mm
        )
        return torch.cat([torch.stack([x, y], dim=1), points[:, 2:]], dim=1)

    def direction(self, theta_deg: Tensor, phi_deg: Tensor) -> tuple[Tensor, Tensor]:
        """(θ, φ) in radians, (1,) float32, as ``ShowerGenerator._directions`` makes them (degrees to
        radians in float64): θ clamped into the trained range, φ wrapped into (-180, 180] degrees."""
        theta = theta_deg.reshape(1).to(torch.float64).clamp(self.theta_min_deg, self.theta_max_deg)
        phi = torch.remainder(phi_deg.reshape(1).to(torch.float64) + 180.0, 360.0) - 180.0
        phi = torch.where(phi == -180.0, torch.full_like(phi, 180.0), phi)
        return torch.deg2rad(theta).to(torch.float32), torch.deg2rad(phi).to(torch.float32)

    def calibrate_points(
        self, raw: Tensor, energy_per_layer_mev: Tensor, cog_mm: Tensor, incident_energy_gev: Tensor, angle: Tensor
    ) -> Tensor:
        """Step 4 of the module doc, with no random numbers: the drawn (P, 4) points of one shower ->
        its calibrated points (``angle`` (1,) rad is the rotation of ``cog: rotate``, else unused), by the
        generator's own :func:`~caloclouds.generation.calibration.calibrate_points` (the points' order,
        grouped by layer, is kept), x and y clipped to ``detector.half_width_mm``."""
        return self.clip(self.calibrate_axis_frame(raw, energy_per_layer_mev, cog_mm, incident_energy_gev, angle))

    def clip(self, points: Tensor) -> Tensor:
        """x and y inside the calorimeter's transverse size, as ShowerGenerator keeps them (a new tensor)."""
        return torch.cat([points[:, :2].clamp(-self.half_width_mm, self.half_width_mm), points[:, 2:]], dim=1)

    def calibrate_axis_frame(
        self, raw: Tensor, energy_per_layer_mev: Tensor, cog_mm: Tensor, incident_energy_gev: Tensor, angle: Tensor
    ) -> Tensor:
        """:meth:`calibrate_points` without the clip (a direction-aware bundle clips in the layers'
        frame, after :func:`~caloclouds.direction.from_axis_frame`)."""
        layer = raw[:, 2].long()
        energy_table: Optional[Tensor] = None  # noqa: UP045 (TorchScript reads Optional in a function body)
        if self.calibrate_energies:
            energy_table = self.energy_table
        points, _ = calibrate_drawn_points(
            raw,
            layer,
            torch.zeros_like(layer),  # one shower
            energy_per_layer_mev.unsqueeze(0),
            incident_energy_gev,
            cog_mm.unsqueeze(0),
            angle,
            self.radial_nodes_gev,
            self.radial_table,
            self.cog_mode,
            self.calibrate_radii,
            self.core_radius_mm,
            self.core_spread_mm,
            energy_table,
        )
        return points

    def forward(self, energy_gev: Tensor, theta_deg: Tensor, phi_deg: Tensor) -> Tensor:
        """DDML CaloClouds call: (1, 1) energy, theta, phi -> header + points (see the module doc)."""
        # the checks are off in the ONNX graph, which has no exceptions
        if self.check_inputs and (energy_gev.numel() != 1 or theta_deg.numel() != 1 or phi_deg.numel() != 1):
            raise ValueError("energy_gev, theta_deg and phi_deg must each hold one value (shape (1, 1))")
        energy = energy_gev.reshape(1).to(torch.float32)
        if self.check_inputs and (not bool(torch.isfinite(energy).all()) or bool((energy <= 0).any())):
            raise ValueError("energy_gev must be finite and > 0")
        if self.direction_aware:
            if self.check_inputs and not (
                bool(torch.isfinite(theta_deg).all()) and bool(torch.isfinite(phi_deg).all())
            ):
                raise ValueError("theta_deg and phi_deg must be finite (degrees)")
            theta, phi = self.direction(theta_deg, phi_deg)
            points = self.clip(self.shower_at(energy, theta, phi))
        else:  # a normal-incidence model: the angles are ignored (see the module doc)
            points = self.shower(energy)
        counts = torch.bincount(points[:, 2].long(), minlength=self.n_layers)
        header = torch.zeros(4 * self.n_layers, dtype=torch.float32)
        header[0::4] = counts.to(torch.float32)
        return torch.cat([header, points.reshape(-1)])
