"""GLaM: learnable per-layer linear maps between an irregular binning and a regular cylinder.

For each layer, the encoder maps the voxels of an irregular mesh (per-layer radial edges and
angular bins, e.g. CaloChallenge dataset 1) to those of a regular ``(A, R)`` cylinder that a U-Net
can convolve; the decoder maps back. Both maps are initialised from the geometric overlap area of
the voxels: an irregular voxel's energy is shared among the regular voxels it overlaps in
proportion to the overlap area, and vice versa. Only overlapping pairs are stored (index buffers
plus one value per pair, block-diagonal by layer), never a dense matrix.

Weights are parameterised as a softmax over the outputs of each input voxel, so they stay
non-negative and every input's energy is fully distributed: encode and decode conserve the energy
of every layer exactly, at initialisation and after training.

References:
    Amram, Pedro, "Denoising diffusion models with geometry adaptation for high fidelity
    calorimeter simulation" (CaloDiffusion, 2023), Sec. 3.2 (GLaM).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from caloclouds.showers import shower_index
from caloclouds.voxel.mesh import CylindricalMesh

__all__ = ["overlap_pairs", "SparseVoxelMap", "GLaM"]

_MIN_OVERLAP_FRACTION = 1e-9  # Overlaps below this fraction of the smaller voxel's area are dropped.


def overlap_pairs(src: CylindricalMesh, dst: CylindricalMesh) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs of voxels of the same layer that overlap, with their overlap area.

    The outermost radial bin of each layer (in both meshes) is extended to the larger of the two
    outer radii, so that every voxel overlaps at least one voxel of the other mesh.

    Returns:
        ``(src_index, dst_index, area_mm2)``, flat voxel indices (int64) and areas (float64).
    """
    if src.n_layers != dst.n_layers:
        raise ValueError(f"meshes have {src.n_layers} and {dst.n_layers} layers; GLaM maps layer to layer")
    ts, td = src.voxel_table(), dst.voxel_table()
    # every (src voxel, dst voxel of the same layer) pair, without a loop over layers
    per_layer = dst.voxels_per_layer
    offsets = np.zeros(src.n_voxels + 1, dtype=np.int64)  # src voxel v pairs with offsets[v]:offsets[v+1]
    np.cumsum(per_layer[ts["layer"]], out=offsets[1:])
    s_idx = shower_index(offsets)
    within = np.arange(offsets[-1], dtype=np.int64) - offsets[s_idx]
    d_idx = dst.layer_offsets[ts["layer"]][s_idx] + within
    r_outer = np.maximum(np.asarray([e[-1] for e in src.r_edges_mm]), np.asarray([e[-1] for e in dst.r_edges_mm]))
    n_r_s, n_r_d = np.asarray(src.n_r), np.asarray(dst.n_r)
    s_hi = np.where(ts["r_bin"] == n_r_s[ts["layer"]] - 1, r_outer[ts["layer"]], ts["r_hi_mm"])
    d_hi = np.where(td["r_bin"] == n_r_d[td["layer"]] - 1, r_outer[td["layer"]], td["r_hi_mm"])
    r_lo = np.maximum(ts["r_lo_mm"][s_idx], td["r_lo_mm"][d_idx])
    r_hi = np.minimum(s_hi[s_idx], d_hi[d_idx])
    a_lo = np.maximum(ts["alpha_lo_rad"][s_idx], td["alpha_lo_rad"][d_idx])
    a_hi = np.minimum(ts["alpha_hi_rad"][s_idx], td["alpha_hi_rad"][d_idx])
    area = np.clip(a_hi - a_lo, 0, None) * np.clip(r_hi**2 - r_lo**2, 0, None) / 2
    s_area = (ts["alpha_hi_rad"] - ts["alpha_lo_rad"]) * (s_hi**2 - ts["r_lo_mm"] ** 2) / 2
    d_area = (td["alpha_hi_rad"] - td["alpha_lo_rad"]) * (d_hi**2 - td["r_lo_mm"] ** 2) / 2
    keep = area > _MIN_OVERLAP_FRACTION * np.minimum(s_area[s_idx], d_area[d_idx])
    return s_idx[keep], d_idx[keep], area[keep]


