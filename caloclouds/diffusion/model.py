"""The trained PointWise Net as one object: network + preprocessing + config, with ``sample``.

``load_point_model(path)`` reads a checkpoint written by ``train-diffusion`` (kind ``"edm"``,
sampled with Heun steps) or by ``distill`` (kind ``"cm"``, sampled in one or a few steps).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from caloclouds.config import RunConfig
from caloclouds.diffusion.checkpoint import build_denoiser, load_checkpoint
from caloclouds.diffusion.edm import EDMDenoiser, RaggedCond
from caloclouds.diffusion.preprocessing import PointNormaliser
from caloclouds.diffusion.sampling import consistency_sigmas, karras_sigmas, sample_consistency, sample_heun
from caloclouds.errors import CaloCloudsError

__all__ = ["PointModel", "load_point_model"]

SAMPLERS = ("cm", "edm")


class PointModel:
    """A trained PointWise Net (EDM teacher or consistency model) ready to sample.

    Attributes:
        kind: ``"edm"`` or ``"cm"``.
        denoiser: the network with its preconditioning.
        normaliser: the point / condition transform it was trained with.
        config: the run configuration it was trained with.
        step: the training step of the weights.
    """

    def __init__(self, denoiser: EDMDenoiser, normaliser: PointNormaliser, config: RunConfig, *,
                 kind: str, step: int = 0) -> None:
        self.denoiser = denoiser.eval().requires_grad_(False)
        self.normaliser = normaliser
        self.config = config
        self.kind = kind
        self.step = step

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.denoiser.parameters())
        return f"PointModel(kind={self.kind!r}, step={self.step}, parameters={n})"

    def conditioning(self, n_points: Tensor, incident_energy_gev: Tensor, *,
                     extra_conditions: Tensor | None = None) -> tuple[RaggedCond, Tensor]:
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
        sampler: Literal["cm", "edm"] = "cm",
        steps: int | None = None,
        generator: torch.Generator | None = None,
        extra_conditions: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Generate the points of B showers.

        Args:
            n_points: (B,) int64 points per shower.
            incident_energy_gev: (B,) incident energies.
            sampler: ``"cm"`` (consistency model; 1 step by default) or ``"edm"`` (Heun steps).
            steps: CM steps (default ``distillation.sample_steps``) or Heun steps (default
                ``diffusion.heun_steps``).
            generator: random source (on the model's device, or CPU).
            extra_conditions: (B, extra_conditions) when the model was trained with extras.

        Returns:
            ``(points, offsets)``: (P, 4) float32 ``x_mm, y_mm, depth, e_MeV`` with depth continuous
            in layer units in [0, n_layers), and (B+1,) int64 offsets. Not calibrated.
        """
        if sampler not in SAMPLERS:
            raise CaloCloudsError(f"unknown sampler {sampler!r}; valid samplers are {SAMPLERS}")
        if sampler != self.kind:
            need = "a distilled consistency checkpoint (cm.pt)" if sampler == "cm" else "an EDM teacher checkpoint"
            raise CaloCloudsError(f"sampler {sampler!r} needs {need}, but this model is kind {self.kind!r}")
        cfg = self.config.diffusion
        if steps is None:
            steps = self.config.distillation.sample_steps if sampler == "cm" else cfg.heun_steps
        if steps < 1:
            raise CaloCloudsError(f"steps must be >= 1, got {steps}")
        cond, offsets = self.conditioning(n_points, incident_energy_gev, extra_conditions=extra_conditions)
        total = int(offsets[-1])
        dev = self.device
        gen_dev = generator.device if generator is not None else dev
        noise = torch.randn(total, 4, generator=generator, device=gen_dev).to(dev)
        if sampler == "cm":
            levels = karras_sigmas(self.config.distillation.num_steps, cfg.sigma_min, cfg.sigma_max, cfg.rho,
                                   append_zero=False, device=dev)
            sigmas = consistency_sigmas(steps, levels)
            x = sample_consistency(self.denoiser, noise * sigmas[0], sigmas, cond=cond,
                                   sigma_min=cfg.sigma_min, generator=generator)
        else:
            sigmas = karras_sigmas(steps, cfg.sigma_min, cfg.sigma_max, cfg.rho, device=dev)
            x = sample_heun(self.denoiser, noise * sigmas[0], sigmas, cond=cond)
        return self.normaliser.inverse(x), offsets.to(dev)


def load_point_model(path: str | Path, *, map_location: str | torch.device = "cpu") -> PointModel:
    """Load a PointWise Net checkpoint (a file or a run folder) written by train-diffusion or distill."""
    ck = load_checkpoint(path, map_location=map_location)
    denoiser = build_denoiser(ck["config"].diffusion, ck["kind"]).to(map_location)
    try:
        denoiser.inner.load_state_dict(ck["state_dict"])
    except RuntimeError as exc:
        raise CaloCloudsError(f"{ck['path']}: weights do not match the config in the file: {exc}") from None
    return PointModel(denoiser, ck["normaliser"], ck["config"], kind=ck["kind"], step=ck["step"])
