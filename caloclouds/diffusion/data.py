"""Ragged training batches: points of B random showers, augmented and normalised, no padding.

The whole training file is held in memory as flat tensors (13.8 M points are 220 MB). A batch is
drawn by shower index, gathered without any Python loop over showers, rotated by a random angle
about the shower axis (per shower), jittered inside the sub-cell and the layer, and normalised.

Angled showers (files with ``theta_deg``, ``phi_deg``) are held in the frame of their inclined axis
(:mod:`caloclouds.direction`), where they are centred in every layer; their augmentation is a random
mirror of y (the symmetry of that frame) instead of a random turn, and each row of a direction-aware
model is conditioned on tan θ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from caloclouds.diffusion.edm import RaggedCond
from caloclouds.diffusion.preprocessing import PointNormaliser, layer_totals
from caloclouds.direction import augmentation_turn, check_direction, tan_theta, to_axis_frame
from caloclouds.errors import InputFileError
from caloclouds.showers import ragged_take_torch, rotate_about_beam_axis, shower_index_torch

__all__ = ["TrainingData", "Batch"]


@dataclass(frozen=True)
class Batch:
    """A normalised ragged batch.

    Attributes:
        x: (P, 4) points.
        cond: conditioning of the network rows: ``groups`` rows per shower (row ``k * groups + g``
            is group g of shower k), ``cond.shower_index`` maps points to rows.
        showers: conditioning by shower (B rows), for the per-shower loss reduction.
        offsets: (B+1,) point offsets of the showers before grouping (points are in shower order).
        groups: noise groups per shower.
    """

    x: Tensor
    cond: RaggedCond
    showers: RaggedCond
    offsets: Tensor
    groups: int = 1

    def to(self, device: torch.device | str) -> Batch:
        def move(c: RaggedCond) -> RaggedCond:
            return RaggedCond(c.features.to(device), None if c.shower_index is None else c.shower_index.to(device))

        return Batch(self.x.to(device), move(self.cond), move(self.showers), self.offsets.to(device), self.groups)


class TrainingData:
    """Showers of a training file in memory, as flat tensors.

    Args:
        points: (P, 4) float32 ``x_mm, y_mm, layer, e_MeV``.
        offsets: (N+1,) int64.
        incident_energy_gev: (N,) float32.
    """

    def __init__(
        self,
        points: np.ndarray,
        offsets: np.ndarray,
        incident_energy_gev: np.ndarray,
        tan_theta: np.ndarray | None = None,
    ) -> None:
        self.points = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))
        self.offsets = torch.from_numpy(np.ascontiguousarray(offsets, dtype=np.int64))
        self.incident_energy_gev = torch.from_numpy(np.ascontiguousarray(incident_energy_gev, dtype=np.float32))
        n = len(self.incident_energy_gev)
        tan = np.zeros(n) if tan_theta is None else np.asarray(tan_theta, np.float64).reshape(-1)
        self.tan_theta = torch.from_numpy(np.ascontiguousarray(tan, dtype=np.float32))  # 0: normal incidence

    @classmethod
    def from_file(
        cls, path: str | Path, *, limit: int | None = None, layer_z_mm: Sequence[float] | None = None
    ) -> TrainingData:
        """Read the first ``limit`` showers (all by default) of a shower file (our HDF5 or ROOT schema)."""
        return cls.from_files([path], limit=limit, layer_z_mm=layer_z_mm)

    @classmethod
    def from_files(
        cls, paths: Sequence[str | Path], *, limit: int | None = None, layer_z_mm: Sequence[float] | None = None
    ) -> TrainingData:
        """All showers of several files (e.g. ``g4_photons_train.h5`` and ``_train2.h5``) as one set;
        ``limit`` caps the total, taken from the files in order.

        With ``layer_z_mm`` (the depth of each silicon layer's middle, for direction-aware models),
        angled showers are moved into the frame of their inclined axis and keep tan θ; files without
        a direction are normal incidence. Without it, angled files are refused (a model that does not
        know the direction cannot learn them)."""
        from caloclouds.io.formats import iter_training_showers
        from caloclouds.showers import Showers

        if not paths:
            raise InputFileError("--data", "no training file given")
        parts: list[Showers] = []
        left = limit
        for path in paths:
            if left is not None and left <= 0:
                break
            read = list(iter_training_showers(path, limit=left))
            for part in read:
                if part.has_direction:
                    problem = check_direction(part.theta_deg, part.phi_deg, str(path))
                    if problem:
                        raise InputFileError(path, problem)
                    if layer_z_mm is None and np.any(part.theta_deg):
                        msg = (
                            "holds angled showers (theta_deg > 0), but this model is not conditioned "
                            "on the direction (diffusion.direction: false)"
                        )
                        raise InputFileError(path, msg)
            parts += read
            left = None if left is None else limit - sum(len(p) for p in parts)
        if not parts:  # limit <= 0
            raise InputFileError(paths[0], f"no showers read (limit {limit})")
        showers = Showers.concatenate(parts)
        if layer_z_mm is None:
            return cls(showers.points, showers.offsets, showers.incident_energy_gev)
        showers = to_axis_frame(showers, np.asarray(layer_z_mm, np.float64))
        return cls(showers.points, showers.offsets, showers.incident_energy_gev, tan_theta(showers.theta_deg))

    def __len__(self) -> int:
        return len(self.incident_energy_gev)

    @property
    def n_points(self) -> Tensor:
        return self.offsets[1:] - self.offsets[:-1]

    def fit_normaliser(self, **options: Any) -> PointNormaliser:
        """:meth:`PointNormaliser.fit` on these showers; ``options`` (``n_layers``, ``subcell_pitch_mm``,
        ``sigma_data``, ``per_layer``, ``direction``) as there."""
        return PointNormaliser.fit(
            self.points.numpy(), self.offsets.numpy(), self.incident_energy_gev.numpy(), **options
        )

    def layer_totals(self, n_layers: int) -> tuple[Tensor, Tensor]:
        """Points and energy (MeV) per (shower, layer), two (N, n_layers) tensors (computed once)."""
        cached = getattr(self, "_layer_totals", None)
        if cached is None or cached[0].shape[1] != n_layers:
            counts, energy = layer_totals(self.points.numpy(), self.offsets.numpy(), n_layers)
            cached = (torch.from_numpy(counts).float(), torch.from_numpy(energy).float())
            self._layer_totals = cached
        return cached

    def batch(
        self,
        idx: Tensor,
        normaliser: PointNormaliser,
        *,
        rotate: bool,
        jitter: bool,
        groups: int = 1,
        points_per_shower: int = 0,
        generator: torch.Generator | None = None,
    ) -> Batch:
        """The normalised ragged batch of showers ``idx`` (B,), augmented as asked.

        ``points_per_shower`` > 0 keeps a random subset of about that many points of each shower
        (the conditions still count all of its points).

        ``jitter`` adds U[0,1) to the layer (always needed for continuous depth) and, when the
        normaliser has a sub-cell pitch, U(-p/2, p/2) to x and y. With ``groups`` > 1 the points
        of each shower are split at random into that many groups, each its own network row (same
        conditions), so that a batch sees B * groups noise levels. The network treats points
        independently given their row's context, so this changes the noise sampling only.
        """
        pts, offsets, shower_index = self._gather(
            idx, rotate=rotate, generator=generator, keep_points=points_per_shower
        )
        x = normaliser.forward(pts, jitter=jitter, generator=generator)
        features = normaliser.conditions(self.incident_energy_gev[idx], self.n_points[idx])
        showers = RaggedCond(features, shower_index if len(idx) > 1 else None)
        if groups == 1:
            return Batch(x, showers, showers, offsets, 1)
        group = torch.randint(groups, (len(x),), generator=generator)
        rows = RaggedCond(features.repeat_interleave(groups, dim=0), shower_index * groups + group)
        return Batch(x, rows, RaggedCond(features, shower_index), offsets, groups)

    def _gather(
        self, idx: Tensor, *, rotate: bool, generator: torch.Generator | None, keep_points: int = 0
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Points of showers ``idx`` (rotated if asked), their (B+1,) offsets and shower index.

        ``keep_points`` > 0 keeps each point of a shower with probability min(1, keep_points / n),
        so that every shower contributes about that many points (the offsets count the kept ones).
        """
        point_idx, offsets = ragged_take_torch(self.offsets, idx)
        counts = offsets[1:] - offsets[:-1]
        shower_index = shower_index_torch(offsets)
        if keep_points > 0:
            p_keep = (keep_points / counts.clamp_min(1).float()).clamp(max=1.0)
            keep = torch.rand(len(point_idx), generator=generator) < p_keep[shower_index]
            point_idx, shower_index = point_idx[keep], shower_index[keep]
            offsets = torch.zeros_like(offsets)
            torch.cumsum(torch.bincount(shower_index, minlength=len(idx)), 0, out=offsets[1:])
        pts = self.points[point_idx]
        if rotate:  # angled showers: a mirror of y, the symmetry of their axis frame, not a turn
            angle = torch.rand(len(idx), generator=generator) * (2 * math.pi)
            angle, y_sign = augmentation_turn(angle, self.tan_theta[idx] > 0)
            x, y = rotate_about_beam_axis(pts[:, 0], pts[:, 1], angle, shower_index)
            pts = torch.stack([x, y * y_sign[shower_index], pts[:, 2], pts[:, 3]], dim=-1)
        return pts, offsets, shower_index

    def layer_batch(
        self,
        idx: Tensor,
        normaliser: PointNormaliser,
        *,
        rotate: bool,
        jitter: bool,
        points_per_shower: int = 0,
        generator: torch.Generator | None = None,
    ) -> Batch:
        """The batch of a per-layer model: one network row per (shower, layer) with points.

        Each row is conditioned on the shower (incident energy, total points) and on its layer,
        with the layer's point count and energy of the whole shower (what the Shower Flow gives at
        generation time), also when ``points_per_shower`` keeps only a random subset of the
        points (an unbiased estimate of the per-point loss, over many more showers per step).
        """
        n_layers = normaliser.n_layers
        pts, offsets, shower_index = self._gather(
            idx, rotate=rotate, generator=generator, keep_points=points_per_shower
        )
        layer = pts[:, 2].long().clamp(0, n_layers - 1)
        rows, row_of_point = torch.unique(shower_index * n_layers + layer, return_inverse=True)
        row_shower, row_layer = rows // n_layers, rows % n_layers
        n_l, e_l = self.layer_totals(n_layers)
        shower_id = idx[row_shower]
        features = normaliser.layer_conditions(
            self.incident_energy_gev[shower_id],
            self.n_points[shower_id],
            row_layer,
            n_l[shower_id, row_layer],
            e_l[shower_id, row_layer],
            tan_theta=self.tan_theta[shower_id],
        )
        x = normaliser.forward(pts, jitter=jitter, generator=generator)
        shower_features = normaliser.conditions(self.incident_energy_gev[idx], self.n_points[idx])
        return Batch(x, RaggedCond(features, row_of_point), RaggedCond(shower_features, shower_index), offsets, 1)
