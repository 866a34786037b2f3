"""A thin adapter that lets the point-cloud EDM code run on (B, C, L, A, R) voxel images.

:class:`caloclouds.diffusion.edm.EDMDenoiser`, the samplers of
:mod:`caloclouds.diffusion.sampling` and the consistency-distillation loss only touch the
conditioning through ``cond.features``, ``cond.shower_index``, ``cond.n_showers`` and
``cond.per_point(values)``, which broadcasts per-shower values (B,) against the data. For a ragged
batch that is a gather by shower index; for images it is a reshape to (B, 1, 1, 1, 1).
:class:`ImageCond` provides exactly that, so the EDM module is reused unchanged (not copied).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from caloclouds.diffusion.edm import RaggedCond

__all__ = ["ImageCond", "per_image_mean"]


@dataclass(frozen=True)
class ImageCond(RaggedCond):
    """Conditioning of a batch of B images: ``features`` (B, C); no shower index.

    Args:
        features: (B, C) standardised per-shower conditions.
        shower_index: always None for images.
        image_dims: number of dimensions of one image including channels (4 for (C, L, A, R)).
    """

    shower_index: Tensor | None = None
    image_dims: int = 4

    def per_point(self, values: Tensor) -> Tensor:
        """Per-shower (B,) values reshaped to broadcast over images; scalars pass through."""
        if values.ndim == 0:
            return values
        return values.reshape(-1, *([1] * self.image_dims))

    @classmethod
    def for_images(cls, features: Tensor, *, image_dims: int = 4) -> ImageCond:
        return cls(features, None, image_dims)


def per_image_mean(values: Tensor) -> Tensor:
    """Mean over everything but the batch dimension: (B, ...) -> (B,)."""
    return values.reshape(values.shape[0], -1).mean(dim=1) if values.ndim > 1 else values
