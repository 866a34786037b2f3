"""Per-shower cell hits: the output of projecting point clouds onto a readout geometry.

A batch of N showers with H hits in total is stored flat, like :class:`caloclouds.Showers`:
shower i owns hits ``offsets[i]:offsets[i+1]``. Within a shower, hits are sorted by ``cell_id``
(and so by layer, since cell ids are layer-major in every geometry).

Energy bookkeeping is exact: for every shower,
``sum(e_mev) + lost_mev + below_threshold_mev == input energy`` (up to float rounding).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from caloclouds.showers import shower_index

__all__ = ["CellHits"]


@dataclass
class CellHits:
    """Ragged per-shower cell hits (numpy arrays; :func:`projection.project_torch` returns tensors).

    Args:
        offsets: (N+1,) int64, shower i owns hits ``offsets[i]:offsets[i+1]``.
        cell_id: (H,) int64, index of the cell in its geometry's cell table (unique in the geometry).
        layer: (H,) int64 detector layer index.
        x_mm: (H,) float32 cell centre, local frame of the geometry.
        y_mm: (H,) float32.
        z_mm: (H,) float32 depth of the layer.
        e_mev: (H,) float32 summed energy (after the threshold, if one was applied).
        lost_mev: (N,) float64 energy outside the acceptance, in gaps, on dead cells or in layers
            that the layer map drops.
        below_threshold_mev: (N,) float64 energy of the cells removed by the threshold.
    """

    offsets: Any
    cell_id: Any
    layer: Any
    x_mm: Any
    y_mm: Any
    z_mm: Any
    e_mev: Any
    lost_mev: Any
    below_threshold_mev: Any

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_hits(self) -> Any:
        """(N,) number of hit cells of each shower."""
        return self.offsets[1:] - self.offsets[:-1]

    @property
    def shower_index(self) -> np.ndarray:
        """(H,) int64: the shower each hit belongs to."""
        return shower_index(np.asarray(self.offsets))

    def energy_mev(self) -> np.ndarray:
        """(N,) float64: summed cell energy of each shower."""
        e = np.asarray(self.e_mev, dtype=np.float64)
        return np.bincount(self.shower_index, weights=e, minlength=len(self))

    @classmethod
    def concatenate(cls, parts: list[CellHits]) -> CellHits:
        """Join numpy CellHits of consecutive shower batches into one."""
        if not parts:
            return cls.empty()
        counts = np.concatenate([np.diff(p.offsets) for p in parts])
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        joined = {
            f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls) if f.name != "offsets"
        }
        return cls(offsets=offsets, **joined)

    @classmethod
    def empty(cls) -> CellHits:
        """No showers."""
        z = np.zeros(0)
        return cls(
            offsets=np.zeros(1, np.int64),
            cell_id=z.astype(np.int64),
            layer=z.astype(np.int64),
            x_mm=z.astype(np.float32),
            y_mm=z.astype(np.float32),
            z_mm=z.astype(np.float32),
            e_mev=z.astype(np.float32),
            lost_mev=z,
            below_threshold_mev=z,
        )

    def shower(self, i: int) -> CellHits:
        """The hits of shower ``i`` as a one-shower CellHits."""
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return CellHits(
            offsets=np.array([0, b - a], dtype=np.int64),
            cell_id=self.cell_id[a:b],
            layer=self.layer[a:b],
            x_mm=self.x_mm[a:b],
            y_mm=self.y_mm[a:b],
            z_mm=self.z_mm[a:b],
            e_mev=self.e_mev[a:b],
            lost_mev=self.lost_mev[i : i + 1],
            below_threshold_mev=self.below_threshold_mev[i : i + 1],
        )

    def numpy(self) -> CellHits:
        """A copy with every field as a numpy array (converts tensors from any device)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if hasattr(value, "detach"):
                value = value.detach().cpu().numpy()
            out[f.name] = np.asarray(value)
        return CellHits(**out)

    def __repr__(self) -> str:
        return f"CellHits(showers={len(self)}, hits={len(self.cell_id)})"
