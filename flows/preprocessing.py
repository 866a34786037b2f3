"""Invertible per-feature transform between shower statistics and the flow's standardised space.

The flow models D = 4 + 2L columns, each first transformed by its kind, then standardised with the
mean and spread of the training set (fitted once, stored in the checkpoint):

=====================  ======================================  ===============================
column                 kind                                    inverse at sampling time
=====================  ======================================  ===============================
``log_n_points``       ``log``: log N                          N = max(1, round(exp(y)))
``log_sampling_frac``  ``log_ratio``: log(E_vis / E_inc)       E_vis = exp(y) * E_inc
``cog_x_mm``, ``_y``   ``identity``                            cog = y
``point_frac_l``       ``sqrt_fraction``: sqrt(n_l / N)        n_l: largest remainder of max(y,0)^2
``energy_frac_l``      ``sqrt_fraction``: sqrt(E_l / E_vis)    E_l = max(y,0)^2 / sum * E_vis
=====================  ======================================  ===============================

In training the layer fractions are dequantised (see :meth:`FeaturePreprocessing.encode`): a
count n_l becomes n_l + U(-1/2, 1/2) and an empty layer's energy fraction a small negative value,
under a signed square root. The spike of empty layers becomes a smooth density that the flow can
learn, and every value <= 0 decodes to an empty layer again.

The inverse makes the invariants hold by construction: n_l are non-negative integers summing to N
exactly, E_l >= 0 sum to E_vis, and a layer without points gets no energy. Samples are clamped to
the training range widened by ``range_margin`` standard deviations, so no value is ever NaN or inf.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from caloclouds.rounding import largest_remainder_shares
from flows.features import ShowerFeatures

__all__ = ["FeaturePreprocessing", "decode_statistics", "largest_remainder_round", "MEV_PER_GEV"]

MEV_PER_GEV = 1000.0
_TOTALS = (
    ("log_n_points", "log"),
    ("log_sampling_frac", "log_ratio"),
    ("cog_x_mm", "identity"),
    ("cog_y_mm", "identity"),
)
_MIN_STD = 1e-6  # a constant column (e.g. a layer that is always empty) is not rescaled
_FALLBACK_WEIGHT = 1e-9  # weight of the mean profile added to sampled fractions (never all zero)


def _layout(n_layers: int) -> tuple[list[str], list[str]]:
    names = [n for n, _ in _TOTALS] + [f"point_frac_l{i}" for i in range(n_layers)]
    names += [f"energy_frac_l{i}" for i in range(n_layers)]
    kinds = [k for _, k in _TOTALS] + ["sqrt_fraction"] * (2 * n_layers)
    return names, kinds


def _signed_sqrt(v: Tensor) -> Tensor:
    return torch.sign(v) * torch.sqrt(torch.abs(v))


def largest_remainder_round(fractions: Tensor, totals: Tensor) -> Tensor:
    """Integer split of ``totals`` (B,) int64 in proportion to ``fractions`` (B, L) (rows sum to 1).

    :func:`caloclouds.rounding.largest_remainder_shares` of ``fractions * totals`` in the dtype of
    ``fractions``: every row sums to its total exactly and no entry is negative.
    """
    return largest_remainder_shares(fractions * totals.unsqueeze(1), totals)


def decode_statistics(
    z: Tensor,
    incident_energy_gev: Tensor,
    mean: Tensor,
    std: Tensor,
    lo: Tensor,
    hi: Tensor,
    fallback_frac: Tensor,
    point_frac_scale: Tensor,
    energy_frac_scale: Tensor,
    n_layers: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """:meth:`FeaturePreprocessing.decode` on its buffers: ``(points_per_layer, energy_per_layer_mev,
    cog_mm)``. TorchScript-compatible: the DDML export compiles this same function."""
    z = torch.minimum(torch.maximum(torch.nan_to_num(z, nan=0.0), lo), hi)  # finite, in range
    y = torch.addcmul(mean, z, std)
    totals = torch.exp(y[:, :2])
    n_points = torch.round(totals[:, 0]).clamp_min(1.0).to(torch.int64)
    e_vis = totals[:, 1] * incident_energy_gev.to(y.dtype) * 1000.0  # MEV_PER_GEV: TorchScript reads no globals
    # a row whose fractions are all clipped to 0 falls back to the mean profile (the tiny term)
    point_frac = torch.addcmul(fallback_frac, y[:, 4 : 4 + n_layers].clamp_min(0.0).square(), point_frac_scale)
    point_frac = point_frac / point_frac.sum(dim=1, keepdim=True)
    points_per_layer = largest_remainder_round(point_frac, n_points)
    # no energy in a layer without points; some energy in every layer with points
    energy_frac = torch.addcmul(fallback_frac, y[:, 4 + n_layers :].clamp_min(0.0).square(), energy_frac_scale)
    energy_frac = energy_frac * (points_per_layer > 0)
    energy_per_layer = energy_frac * (e_vis.unsqueeze(1) / energy_frac.sum(dim=1, keepdim=True))
    return points_per_layer, energy_per_layer, y[:, 2:4]


@functools.cache
def _scripted_decode() -> Callable[..., tuple[Tensor, Tensor, Tensor]]:
    """:func:`decode_statistics` compiled by TorchScript, once per process: at batch 1 its 25
    operations cost a third less than in Python."""
    return torch.jit.script(decode_statistics)


class FeaturePreprocessing(nn.Module):
    """Forward (statistics -> standardised model space) and inverse transform; see the module doc.

    Args:
        n_layers: number of detector layers L.
        n_extra_conditions: K, extra condition columns after log E_inc.
    """

    def __init__(self, n_layers: int, n_extra_conditions: int = 0) -> None:
        super().__init__()
        self.n_layers = n_layers
        self.names, self.kinds = _layout(n_layers)
        dim, cond = len(self.names), 1 + n_extra_conditions
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.register_buffer("lo", torch.full((dim,), -10.0))  # clamp of standardised samples
        self.register_buffer("hi", torch.full((dim,), 10.0))
        self.register_buffer("condition_mean", torch.zeros(cond))
        self.register_buffer("condition_std", torch.ones(cond))
        self.register_buffer("energy_range_gev", torch.tensor([0.0, float("inf")]))
        # per-layer calibration of the sampled fractions (flows.calibration; 1 = none)
        self.register_buffer("point_frac_scale", torch.ones(n_layers))
        self.register_buffer("energy_frac_scale", torch.ones(n_layers))
        self._update_fallback()

    @property
    def dim(self) -> int:
        return len(self.names)

    @property
    def condition_dim(self) -> int:
        return self.condition_mean.numel()

    # -- fitting ----------------------------------------------------------------------------------

    @classmethod
    def fit(cls, features: ShowerFeatures, *, range_margin: float = 1.0) -> FeaturePreprocessing:
        """Fit the standardisation on training features; ``range_margin`` widens the clamp (in std)."""
        pre = cls(features.n_layers, features.conditions.shape[1])
        t = pre.tensors_from(features, dtype=torch.float64)
        raw = pre._forward_kinds(*t[:4])
        std = raw.std(dim=0).clamp_min(_MIN_STD)
        mean = raw.mean(dim=0)
        z = (raw - mean) / std
        cond_raw = pre._condition_raw(t[3], t[4])
        pre.mean.copy_(mean)
        pre.std.copy_(std)
        pre.lo.copy_(z.min(dim=0).values - range_margin)
        pre.hi.copy_(z.max(dim=0).values + range_margin)
        pre.condition_mean.copy_(cond_raw.mean(dim=0))
        pre.condition_std.copy_(cond_raw.std(dim=0).nan_to_num(1.0).clamp_min(_MIN_STD))
        e = features.incident_energy_gev
        pre.energy_range_gev.copy_(torch.tensor([float(e.min()), float(e.max())]))
        pre._update_fallback()
        return pre

    def tensors_from(self, features: ShowerFeatures, *, dtype: torch.dtype = torch.float32) -> tuple[Tensor, ...]:
        """(points_per_layer, energy_per_layer_mev, cog_mm, incident_energy_gev, conditions) tensors."""
        return tuple(
            torch.as_tensor(np.asarray(a), dtype=dtype, device=self.mean.device)
            for a in (
                features.points_per_layer,
                features.energy_per_layer_mev,
                features.cog_mm,
                features.incident_energy_gev,
                features.conditions,
            )
        )

    # -- forward ----------------------------------------------------------------------------------

    def _forward_kinds(
        self,
        points_per_layer: Tensor,
        energy_per_layer_mev: Tensor,
        cog_mm: Tensor,
        incident_energy_gev: Tensor,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        n = points_per_layer.sum(dim=1, keepdim=True).clamp_min(1.0)
        e_vis = energy_per_layer_mev.sum(dim=1, keepdim=True)
        tiny = torch.finfo(e_vis.dtype).tiny
        point_frac = points_per_layer / n
        energy_frac = energy_per_layer_mev / e_vis.clamp_min(tiny)
        if generator is not None:
            # dequantise: counts n_l + U(-1/2, 1/2), and an empty layer's energy fraction spread
            # over (-1/2N, 0]; the inverse maps every value <= 0 back to an empty layer
            u = torch.rand(point_frac.shape, generator=generator).to(point_frac) - 0.5
            point_frac = point_frac + u / n
            v = torch.rand(point_frac.shape, generator=generator).to(point_frac) * 0.5
            energy_frac = energy_frac - (points_per_layer == 0) * v / n
        return torch.cat(
            [
                torch.log(n),
                torch.log(e_vis.clamp_min(tiny) / (incident_energy_gev.unsqueeze(1) * MEV_PER_GEV)),
                cog_mm,
                _signed_sqrt(point_frac),
                _signed_sqrt(energy_frac),
            ],
            dim=1,
        )

    def encode(
        self,
        points_per_layer: Tensor,
        energy_per_layer_mev: Tensor,
        cog_mm: Tensor,
        incident_energy_gev: Tensor,
        *,
        dequantise: torch.Generator | None = None,
    ) -> Tensor:
        """(B, D) standardised model-space targets of showers with the given statistics.

        ``dequantise`` (training only): a generator for the dequantisation noise of the layer
        fractions, which turns the integer counts and the spike of empty layers into a smooth density.
        """
        raw = self._forward_kinds(
            points_per_layer.to(self.mean.dtype),
            energy_per_layer_mev.to(self.mean.dtype),
            cog_mm.to(self.mean.dtype),
            incident_energy_gev.to(self.mean.dtype),
            dequantise,
        )
        return (raw - self.mean) / self.std

    def _condition_raw(self, incident_energy_gev: Tensor, extra: Tensor | None) -> Tensor:
        log_e = torch.log(incident_energy_gev).unsqueeze(1)
        if extra is None or extra.shape[-1] == 0:
            return log_e
        return torch.cat([log_e, extra.to(log_e.dtype)], dim=1)

    def encode_condition(self, incident_energy_gev: Tensor, extra_conditions: Tensor | None = None) -> Tensor:
        """(B, 1 + K) standardised condition: log E_inc and the extra conditions."""
        raw = self._condition_raw(incident_energy_gev.to(self.mean.dtype), extra_conditions)
        if raw.shape[1] != self.condition_dim:
            msg = (
                f"extra_conditions has {raw.shape[1] - 1} columns but the flow was trained with "
                f"{self.condition_dim - 1}"
            )
            raise ValueError(msg)
        return (raw - self.condition_mean) / self.condition_std

    # -- inverse ----------------------------------------------------------------------------------

    def decode(self, z: Tensor, incident_energy_gev: Tensor) -> dict[str, Tensor]:
        """Shower statistics from (B, D) standardised samples; the invariants hold exactly.

        Returns:
            dict with ``n_points`` (B,) int64, ``visible_energy_mev`` (B,), ``points_per_layer``
            (B, L) int64, ``energy_per_layer_mev`` (B, L) and ``cog_mm`` (B, 2).
        """
        points_per_layer, energy_per_layer, cog = _scripted_decode()(
            z,
            incident_energy_gev,
            self.mean,
            self.std,
            self.lo,
            self.hi,
            self.fallback_frac,
            self.point_frac_scale,
            self.energy_frac_scale,
            self.n_layers,
        )
        return {
            "n_points": points_per_layer.sum(dim=1),
            "visible_energy_mev": energy_per_layer.sum(dim=1),
            "points_per_layer": points_per_layer,
            "energy_per_layer_mev": energy_per_layer,
            "cog_mm": cog,
        }

    def _update_fallback(self) -> None:
        """(L,) a negligible (1e-9 of the sum) profile shaped like the mean point fractions."""
        self.fallback_frac = self.mean[4 : 4 + self.n_layers].clamp_min(1e-3).square() * _FALLBACK_WEIGHT

    def _apply(self, fn, recurse=True):  # keep the derived tensor on the buffers' device
        out = super()._apply(fn, recurse)
        self._update_fallback()
        return out

    # -- state ------------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Plain dict (tensors, ints, strings) for a ``weights_only`` checkpoint."""
        state: dict[str, Any] = {"n_layers": self.n_layers, "names": list(self.names), "kinds": list(self.kinds)}
        state.update({k: v.detach().cpu().clone() for k, v in self.state_dict().items()})
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FeaturePreprocessing:
        """Inverse of :meth:`to_state`; rejects a layout this code cannot invert."""
        pre = cls(int(state["n_layers"]), int(state["condition_mean"].numel()) - 1)
        if list(state["kinds"]) != pre.kinds or list(state["names"]) != pre.names:
            msg = f"unsupported feature layout {list(state['names'])[:6]}... (kinds {sorted(set(state['kinds']))})"
            raise ValueError(msg)
        defaults = pre.state_dict()  # calibration scales are optional (1 = none)
        pre.load_state_dict({k: state.get(k, defaults[k]) if k.endswith("_scale") else state[k] for k in defaults})
        pre._update_fallback()
        return pre

    def column_names(self) -> Sequence[str]:
        return list(self.names)
