"""The trained PointWise Net as one object: network + preprocessing + config, with ``sample``.

``load_point_model(path)`` reads a checkpoint written by ``train-diffusion`` (kind ``"edm"``: the
teacher, sampled with the ``heun`` or ``euler`` solver) or by ``distill`` (kind ``"cm"``: the
consistency model, sampled with the ``consistency`` solver in one or a few steps). Every draw goes
through :func:`caloclouds.diffusion.sampling.sample`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from caloclouds.config import RunConfig
from caloclouds.diffusion.checkpoint import build_denoiser, load_checkpoint
from caloclouds.diffusion.edm import EDMDenoiser, RaggedCond
from caloclouds.diffusion.preprocessing import PointNormaliser
from caloclouds.diffusion.sampling import (
    MODEL_PARTS,
    Callback,
    Solver,
    resolve_sampling,
    sample,
    solver_sigmas,
)
from caloclouds.errors import CaloCloudsError

__all__ = ["PointModel", "load_point_model"]


class PointModel:
    """A trained PointWise Net (EDM teacher or consistency model) ready to sample.

    Attributes:
        kind: ``"edm"`` or ``"cm"``.
        denoiser: the network with its preconditioning.
        normaliser: the point / condition transform it was trained with.
        config: the run configuration it was trained with.
        step: the training step of the weights.
    """

    def __init__(
        self, denoiser: EDMDenoiser, normaliser: PointNormaliser, config: RunConfig, *, kind: str, step: int = 0
    ) -> None:
        self.denoiser = denoiser.eval().requires_grad_(False)
        self.normaliser = normaliser
        self.config = config
        self.kind = kind
        self.step = step
        self._sigma_cache: dict[tuple, Tensor] = {}  # noise levels per solver setting (_sigmas)
        # a parameter follows the module's .to() in place, so its device stays the weights' device;
        # looking it up through parameters() on every call cost more than the lookup is worth
        self._first_parameter = next(self.denoiser.parameters())

    @property
    def device(self) -> torch.device:
        return self._first_parameter.device

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.denoiser.parameters())
        return f"PointModel(kind={self.kind!r}, step={self.step}, parameters={n})"

    def conditioning(
        self, n_points: Tensor, incident_energy_gev: Tensor, *, extra_conditions: Tensor | None = None
    ) -> tuple[RaggedCond, Tensor]:
        """Ragged conditioning and (B+1,) offsets for showers of ``n_points`` points."""
        dev = self.device
        n_points = torch.as_tensor(n_points, dtype=torch.int64).reshape(-1).cpu()
        energy = torch.as_tensor(incident_energy_gev, dtype=torch.float32).reshape(-1).cpu()
        if len(n_points) != len(energy):
            raise CaloCloudsError(f"n_points has {len(n_points)} showers but incident_energy_gev has {len(energy)}")
        if len(n_points) and int(n_points.min()) < 0:
            raise CaloCloudsError(f"n_points must be >= 0, got {int(n_points.min())}")
        features = self.normaliser.conditions(energy, n_points)
        n_extra = self.config.diffusion.extra_conditions
        if n_extra:
            if extra_conditions is None or tuple(extra_conditions.shape) != (len(energy), n_extra):
                raise CaloCloudsError(f"this model needs extra_conditions of shape ({len(energy)}, {n_extra})")
            features = torch.cat([features, extra_conditions.to(torch.float32).cpu()], dim=-1)
        offsets = torch.zeros(len(n_points) + 1, dtype=torch.int64)
        torch.cumsum(n_points, 0, out=offsets[1:])
        return RaggedCond.from_offsets(features.to(dev), offsets.to(dev)), offsets

    @torch.inference_mode()
    def sample(
        self,
        n_points: Tensor,
        incident_energy_gev: Tensor,
        *,
        solver: Solver | None = None,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        extra_conditions: Tensor | None = None,
        model_part: str | None = None,
        callback: Callback | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Generate the points of B showers.

        Args:
            n_points: (B,) int64 points per shower.
            incident_energy_gev: (B,) incident energies.
            solver: ``"consistency"`` for a consistency model (the default for kind ``"cm"``),
                ``"heun"`` (the default for the teacher, kind ``"edm"``) or ``"euler"``.
            steps: consistency steps (default ``distillation.sample_steps``) or Heun / Euler steps
                (default ``diffusion.heun_steps``).
            generator: random source (on the model's device, or CPU).
            extra_conditions: (B, extra_conditions) when the model was trained with extras.
            model_part: ``"cm"`` or ``"teacher"``, which must be this model's part (a check).
            callback: called after each solver step with the solver's dict (``x``, ``i``, ``sigma``,
                ...) and ``steps``, the number of steps (e.g. for a progress bar).

        Returns:
            ``(points, offsets)``: (P, 4) float32 ``x_mm, y_mm, depth, e_MeV`` with depth continuous
            in layer units in [0, n_layers), and (B+1,) int64 offsets. Not calibrated.
        """
        if self.per_layer:
            raise CaloCloudsError("this PointWise Net is per layer: use sample_layers with the flow's layer counts")
        cond, offsets = self.conditioning(n_points, incident_energy_gev, extra_conditions=extra_conditions)
        x = self._draw(
            cond,
            int(offsets[-1]),
            solver=solver,
            model_part=model_part,
            steps=steps,
            generator=generator,
            callback=callback,
        )
        return self.normaliser.inverse(x), offsets.to(self.device)

    @property
    def per_layer(self) -> bool:
        """True when the network generates (x, y, e) per layer, given each layer's count and energy."""
        return self.normaliser.per_layer

    @torch.inference_mode()
    def sample_layers(
        self,
        points_per_layer: Tensor,
        energy_per_layer_mev: Tensor,
        incident_energy_gev: Tensor,
        *,
        solver: Solver | None = None,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        condition_points_per_layer: Tensor | None = None,
        model_part: str | None = None,
        callback: Callback | None = None,
        tan_theta: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Generate B showers layer by layer (per-layer models).

        Args:
            points_per_layer: (B, L) int64 points of each layer.
            energy_per_layer_mev: (B, L) energy of each layer (a condition: the network draws the
                point energies of a layer around E_l / n_l; rescale them to E_l afterwards).
            incident_energy_gev: (B,) incident energies.
            solver, steps, generator, model_part, callback: as in :meth:`sample`.
            condition_points_per_layer: (B, L) the counts the rows are conditioned on, when they
                differ from the counts drawn (the N calibration draws more or fewer points than the
                Geant4-like counts of the flow); default ``points_per_layer``.
            tan_theta: (B,) tan θ of each shower, for direction-aware models (default 0: normal
                incidence); the points are then in the frame of the inclined axis
                (:func:`caloclouds.direction.from_axis_frame` puts them into the detector frame).

        Returns:
            ``(points, offsets)``: (P, 4) float32 ``x_mm, y_mm, layer, e_MeV`` with integer layers,
            grouped by shower and, within a shower, by ascending layer; (B+1,) int64 offsets.
        """
        if not self.per_layer:
            raise CaloCloudsError("this PointWise Net is not per layer: use sample")
        cond, total, row_layer, row_counts, offsets = self.layer_rows(
            points_per_layer, energy_per_layer_mev, incident_energy_gev, condition_points_per_layer, tan_theta
        )
        x = self._draw(
            cond, total, solver=solver, model_part=model_part, steps=steps, generator=generator, callback=callback
        )
        # the layer of each point: the row's, gathered with the row index the network already has
        dev = x.device
        row_layer = row_layer.to(dev)
        layer = row_layer.expand(total) if cond.shower_index is None else row_layer.index_select(0, cond.shower_index)
        return self.normaliser.inverse(x, layer), offsets.to(dev)

    def layer_rows(
        self,
        points_per_layer: Tensor,
        energy_per_layer_mev: Tensor,
        incident_energy_gev: Tensor,
        condition_points_per_layer: Tensor | None = None,
        tan_theta: Tensor | None = None,
    ) -> tuple[RaggedCond, int, Tensor, Tensor, Tensor]:
        """The network rows of :meth:`sample_layers`: ``(cond, total points, row layer, row counts,
        shower offsets)``, one row per (shower, layer) with points, in shower-then-layer order."""
        counts = torch.as_tensor(points_per_layer, dtype=torch.int64).cpu()
        energy_l = torch.as_tensor(energy_per_layer_mev, dtype=torch.float32).cpu()
        energy = torch.as_tensor(incident_energy_gev, dtype=torch.float32).reshape(-1).cpu()
        n_layers = self.normaliser.n_layers
        if counts.shape != (len(energy), n_layers) or energy_l.shape != counts.shape:
            raise CaloCloudsError(
                f"points_per_layer and energy_per_layer_mev must be ({len(energy)}, {n_layers}), "
                f"got {tuple(counts.shape)} and {tuple(energy_l.shape)}"
            )
        cond_counts = (
            counts
            if condition_points_per_layer is None
            else torch.as_tensor(condition_points_per_layer, dtype=torch.int64).cpu().reshape(counts.shape)
        )
        # The row bookkeeping on these (B, L) arrays is done in numpy, whose per-call cost is a
        # fraction of torch's: at batch 1 it was a tenth of the point stage.
        flat = counts.numpy().reshape(-1)
        if flat.size and flat.min() < 0:
            raise CaloCloudsError(f"points_per_layer must be >= 0, got {int(flat.min())}")
        rows = np.flatnonzero(flat)  # one network row per (shower, layer) with points
        row_shower, row_layer = np.divmod(rows, n_layers)
        row_counts = flat[rows]
        cond_flat = cond_counts.numpy().reshape(-1)
        features = self.normaliser.layer_conditions(
            torch.from_numpy(energy.numpy()[row_shower]),
            torch.from_numpy(cond_counts.numpy().sum(1)[row_shower]),
            torch.from_numpy(row_layer),
            torch.from_numpy(np.maximum(cond_flat[rows], 1)),
            torch.from_numpy(np.maximum(energy_l.numpy().reshape(-1)[rows], np.float32(0.0))),
            None
            if tan_theta is None
            else torch.as_tensor(tan_theta, dtype=torch.float32).reshape(-1).cpu()[row_shower],
        )
        total = int(row_counts.sum())
        dev = self.device
        index = None if len(rows) == 1 else torch.from_numpy(np.repeat(np.arange(len(rows)), row_counts)).to(dev)
        offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(counts.numpy().sum(1))]))
        cond = RaggedCond(features.to(dev), index)
        return cond, total, torch.from_numpy(row_layer), torch.from_numpy(row_counts), offsets

    @property
    def part(self) -> str:
        """The model part: ``"cm"`` (kind ``"cm"``) or ``"teacher"`` (kind ``"edm"``)."""
        return next(part for part, kind in MODEL_PARTS.items() if kind == self.kind)

    def resolve_solver(self, solver: str | None = None, *, model_part: str | None = None) -> str:
        """The solver to use: ``solver``, or this model part's default; ``model_part``, when given, must
        be this model's.

        Raises:
            CaloCloudsError: the solver needs the other model part, or ``model_part`` is not this one.
        """
        if model_part is not None:
            if model_part not in MODEL_PARTS:
                raise CaloCloudsError(f"unknown model part {model_part!r}; valid parts are {sorted(MODEL_PARTS)}")
            if model_part != self.part:
                need = (
                    "a distilled consistency checkpoint (cm.pt)" if model_part == "cm" else "an EDM teacher checkpoint"
                )
                raise CaloCloudsError(
                    f"model part {model_part!r} needs {need}, but this model is the {self.part!r} (kind {self.kind!r})"
                )
        part, solver = resolve_sampling(solver=solver, model_part=None if solver else self.part)
        if part != self.part:
            raise CaloCloudsError(
                f"solver {solver!r} needs the {part!r} weights, but this model is the "
                f"{self.part!r} (kind {self.kind!r})"
            )
        return solver

    def _draw(
        self,
        cond: RaggedCond,
        total: int,
        *,
        solver: str | None,
        model_part: str | None,
        steps: int | None,
        generator: torch.Generator | None,
        callback: Callback | None = None,
    ) -> Tensor:
        """``total`` points in the diffusion space, drawn by ``solver`` given the row conditions."""
        solver = self.resolve_solver(solver, model_part=model_part)
        cfg = self.config.diffusion
        if steps is None:
            steps = self.config.distillation.sample_steps if self.kind == "cm" else cfg.heun_steps
        if steps < 1:
            raise CaloCloudsError(f"steps must be >= 1, got {steps}")
        dev = self.device
        gen_dev = generator.device if generator is not None else dev
        noise = torch.randn(total, self.normaliser.n_features, generator=generator, device=gen_dev).to(dev)
        sigmas = self._sigmas(solver, steps, dev)
        step_callback = None if callback is None else (lambda info: callback({**info, "steps": steps}))
        return sample(
            self.denoiser, noise, solver=solver, sigmas=sigmas, cond=cond, generator=generator, callback=step_callback
        )

    def _sigmas(self, solver: str, steps: int, device: torch.device) -> Tensor:
        """The noise levels of ``solver`` (:func:`solver_sigmas`), built once for each setting."""
        cfg = self.config.diffusion
        settings = dict(
            sigma_min=cfg.sigma_min,
            sigma_max=cfg.sigma_max,
            rho=cfg.rho,
            distill_levels=self.config.distillation.num_steps,
        )
        key = (solver, steps, str(device), *settings.values())
        if key not in self._sigma_cache:
            self._sigma_cache[key] = solver_sigmas(solver, steps, **settings, device=device)
        return self._sigma_cache[key]


def load_point_model(path: str | Path, *, map_location: str | torch.device = "cpu") -> PointModel:
    """Load a PointWise Net checkpoint (a file or a run folder) written by train-diffusion or distill."""
    ck = load_checkpoint(path, map_location=map_location)
    config = ck["config"]
    denoiser = build_denoiser(config.diffusion, ck["kind"], config.detector.n_layers).to(map_location)
    try:
        denoiser.inner.load_state_dict(ck["state_dict"])
    except RuntimeError as exc:
        raise CaloCloudsError(f"{ck['path']}: weights do not match the config in the file: {exc}") from None
    return PointModel(denoiser, ck["normaliser"], ck["config"], kind=ck["kind"], step=ck["step"])
