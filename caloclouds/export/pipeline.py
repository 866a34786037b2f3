"""The whole single-shower pipeline as one TorchScript module with DDML's CaloClouds calling convention.

``forward(energy_gev, theta_deg, phi_deg)``, each a (1, 1) float32 tensor, returns a 1-D float32
tensor::

    [n_0, 0, 0, 0, n_1, 0, 0, 0, ..., n_{L-1}, 0, 0, 0,      # header: 4 L entries, count of layer l at 4 l
     x, y, layer, e,  x, y, layer, e, ...]                    # sum(n_l) points, grouped by ascending layer

with x, y in mm in the shower's local frame (axis along the incident direction), the layer index
as a float and e in MeV. The steps are those of ``caloclouds.generation.ShowerGenerator``:

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
The model has no angle conditioning: ``theta_deg`` and ``phi_deg`` are checked for shape and
otherwise ignored (see the ``angles`` entry of the metadata).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from caloclouds.export.flow import ScriptShowerFlow
from caloclouds.export.points import build_point_stage
from caloclouds.generation.calibration import calibrate_points as calibrate_drawn_points
from caloclouds.rounding import largest_remainder

__all__ = ["ScriptShowerPipeline", "calibration_table"]


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
        self.check_inputs = True

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

    def calibrate_points(
        self, raw: Tensor, energy_per_layer_mev: Tensor, cog_mm: Tensor, incident_energy_gev: Tensor, angle: Tensor
    ) -> Tensor:
        """Step 4 of the module doc, with no random numbers: the drawn (P, 4) points of one shower ->
        its calibrated points (``angle`` (1,) rad is the rotation of ``cog: rotate``, else unused), by the
        generator's own :func:`~caloclouds.generation.calibration.calibrate_points` (the points' order,
        grouped by layer, is kept), x and y clipped to ``detector.half_width_mm``."""
        layer = raw[:, 2].long()
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
        )
        # inside the calorimeter's transverse size, as ShowerGenerator keeps them (a new tensor, no in-place op)
        return torch.cat([points[:, :2].clamp(-self.half_width_mm, self.half_width_mm), points[:, 2:]], dim=1)

    def forward(self, energy_gev: Tensor, theta_deg: Tensor, phi_deg: Tensor) -> Tensor:
        """DDML CaloClouds call: (1, 1) energy, theta, phi -> header + points (see the module doc)."""
        # the checks are off in the ONNX graph, which has no exceptions
        if self.check_inputs and (energy_gev.numel() != 1 or theta_deg.numel() != 1 or phi_deg.numel() != 1):
            raise ValueError("energy_gev, theta_deg and phi_deg must each hold one value (shape (1, 1))")
        energy = energy_gev.reshape(1).to(torch.float32)
        if self.check_inputs and (not bool(torch.isfinite(energy).all()) or bool((energy <= 0).any())):
            raise ValueError("energy_gev must be finite and > 0")
        points = self.shower(energy)
        counts = torch.bincount(points[:, 2].long(), minlength=self.n_layers)
        header = torch.zeros(4 * self.n_layers, dtype=torch.float32)
        header[0::4] = counts.to(torch.float32)
        return torch.cat([header, points.reshape(-1)])
