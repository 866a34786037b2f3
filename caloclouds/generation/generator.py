"""ShowerGenerator: incident energies in, calibrated point-cloud showers (and optionally cells) out.

The order of the steps follows CaloClouds II (arXiv:2309.05704, Sec. 3), without its defects:

1. the Shower Flow draws N, E_vis, n_l, E_l and the CoG for each incident energy;
2. the N calibration maps N to the number of points to generate (n_l follow, exactly);
3. the PointWise Net draws the points: the consistency model (1 step, or several), or the EDM
   teacher with the Heun or Euler solver (:func:`caloclouds.diffusion.sampling.sample`);
4. layers are assigned by depth rank (a per-layer PointWise Net draws each layer's points given
   n_l and E_l, so its layers are exact), layer energies rescaled to E_l, radii calibrated to
   Geant4's energy-weighted radial profile of each layer (the bundle's radial calibration), each shower rotated by a
   random angle about the beam axis (or, ``cog="flow"``, its CoG shifted to the flow's), and the
   energy of points near the axis shared over four copies (``generation.core_radius_mm``);
5. optionally the showers are projected onto a geometry, with a cell threshold.

A direction-aware bundle (issue 25) also takes each shower's direction (θ, φ in degrees): the flow
is conditioned on θ, the PointWise Net on tan θ, and steps 1-4 run in the frame of the inclined axis
(:mod:`caloclouds.direction`; no random turn for angled showers, whose lean is along +x there); the
points then go back to the detector frame (the axis added, the shower turned by φ).

The whole batch goes through each step at once (ragged, no padding, no loop over showers), in
``torch.inference_mode`` (at batch 1 most of the calibration's time was autograd bookkeeping under
``no_grad``). The ``caloclouds`` command also calls :func:`caloclouds.memory.keep_freed_memory`,
which stops the page faults of reallocating the network's activations for every shower; a program
of your own that generates shower by shower can call it once too (it sets the process's malloc).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from caloclouds.diffusion.sampling import Callback, deprecated_sampler, resolve_sampling
from caloclouds.direction import from_axis_frame
from caloclouds.errors import CaloCloudsError
from caloclouds.generation.bundle import ModelBundle
from caloclouds.generation.calibration import (
    COG_MODES,
    PointCountCalibration,
    RadialCalibration,
    assign_layers_by_depth,
    calibrate_points,
    compiled,
    random_angles,
)
from caloclouds.generation.directions import check_theta_range
from caloclouds.rounding import largest_remainder
from caloclouds.showers import Showers, shower_index_torch

__all__ = ["ShowerGenerator", "StageTimes", "generate_in_batches"]


@dataclass
class StageTimes:
    """Wall time in seconds spent in each stage (accumulated over calls)."""

    flow: float = 0.0
    diffusion: float = 0.0
    calibration: float = 0.0
    projection: float = 0.0

    def total(self) -> float:
        return self.flow + self.diffusion + self.calibration + self.projection


class ShowerGenerator:
    """Generate calibrated showers with a model bundle.

    Args:
        bundle: an opened :class:`ModelBundle` (``load_bundle("default")``).
        model_part: which weights: ``"cm"`` (the consistency model, default) or ``"teacher"``.
        solver: ``"consistency"`` (the cm's), ``"heun"`` (the teacher's default) or ``"euler"``
            (see :func:`caloclouds.diffusion.sampling.resolve_sampling`).
        sampler: deprecated alias of ``model_part`` (``"edm"`` is the teacher), through
            :func:`caloclouds.diffusion.sampling.deprecated_sampler` (a FutureWarning).
        steps: CM steps (default 1) or Heun / Euler steps (default from the config).
        device: torch device.
        calibrate_n: apply the bundle's N calibration (off to fit it).
        cog: transverse position: ``"rotate"`` (random rotation about the beam axis),
            ``"flow"`` (shift the CoG to the flow's) or ``"none"``; default the bundle's
            ``generation.cog``; see :mod:`caloclouds.generation.calibration`.
        share_core: apply the bundle's core energy sharing (``generation.core_radius_mm``).
        calibrate_radii: apply the bundle's radial calibration (off to fit it).
        check_range: check each batch's energies against the flow's training range (a warning
            outside it); False where the caller checked all of them once
            (:func:`flows.sampling.check_energy_range`, as :func:`generate_to_file` does).
        calibrate_energies: apply the bundle's point-energy calibration (off to fit it).
    """

    def __init__(
        self,
        bundle: ModelBundle,
        *,
        model_part: str | None = None,
        solver: str | None = None,
        sampler: str | None = None,
        steps: int | None = None,
        device: str = "cpu",
        calibrate_n: bool = True,
        cog: str | None = None,
        share_core: bool = True,
        calibrate_radii: bool = True,
        check_range: bool = True,
        calibrate_energies: bool = True,
    ) -> None:
        settings = bundle.config.generation
        cog = settings.cog if cog is None else cog
        if cog not in COG_MODES:
            raise CaloCloudsError(f"unknown cog mode {cog!r}; choose one of {COG_MODES}")
        self.cog = cog
        self.bundle = bundle
        if sampler is not None:
            model_part = deprecated_sampler(sampler, model_part=model_part)
        self.model_part, self.solver = resolve_sampling(model_part=model_part, solver=solver)
        self.steps = steps
        self.check_range = check_range
        self.device = torch.device(device)
        self.flow = bundle.flow(device=device)
        self.point_model = bundle.point_model(self.model_part, device=device)
        self.n_layers = bundle.config.detector.n_layers
        self.calibration = bundle.calibration if calibrate_n else PointCountCalibration()
        self.radial = bundle.radial if calibrate_radii else RadialCalibration()
        # (nodes_gev, table) of the radial map; placeholders, unused, without one
        self._radial_tensors = (
            (torch.zeros(1, device=self.device), torch.zeros(1, 2, device=self.device))
            if self.radial.is_identity
            else self.radial.tensors(self.device)
        )
        energy = bundle.energy_calibration
        # the point-energy map (PointEnergyCalibration.table), or None without one
        self._energy_table = energy.table(self.device) if calibrate_energies and not energy.is_identity else None
        self.core_radius_mm = settings.core_radius_mm if share_core else 0.0
        self.core_spread_mm = settings.core_spread_mm
        self.times = StageTimes()
        self.half_width_mm = float(bundle.config.detector.half_width_mm)
        self._clipped = torch.zeros((), dtype=torch.int64, device=self.device)
        self.direction_aware = bundle.direction_aware
        self._layer_z = torch.tensor(bundle.axis_depth_mm, dtype=torch.float32, device=self.device)
        self._warm_up()  # the TorchScript compiles go into loading, not into the first shower

    def _warm_up(self) -> None:
        """Generate one shower twice (TorchScript compiles and optimises on its first calls), with
        its own random generator: the first shower of a run costs what the others do, and the
        caller's random state is untouched."""
        lo, hi = self.flow.energy_range_gev
        generator = torch.Generator(device=self.device).manual_seed(0)
        for _ in range(2):
            self._generate(torch.full((1,), 0.5 * (lo + hi)), generator)
        self.times = StageTimes()
        self._clipped.zero_()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def generate_tensors(
        self, incident_energy_gev: Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Generate one batch on the model's device.

        Returns:
            points (P, 4) float32 ``x_mm, y_mm, layer, e_MeV`` and offsets (B+1,) int64, both on the device.
        """
        points, offsets = self._generate(incident_energy_gev, generator)
        # plain tensors, which callers may modify in place or use with autograd
        return points.clone(), offsets.clone()

    def _directions(self, n: int, theta_deg: Any, phi_deg: Any) -> tuple[np.ndarray, np.ndarray] | None:
        """(θ, φ) in degrees, float64 (n,) arrays, from one value or one per shower each, or None when
        no angle is given: normal incidence, where nothing of the direction stage runs (a
        direction-aware model's flow and network then take θ = 0; the same showers as with θ = φ = 0
        given, without the identity operations)."""
        if theta_deg is None and phi_deg is None:
            return None
        angles = []
        for value in (theta_deg, phi_deg):
            a = np.asarray(0.0 if value is None else value, np.float64).reshape(-1)
            if a.shape not in ((1,), (n,)):
                raise CaloCloudsError(f"theta_deg and phi_deg must be one value or one per shower ({n})")
            angles.append(np.broadcast_to(a, (n,)))
        theta, phi = angles
        if not self.direction_aware:  # generate's one rule: a normal-incidence model refuses any theta > 0
            check_theta_range(theta, self.bundle.theta_range_deg, allow_extrapolation=True)
        return theta, phi

    @torch.inference_mode()
    def _generate(
        self,
        incident_energy_gev: Tensor,
        generator: torch.Generator | None,
        callback: Callback | None = None,
        direction: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """:meth:`generate_tensors` as inference tensors; ``callback`` after each solver step;
        ``direction`` (θ, φ) in radians per shower (:meth:`generate`)."""
        energy = incident_energy_gev.to(self.device, torch.float32).reshape(-1)
        extra = None if direction is None or not self.direction_aware else torch.rad2deg(direction[0])[:, None]
        tan_theta = None if extra is None else torch.tan(direction[0])
        t0 = time.perf_counter()
        stats = self.flow.sample(energy, extra_conditions=extra, generator=generator, check_range=self.check_range)
        self._sync()
        t1 = time.perf_counter()
        n_points = self.calibration(stats.n_points).clamp_min(1)
        if torch.equal(n_points, stats.n_points):
            per_layer = stats.points_per_layer
        else:
            per_layer = compiled(largest_remainder)(stats.points_per_layer.double(), n_points)
        if self.point_model.per_layer:
            # the network draws each layer's points given the flow's n_l and E_l: depth is exact
            raw, offsets = self.point_model.sample_layers(
                per_layer,
                stats.energy_per_layer_mev,
                energy,
                solver=self.solver,
                steps=self.steps,
                generator=generator,
                condition_points_per_layer=stats.points_per_layer,
                callback=callback,
                tan_theta=tan_theta,
            )
        else:
            raw, offsets = self.point_model.sample(
                n_points, energy, solver=self.solver, steps=self.steps, generator=generator, callback=callback
            )
        self._sync()
        t2 = time.perf_counter()
        if self.point_model.per_layer:
            layer = raw[:, 2].long()
        else:
            layer = assign_layers_by_depth(raw[:, 2], offsets, per_layer)
        points, new_offsets = self._calibrate(raw, layer, offsets, energy, stats, generator, direction)
        if direction is not None:
            points = self._to_detector_frame(points, new_offsets, direction)
        self._keep_inside(points)
        self._sync()
        t3 = time.perf_counter()
        self.times.flow += t1 - t0
        self.times.diffusion += t2 - t1
        self.times.calibration += t3 - t2
        return points, new_offsets

    def _keep_inside(self, points: Tensor) -> None:
        """Clip x, y to the calorimeter (``detector.half_width_mm``), counting the points moved: the
        radial tail very rarely reaches past it (5 of 3 million points)."""
        xy = points[:, :2]
        self._clipped += (xy.abs() > self.half_width_mm).any(1).sum()  # a tensor: no device sync per batch
        xy.clamp_(-self.half_width_mm, self.half_width_mm)

    @property
    def points_clipped(self) -> int:
        """Points moved inside the calorimeter's transverse size so far (see :meth:`_keep_inside`)."""
        return int(self._clipped)

    def _to_detector_frame(self, points: Tensor, offsets: Tensor, direction: tuple[Tensor, Tensor]) -> Tensor:
        """The calibrated points of the axis frame in the detector frame: the axis added, turned by φ."""
        theta, phi = direction
        shower = shower_index_torch(offsets.to(self.device))
        x, y = from_axis_frame(
            points[:, 0], points[:, 1], points[:, 2], torch.tan(theta)[shower], phi[shower], self._layer_z
        )
        return torch.stack([x, y, points[:, 2], points[:, 3]], dim=1)

    def _calibrate(
        self,
        raw: Tensor,
        layer: Tensor,
        offsets: Tensor,
        energy: Tensor,
        stats: Any,
        generator: torch.Generator | None,
        direction: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Step 4 of the module doc: :func:`calibrate_points`, one TorchScript call for the whole batch."""
        n_showers = len(energy)
        # each point's shower, once (one shower: no repeat_interleave)
        if n_showers == 1:
            shower = torch.zeros(len(raw), dtype=torch.long, device=self.device)
        else:
            shower = shower_index_torch(offsets)
        # the rotation angles: one draw per batch, before anything else of the calibration stage
        angle = random_angles(n_showers, self.device, generator) if self.cog == "rotate" else energy
        if self.cog == "rotate" and direction is not None:  # an angled shower leans along +x: no turn
            angle = torch.where(direction[0] > 0, torch.zeros_like(angle), angle)
        nodes, table = self._radial_tensors
        return compiled(calibrate_points)(
            raw,
            layer,
            shower,
            stats.energy_per_layer_mev,
            energy,
            stats.cog_mm,
            angle,
            nodes,
            table,
            self.cog,
            not self.radial.is_identity,
            self.core_radius_mm,
            self.core_spread_mm,
            self._energy_table,
        )

    def generate(
        self,
        incident_energy_gev: np.ndarray | Tensor,
        *,
        generator: torch.Generator | None = None,
        callback: Callback | None = None,
        theta_deg: np.ndarray | float | None = None,
        phi_deg: np.ndarray | float | None = None,
    ) -> Showers:
        """Generate one batch and return it as numpy :class:`Showers`; ``callback`` is called after
        each step of the point model's solver (see :meth:`PointModel.sample`).

        ``theta_deg`` and ``phi_deg`` (one value or one per shower) give the direction of incidence
        (a direction-aware bundle); the showers then carry them as ``theta_deg`` and ``phi_deg``."""
        energy = torch.as_tensor(np.asarray(incident_energy_gev, dtype=np.float32)).reshape(-1)
        angles = self._directions(len(energy), theta_deg, phi_deg)
        direction = None
        if angles is not None:  # radians on the device, for the direction stage
            direction = tuple(torch.deg2rad(torch.tensor(a)).to(self.device, torch.float32) for a in angles)
        points, offsets = self._generate(energy, generator, callback, direction)
        showers = Showers(points.cpu().numpy(), offsets.cpu().numpy(), energy.numpy())
        return showers if angles is None else showers.with_direction(*angles)

    def stream(
        self,
        incident_energy_gev: np.ndarray,
        *,
        batch_size: int = 1000,
        seed: int = 0,
        project: Callable[[Showers], Any] | None = None,
        callback: Callback | None = None,
        theta_deg: np.ndarray | None = None,
        phi_deg: np.ndarray | None = None,
    ) -> Iterator[tuple[Showers, Any]]:
        """Yield (showers, cells or None) chunk by chunk, with one seeded generator for the whole run;
        ``callback`` after each solver step of each chunk (for a progress bar within a chunk);
        ``theta_deg``, ``phi_deg``: one direction per shower (as the energies), or None."""
        generator = torch.Generator(device=self.device).manual_seed(seed)
        for start in range(0, len(incident_energy_gev), batch_size):
            chunk = slice(start, start + batch_size)
            showers = self.generate(
                incident_energy_gev[chunk],
                generator=generator,
                callback=callback,
                theta_deg=None if theta_deg is None else theta_deg[chunk],
                phi_deg=None if phi_deg is None else phi_deg[chunk],
            )
            cells = None
            if project is not None:
                t0 = time.perf_counter()
                cells = project(showers)
                self.times.projection += time.perf_counter() - t0
            yield showers, cells


def generate_in_batches(
    bundle: ModelBundle,
    energies: np.ndarray,
    *,
    model_part: str = "cm",
    device: str = "cpu",
    seed: int = 0,
    batch_size: int = 500,
    theta_deg: np.ndarray | None = None,
    phi_deg: np.ndarray | None = None,
    **options: Any,
) -> Showers:
    """Showers at ``energies`` (and directions ``theta_deg``, ``phi_deg``, one per shower, or None)
    from one :class:`ShowerGenerator` (``options`` go to it), by :meth:`ShowerGenerator.stream` in
    batches of ``batch_size`` with one generator seeded by ``seed``, as one batch: how the
    calibration fits run the model."""
    gen = ShowerGenerator(bundle, model_part=model_part, device=device, **options)
    batches = gen.stream(energies, batch_size=batch_size, seed=seed, theta_deg=theta_deg, phi_deg=phi_deg)
    return Showers.concatenate([showers for showers, _ in batches])
