"""A diffusion U-Net on cylindrical (layer, alpha, r) shower images.

Convolutions are cylindrical: the alpha axis is padded circularly (the first and last angular bins
are neighbours), the layer and radial axes with zeros. Two location channels (radial bin centre
over the outermost centre, and layer centre over the number of layers) are appended to the noisy
shower, and every residual block receives an embedding of the noise level and of the per-shower
conditions (incident energy, layer energies).

The network is the raw ``F(x, c_noise, cond)`` of the EDM preconditioning in
:mod:`caloclouds.diffusion.edm`: ``forward(x, c_noise, features, shower_index=None)`` with ``x``
(B, 1, L, A, R), ``c_noise`` (B,) and ``features`` (B, C).

References:
    Amram, Pedro, "Denoising diffusion models with geometry adaptation for high fidelity
    calorimeter simulation" (CaloDiffusion, 2023), Sec. 3.1 (cylindrical convolutions);
    Ronneberger, Fischer, Brox, "U-Net" (2015).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CylindricalConv3d", "ResBlock", "CylindricalUNet"]

MAX_NORM_GROUPS = 8  # GroupNorm groups (fewer when a block has fewer channels).


class CylindricalConv3d(nn.Module):
    """Conv3d on (B, C, L, A, R) with circular padding along A and zero padding along L and R.

    Args:
        in_channels, out_channels: channel counts.
        kernel_size: odd cubic kernel size.
        stride: stride along every axis.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, stride: int = 1) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.pad = kernel_size // 2
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, stride=stride, padding=(self.pad, 0, self.pad))

    def forward(self, x: Tensor) -> Tensor:
        if self.pad:
            x = F.pad(x, (0, 0, self.pad, self.pad, 0, 0), mode="circular")
        return self.conv(x)


def _norm(channels: int) -> nn.GroupNorm:
    groups = max(g for g in range(1, MAX_NORM_GROUPS + 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


class ResBlock(nn.Module):
    """Pre-activation residual block with a per-shower shift and scale from the embedding."""

    def __init__(self, in_channels: int, out_channels: int, embedding: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(in_channels), CylindricalConv3d(in_channels, out_channels)
        self.norm2, self.conv2 = _norm(out_channels), CylindricalConv3d(out_channels, out_channels)
        self.modulation = nn.Linear(embedding, 2 * out_channels)
        self.skip = nn.Conv3d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.modulation(emb)[:, :, None, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return h + self.skip(x)


class CylindricalUNet(nn.Module):
    """U-Net ``F(x, c_noise, features)`` on (B, 1, L, A, R) images.

    Args:
        image_shape: ``(L, A, R)``.
        r_centres_mm: (R,) radial bin centres, for the radial location channel.
        cond_features: width of the per-shower condition vector.
        channels: channels of each resolution level (each level after the first halves L, A, R).
        blocks_per_level: residual blocks per level on the way down (and up).
        embedding: width of the noise-level and condition embeddings (each; concatenated).
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        r_centres_mm: Sequence[float],
        cond_features: int,
        *,
        channels: Sequence[int] = (16, 32, 64),
        blocks_per_level: int = 1,
        embedding: int = 64,
    ) -> None:
        super().__init__()
        n_layers, n_alpha, n_r = (int(s) for s in image_shape)
        if len(r_centres_mm) != n_r:
            raise ValueError(f"r_centres_mm has {len(r_centres_mm)} entries, expected {n_r}")
        self.image_shape = (n_layers, n_alpha, n_r)
        r = torch.as_tensor(r_centres_mm, dtype=torch.float32)
        z = (torch.arange(n_layers, dtype=torch.float32) + 0.5) / n_layers
        loc = torch.stack(
            [
                (r / r[-1]).expand(n_layers, n_alpha, n_r),
                z[:, None, None].expand(n_layers, n_alpha, n_r),
            ]
        )
        self.register_buffer("location", loc[None], persistent=False)
        self.noise_mlp = nn.Sequential(nn.Linear(1, embedding), nn.GELU(), nn.Linear(embedding, embedding))
        self.cond_mlp = nn.Sequential(nn.Linear(cond_features, embedding), nn.GELU(), nn.Linear(embedding, embedding))
        emb = 2 * embedding
        self.embed_out = nn.Sequential(nn.GELU(), nn.Linear(emb, emb))
        channels = tuple(int(c) for c in channels)
        self.init_conv = CylindricalConv3d(1 + loc.shape[0], channels[0])
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c_prev = channels[0]
        for i, c in enumerate(channels):
            blocks = [ResBlock(c_prev if j == 0 else c, c, emb) for j in range(blocks_per_level)]
            self.down.append(nn.ModuleList(blocks))
            c_prev = c
            if i < len(channels) - 1:
                self.downsample.append(CylindricalConv3d(c, c, stride=2))
        self.mid = nn.ModuleList([ResBlock(c_prev, c_prev, emb), ResBlock(c_prev, c_prev, emb)])
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(channels))):
            c = channels[i]
            if i < len(channels) - 1:
                self.upsample.append(CylindricalConv3d(c_prev, c))
                c_prev = c
            blocks = [ResBlock(2 * c if j == 0 else c, c, emb) for j in range(blocks_per_level)]
            self.up.append(nn.ModuleList(blocks))
        self.out_norm = _norm(channels[0])
        self.out_conv = nn.Conv3d(channels[0], 1, 1)
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(self.out_conv.bias)

    def forward(self, x: Tensor, c_noise: Tensor, features: Tensor, shower_index: Tensor | None = None) -> Tensor:
        """``x`` (B, 1, L, A, R), ``c_noise`` (B,), ``features`` (B, C) -> (B, 1, L, A, R)."""
        del shower_index  # images are not ragged
        b = x.shape[0]
        emb = torch.cat([self.noise_mlp(c_noise.reshape(b, 1).to(x.dtype)), self.cond_mlp(features.to(x.dtype))], dim=1)
        emb = self.embed_out(emb)
        h = self.init_conv(torch.cat([x, self.location.expand(b, -1, -1, -1, -1).to(x.dtype)], dim=1))
        skips = []
        for i, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        for block in self.mid:
            h = block(h, emb)
        for j, blocks in enumerate(self.up):
            skip = skips.pop()
            if j > 0:
                h = self.upsample[j - 1](F.interpolate(h, size=skip.shape[2:], mode="nearest"))
            h = torch.cat([h, skip], dim=1)
            for block in blocks:
                h = block(h, emb)
        return self.out_conv(F.silu(self.out_norm(h)))