def _segment_softmax(logits: Tensor, group: Tensor, n_groups: int) -> Tensor:
    """Softmax of ``logits`` within each group (``group`` gives the group of each entry)."""
    big = torch.full((n_groups,), -torch.inf, dtype=logits.dtype, device=logits.device)
    big = big.scatter_reduce(0, group, logits, reduce="amax", include_self=True)
    w = (logits - big[group]).exp()
    total = torch.zeros(n_groups, dtype=logits.dtype, device=logits.device).index_add_(0, group, w)
    return w / total[group]


class SparseVoxelMap(nn.Module):
    """A sparse linear map ``y[:, out] = sum_in W[out, in] x[:, in]`` whose columns sum to 1.

    Args:
        in_index, out_index: (nnz,) int64 index pairs (the sparsity pattern, a buffer).
        weight: (nnz,) initial weights, > 0, each input's weights summing to 1.
        n_in, n_out: sizes of the input and output vectors.
        trainable: learn the weights (kept non-negative and normalised per input by a softmax).
    """

    def __init__(
        self, in_index: Tensor, out_index: Tensor, weight: Tensor, n_in: int, n_out: int, *, trainable: bool = True
    ) -> None:
        super().__init__()
        self.n_in, self.n_out = int(n_in), int(n_out)
        self.register_buffer("in_index", in_index.to(torch.int64))
        self.register_buffer("out_index", out_index.to(torch.int64))
        logits = weight.to(torch.float32).clamp_min(1e-30).log()
        if trainable:
            self.logits = nn.Parameter(logits)
        else:
            self.register_buffer("logits", logits)

    def weight(self) -> Tensor:
        """(nnz,) the current weights (each input's weights sum to 1)."""
        return _segment_softmax(self.logits, self.in_index, self.n_in)

    def forward(self, x: Tensor) -> Tensor:
        """(B, n_in) -> (B, n_out)."""
        w = self.weight().to(x.dtype)
        out = x.new_zeros(x.shape[0], self.n_out)
        return out.index_add(1, self.out_index, x[:, self.in_index] * w)

    def to_sparse_coo(self) -> Tensor:
        """The map as a torch sparse COO matrix (n_out, n_in), for inspection."""
        idx = torch.stack([self.out_index, self.in_index])
        return torch.sparse_coo_tensor(
            idx, self.weight().detach(), (self.n_out, self.n_in), check_invariants=True
        ).coalesce()

    @property
    def nnz(self) -> int:
        return int(self.in_index.numel())


class GLaM(nn.Module):
    """Encoder (irregular -> regular) and decoder (regular -> irregular) voxel maps, per layer.

    Args:
        irregular: the data's binning (any per-layer radial edges and angular bins).
        regular: the regular cylinder (same number of layers) the U-Net works on.
        trainable: learn the maps (the sparsity pattern stays the geometric overlap pattern).
    """

    def __init__(self, irregular: CylindricalMesh, regular: CylindricalMesh, *, trainable: bool = True) -> None:
        super().__init__()
        if not regular.is_regular:
            raise ValueError(f"GLaM's target mesh must be regular, got {regular!r}")
        self.irregular, self.regular = irregular, regular
        src, dst, area = overlap_pairs(irregular, regular)
        s, d, a = (torch.from_numpy(v) for v in (src, dst, area))
        n_i, n_r = irregular.n_voxels, regular.n_voxels
        enc_w = a / torch.zeros(n_i, dtype=a.dtype).index_add_(0, s, a)[s]
        dec_w = a / torch.zeros(n_r, dtype=a.dtype).index_add_(0, d, a)[d]
        self.encoder = SparseVoxelMap(s, d, enc_w, n_i, n_r, trainable=trainable)
        self.decoder = SparseVoxelMap(d, s, dec_w, n_r, n_i, trainable=trainable)

    def encode(self, x: Tensor) -> Tensor:
        """(B, n_irregular) voxel energies -> (B, n_regular)."""
        return self.encoder(x)

    def decode(self, y: Tensor) -> Tensor:
        """(B, n_regular) -> (B, n_irregular) voxel energies."""
        return self.decoder(y)

    def extra_repr(self) -> str:
        return f"{self.irregular.n_voxels} <-> {self.regular.n_voxels} voxels, nnz {self.encoder.nnz}"
