"""The voxel diffusion model: build, save, load and sample.

A :class:`VoxelModel` holds everything needed to go from incident energies to voxel showers:

1. layer energies from its own :class:`LayerEnergyModel`, or given (e.g. by the Shower Flow);
2. the U-Net under EDM preconditioning (teacher, Heun steps) or the consistency parameterisation
   (distilled, 1-few steps), both from :mod:`caloclouds.diffusion`, run through :class:`ImageCond`;
3. the inverse preprocessing, which rescales every layer to its energy;
4. for an irregular data mesh, the (fixed) GLaM decoder from the regular latent cylinder.

A checkpoint is a plain dict ``{"format_version", "kind", "config", "mesh", "latent_mesh",
"state_dict", ...}`` that loads with ``torch.load(path, weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from caloclouds.diffusion.consistency import ConsistencyDenoiser
from caloclouds.diffusion.edm import EDMDenoiser
from caloclouds.diffusion.sampling import MODEL_PARTS, Solver, resolve_sampling, sample, solver_sigmas
from caloclouds.errors import InputFileError
from caloclouds.io.torchfile import load_checkpoint_dict
from caloclouds.showers import Showers
from caloclouds.training.rundir import resolve_run_file
from caloclouds.voxel.adapter import ImageCond
from caloclouds.voxel.config import VoxelConfig, voxel_config_from_dict, voxel_config_to_dict
from caloclouds.voxel.glam import GLaM
from caloclouds.voxel.layers import LayerEnergyModel
from caloclouds.voxel.mesh import CylindricalMesh, get_mesh
from caloclouds.voxel.preprocessing import VoxelNormaliser
from caloclouds.voxel.unet import CylindricalUNet
from caloclouds.voxel.voxelize import VoxelShowers, voxels_to_points

__all__ = [
    "FORMAT_VERSION",
    "VoxelModel",
    "build_voxel_model",
    "is_voxel_checkpoint",
    "layer_energies_from_flow",
    "load_voxel_model",
]

FORMAT_VERSION = 1
Kind = Literal["edm", "cm"]


class VoxelModel(nn.Module):
    """Voxel shower generator (see the module docstring).

    Args:
        config: the voxel configuration.
        mesh: the data binning (regular or irregular).
        latent_mesh: the regular cylinder of the U-Net (ignored when ``mesh`` is regular).
        kind: ``"edm"`` (teacher) or ``"cm"`` (consistency model).
    """

    def __init__(
        self,
        config: VoxelConfig,
        mesh: CylindricalMesh,
        latent_mesh: CylindricalMesh | None = None,
        *,
        kind: Kind = "edm",
    ) -> None:
        super().__init__()
        if kind not in ("edm", "cm"):
            raise ValueError(f"kind must be 'edm' or 'cm', got {kind!r}")
        self.config, self.mesh, self.kind = config, mesh, kind
        if mesh.is_regular:
            self.latent_mesh = mesh
            self.glam: GLaM | None = None
        else:
            if latent_mesh is None:
                raise ValueError(f"an irregular mesh {mesh!r} needs a regular latent_mesh")
            self.latent_mesh = latent_mesh
            self.glam = GLaM(mesh, latent_mesh, trainable=False)
        n_layers, _, n_r = self.latent_mesh.shape
        edges = np.asarray(self.latent_mesh.r_edges_mm[0])
        unet = CylindricalUNet(
            self.latent_mesh.shape,
            ((edges[:-1] + edges[1:]) / 2).tolist(),
            1 + n_layers,
            channels=config.channels,
            blocks_per_level=config.blocks_per_level,
            embedding=config.embedding,
        )
        if kind == "edm":
            self.denoiser: EDMDenoiser = EDMDenoiser(unet, config.sigma_data)
        else:
            self.denoiser = ConsistencyDenoiser(unet, config.sigma_data, sigma_min=config.sigma_min)
        self.normaliser = VoxelNormaliser(n_layers, alpha=config.logit_alpha, floor_mev=config.layer_floor_mev)
        self.layer_model = LayerEnergyModel(n_layers, floor_mev=config.layer_floor_mev)

    # -- spaces ---------------------------------------------------------------------------------

    def to_latent(self, energy_mev: Tensor) -> Tensor:
        """(B, n_voxels) data-mesh energies -> (B, L, A, R) latent images."""
        if self.glam is not None:
            energy_mev = self.glam.encode(energy_mev)
        return energy_mev.reshape(energy_mev.shape[0], *self.latent_mesh.shape)

    def from_latent(self, images_mev: Tensor) -> Tensor:
        """(B, L, A, R) latent images -> (B, n_voxels) data-mesh energies."""
        flat = images_mev.reshape(images_mev.shape[0], -1)
        return self.glam.decode(flat) if self.glam is not None else flat

    # -- sampling -------------------------------------------------------------------------------

    def default_steps(self) -> int:
        return self.config.cm_sample_steps if self.kind == "cm" else self.config.heun_steps

    def resolve_solver(self, solver: str | None = None) -> str:
        """``solver``, or this model's default (``"heun"`` for the teacher, ``"consistency"`` for a CM).

        Raises:
            ConfigError: the solver runs on the other model part.
        """
        part = next(p for p, kind in MODEL_PARTS.items() if kind == self.kind)
        return resolve_sampling(model_part=part, solver=solver)[1]

    @torch.no_grad()
    def sample_voxels(
        self,
        incident_energy_gev: Tensor,
        *,
        layer_energy_mev: Tensor | None = None,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        solver: Solver | None = None,
    ) -> Tensor:
        """Generate (B, n_voxels) voxel energies in MeV.

        Args:
            incident_energy_gev: (B,) incident energies.
            layer_energy_mev: (B, L) layer energies to rescale to (default: drawn from the
                built-in layer-energy model).
            steps: Heun / Euler steps (teacher) or consistency steps (default from the config).
            generator: random source (noise and layer energies).
            solver: ``"heun"`` or ``"euler"`` for the teacher, ``"consistency"`` for a consistency
                model (default: :meth:`resolve_solver`).
        """
        cfg = self.config
        solver = self.resolve_solver(solver)
        device = self.normaliser.logit_mean.device
        e = incident_energy_gev.to(device=device, dtype=torch.float32).reshape(-1)
        if layer_energy_mev is None:
            layer_energy_mev = self.layer_model.sample(e, generator=generator)
        layer_energy_mev = layer_energy_mev.to(device=device, dtype=torch.float32)
        if layer_energy_mev.shape != (len(e), self.latent_mesh.n_layers):
            raise ValueError(
                f"layer_energy_mev has shape {tuple(layer_energy_mev.shape)}, expected ({len(e)}, {self.latent_mesh.n_layers})"
            )
        cond = ImageCond.for_images(self.normaliser.features(e, layer_energy_mev).float())
        n = self.default_steps() if steps is None else int(steps)
        if n < 1:
            raise ValueError(f"steps must be >= 1, got {n}")
        shape = (len(e), 1, *self.latent_mesh.shape)
        noise = torch.randn(shape, generator=generator, device=device)
        sigmas = solver_sigmas(
            solver,
            n,
            sigma_min=cfg.sigma_min,
            sigma_max=cfg.sigma_max,
            rho=cfg.rho,
            distill_levels=cfg.distill_levels,
            device=device,
        )
        x = sample(self.denoiser, noise, solver=solver, sigmas=sigmas, cond=cond, generator=generator)
        images = self.normaliser.inverse(x, layer_energy_mev, min_voxel_mev=cfg.min_voxel_mev)
        return self.from_latent(images)

    def sample(self, incident_energy_gev: np.ndarray | Tensor, **kwargs: Any) -> VoxelShowers:
        """:meth:`sample_voxels` as :class:`VoxelShowers` on the data mesh."""
        e = torch.as_tensor(np.asarray(incident_energy_gev, dtype=np.float32))
        voxels = self.sample_voxels(e, **kwargs)
        return VoxelShowers(voxels.cpu().numpy(), e.numpy(), self.mesh)

    def sample_showers(
        self,
        incident_energy_gev: np.ndarray | Tensor,
        *,
        mode: Literal["centre", "uniform"] = "uniform",
        points_per_voxel: int = 1,
        seed: int = 0,
        **kwargs: Any,
    ) -> Showers:
        """Generate showers as points (one or more per voxel), ready for projection and evaluation."""
        generator = kwargs.pop("generator", None) or torch.Generator().manual_seed(seed)
        voxels = self.sample(incident_energy_gev, generator=generator, **kwargs)
        return voxels_to_points(voxels, mode=mode, points_per_voxel=points_per_voxel, rng=np.random.default_rng(seed))

    # -- checkpoints ----------------------------------------------------------------------------

    def checkpoint(self, **extra: Any) -> dict[str, Any]:
        """Plain-dict checkpoint (see the module docstring); ``extra`` keys are added."""
        return {
            "format_version": FORMAT_VERSION,
            "kind": f"voxel-{self.kind}",
            "config": voxel_config_to_dict(self.config),
            "mesh": self.mesh.to_dict(),
            "latent_mesh": self.latent_mesh.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
            **extra,
        }

    def save(self, path: str | Path, **extra: Any) -> None:
        """Write :meth:`checkpoint` atomically."""
        from caloclouds.io.atomic import atomic_path

        with atomic_path(path) as tmp:
            torch.save(self.checkpoint(**extra), tmp)

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any], *, path: str | Path = "<checkpoint>") -> VoxelModel:
        kind = ckpt.get("kind")
        if ckpt.get("format_version") != FORMAT_VERSION or kind not in ("voxel-edm", "voxel-cm"):
            msg = f"not a voxel model checkpoint (format_version {ckpt.get('format_version')!r}, kind {kind!r})"
            raise InputFileError(path, msg)
        config = voxel_config_from_dict(ckpt["config"])
        model = cls(
            config,
            CylindricalMesh.from_dict(ckpt["mesh"]),
            CylindricalMesh.from_dict(ckpt["latent_mesh"]),
            kind=kind[len("voxel-") :],
        )
        try:
            model.load_state_dict(ckpt["state_dict"])
        except RuntimeError as exc:
            raise InputFileError(path, f"weights do not match the config in the file: {exc}") from None
        return model.eval()


def load_voxel_model(path: str | Path, *, map_location: str | torch.device = "cpu") -> VoxelModel:
    """Load a voxel model: a checkpoint file, or a ``train-voxel`` run folder (its ``model.pt``)."""
    path = Path(path)
    if path.is_dir():
        path = resolve_run_file(path)
    ckpt = load_checkpoint_dict(path, map_location=map_location, what="voxel model checkpoint")
    return VoxelModel.from_checkpoint(ckpt, path=path).to(map_location)


def is_voxel_checkpoint(path: str | Path) -> bool:
    """True if ``path`` is a voxel model checkpoint or a run folder of one (for dispatch in ``generate``)."""
    try:
        ckpt = load_checkpoint_dict(resolve_run_file(path))
    except InputFileError:  # anything missing or unreadable is not a voxel checkpoint
        return False
    return str(ckpt.get("kind", "")).startswith("voxel-")


def layer_energies_from_flow(
    flow_path: str | Path, incident_energy_gev: Tensor, *, generator: torch.Generator | None = None
) -> Tensor:
    """(B, L) layer energies in MeV drawn from a trained Shower Flow (``flows.load_shower_flow``)."""
    from flows import load_shower_flow

    flow = load_shower_flow(flow_path)
    return flow.sample(incident_energy_gev.float(), generator=generator).energy_per_layer_mev.float()


def build_voxel_model(config: VoxelConfig, *, kind: Kind = "edm") -> VoxelModel:
    """A fresh model for ``config.mesh`` (and ``config.latent_mesh`` when the mesh is irregular)."""
    return VoxelModel(config, get_mesh(config.mesh), get_mesh(config.latent_mesh), kind=kind)
