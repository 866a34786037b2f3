"""The point-model stage of the export: a separate TorchScript module per kind of PointWise Net.

A point stage turns one shower's per-layer targets into uncalibrated points, grouped by layer.
Every stage has the same call (so the pipeline does not know which model it holds)::

    forward(points_per_layer: Tensor,            # (L,) int64, points to draw in each layer
            condition_points_per_layer: Tensor,  # (L,) int64, the flow's n_l before the N calibration
            energy_per_layer_mev: Tensor,        # (L,) float32, the Shower Flow's E_l
            incident_energy_gev: Tensor,         # (1,) float32
            tan_theta: Tensor | None = None)     # (1,) float32 tan θ of a direction-aware model, else unused
        -> Tensor                           # (P, 4) x_mm, y_mm, layer, e_MeV; P = sum(points_per_layer),
                                            #   grouped by ascending layer, energies not yet calibrated

:class:`DepthPointStage` wraps today's depth-based consistency model (``PointModel.per_layer``
False): it draws P points with a continuous depth and gives layer l to the n_l shallowest points,
as ``caloclouds.generation.calibration.assign_layers_by_depth`` does. :class:`PerLayerPointStage`
wraps a per-layer model (``PointModel.sample_layers``): one network row per layer with points,
conditioned on the shower, ln n_l, ln(E_l / n_l) and the one-hot layer, so the layers are exact;
a direction-aware per-layer model (``diffusion.direction``, issue 25) also conditions each row on
tan θ and draws the points in the frame of the inclined axis (:mod:`caloclouds.direction`; the
pipeline puts them into the detector frame). :func:`build_point_stage` chooses between them.

The network is evaluated as ``PointWiseNet`` does for one shower: each ConcatSquash layer's gate
and bias are folded into its weights. The noise-level context of every sampling step is a
constant of the export and is computed once here, with the model's own modules.

References:
    Song, Dhariwal, Chen, Sutskever, "Consistency Models" (2023), Algorithm 1 (multistep sampling).
    Karras et al., "Elucidating the Design Space of Diffusion-Based Generative Models" (2022), Table 1.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["MAX_ACTIVATION_BYTES", "DepthPointStage", "PerLayerPointStage", "build_point_stage", "chunk_points_for"]

# The network runs a shower's points in chunks whose largest activation (points x width float32)
# stays within this many bytes, below glibc's smallest mmap threshold (128 KiB): no activation is
# mmapped, and what a chunk frees is reused by the next chunk and the next call instead of being
# handed back to the system (munmap, or a trim of the heap) and faulted in again. So a plain
# libtorch client (DDML's TorchInference), with malloc's default settings, runs as fast as with
# raised thresholds (docs/benchmarks.md). 192 points of the widest layer (128) here: before, 4096
# points (2 MiB) cost about 1000 page faults and 1.8x the time per call at 50 GeV.
MAX_ACTIVATION_BYTES = 96 * 1024


def chunk_points_for(widths: list[int], max_activation_bytes: int = MAX_ACTIVATION_BYTES) -> int:
    """Points per chunk such that no float32 activation (points x the widest layer) exceeds ``max_activation_bytes``."""
    return max(1, max_activation_bytes // (4 * max(widths)))


class _ConcatSquashStack(nn.Module):
    """The ConcatSquash layers of a PointWise Net, run over the points in chunks of ``chunk_points``.

    Each layer is ``y = (W x + b) * gate + shift`` with the gate and shift of the point's row (one
    shower, or one layer of a per-layer model), computed as ``PointWiseNet`` does without autograd.
    The chunks keep every activation small (see ``MAX_ACTIVATION_BYTES``), and each layer writes
    into one of its own fresh buffers (``addcmul_``, ``leaky_relu_``): a layer of a chunk allocates
    three buffers (one for a single row, whose gate and shift are folded into the weights) instead of
    five. Every point's numbers are those of the unchunked network, bit for bit.
    """

    def __init__(self, layers: nn.ModuleList, leaky_slope: float, chunk_points: int) -> None:
        super().__init__()
        self.layers = copy.deepcopy(layers)
        self.leaky_slope = float(leaky_slope)
        self.n_layers = len(layers)
        self.chunk_points = int(chunk_points)
        self.chunked = True  # off in the ONNX graph, where the number of points is not known
        # every layer's gate and bias weights side by side: two products per step for all rows
        # (as PointWiseNet without autograd) instead of two per layer
        self.widths: list[int] = [int(layer.layer.out_features) for layer in layers]
        with torch.no_grad():
            self.register_buffer("gate_weight", torch.cat([layer.gate.weight for layer in layers]).clone())
            self.register_buffer("gate_bias", torch.cat([layer.gate.bias for layer in layers]).clone())
            self.register_buffer("shift_weight", torch.cat([layer.bias.weight for layer in layers]).clone())

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        """``x`` (P, F) points of one shower, ``context`` (1, C) its context -> (P, F)."""
        return self.rows(x, context, None)

    def rows(self, x: Tensor, context: Tensor, index: Tensor | None) -> Tensor:
        """``x`` (P, F) points of R rows, ``context`` (R, C), ``index`` (P,) row of each point, or None
        for one row -> (P, F)."""
        gates = torch.sigmoid(nn.functional.linear(context, self.gate_weight, self.gate_bias)).split(self.widths, 1)
        shifts = nn.functional.linear(context, self.shift_weight).split(self.widths, 1)
        weights: list[Tensor] = []
        biases: list[Tensor] = []
        if index is None:  # one row: (W x + b) g + c = (g W) x + (g b + c), one product per layer (as PointWiseNet)
            i = 0
            for layer in self.layers:
                weights.append(layer.layer.weight.t() * gates[i][0])
                biases.append(layer.layer.bias * gates[i][0] + shifts[i][0])
                i += 1
        if not self.chunked or x.shape[0] <= self.chunk_points:
            return self._layers(x, gates, shifts, index, weights, biases)
        parts: list[Tensor] = []
        for lo in range(0, x.shape[0], self.chunk_points):
            hi = lo + self.chunk_points
            part_index = None if index is None else index[lo:hi]
            parts.append(self._layers(x[lo:hi], gates, shifts, part_index, weights, biases))
        return torch.cat(parts)

    def _layers(
        self,
        x: Tensor,
        gates: list[Tensor],
        shifts: list[Tensor],
        index: Tensor | None,
        weights: list[Tensor],
        biases: list[Tensor],
    ) -> Tensor:
        """The layers on one chunk: with the folded ``weights`` and ``biases`` of one row (``index``
        None), else with each point's row's gate and shift gathered."""
        h = x
        i = 0
        for layer in self.layers:
            if index is None:
                h = torch.addmm(biases[i], h, weights[i])
            else:
                h = shifts[i].index_select(0, index).addcmul_(layer.layer(h), gates[i].index_select(0, index))
            if i < self.n_layers - 1:
                h = nn.functional.leaky_relu_(h, self.leaky_slope)
            i += 1
        return h


class _ConsistencyStage(nn.Module):
    """What both point stages share: the consistency model's constants, network and inverse transform."""

    def __init__(self, point_model: Any, *, steps: int, per_layer: bool) -> None:
        super().__init__()
        from caloclouds.diffusion import pointwise
        from caloclouds.diffusion.preprocessing import DEPTH_EPS, MIN_ENERGY_MEV
        from caloclouds.diffusion.sampling import consistency_sigmas, karras_sigmas

        if point_model.kind != "cm":
            raise ValueError(f"the export runs a consistency model (cm.pt); got a {point_model.kind!r} model")
        if bool(getattr(point_model.normaliser, "per_layer", False)) != per_layer:
            raise ValueError(
                f"a {'per-layer' if not per_layer else 'depth-based'} PointWise Net needs the other point stage"
            )
        if point_model.config.diffusion.extra_conditions:
            raise ValueError("the export supports PointWise Nets without extra conditions only")
        cfg = point_model.config
        denoiser = point_model.denoiser.cpu()
        inner = denoiser.inner
        levels = karras_sigmas(
            cfg.distillation.num_steps,
            cfg.diffusion.sigma_min,
            cfg.diffusion.sigma_max,
            cfg.diffusion.rho,
            append_zero=False,
        )
        sigmas = consistency_sigmas(steps, levels)
        self.sigma_min = float(cfg.diffusion.sigma_min)
        # per step: the network's noise-level context and the preconditioning scalings (constants)
        with torch.no_grad():
            t_ctx, scalings, renoise = [], [], []
            for sigma in sigmas:
                c_noise = denoiser.c_noise(sigma.reshape(1))
                t_ctx.append(nn.functional.leaky_relu(inner.time_embed(inner.fourier(c_noise)), pointwise.LEAKY_SLOPE))
                scalings.append(torch.stack(list(denoiser.scalings(sigma))))
                renoise.append((sigma**2 - self.sigma_min**2).clamp_min(0).sqrt())
        self.register_buffer("time_context", torch.cat(t_ctx))  # (S, T)
        self.register_buffer("scalings", torch.stack(scalings))  # (S, 3): c_skip, c_out, c_in
        self.register_buffer("sigmas", sigmas.clone())  # (S,)
        self.register_buffer("renoise", torch.stack(renoise))  # (S,)
        widths = [int(layer.layer.out_features) for layer in inner.layers]
        self.net = _ConcatSquashStack(inner.layers, pointwise.LEAKY_SLOPE, chunk_points_for(widths))
        norm = point_model.normaliser
        s = norm.sigma_data
        self.n_layers = int(norm.n_layers)
        self.max_depth = float(norm.n_layers - DEPTH_EPS)
        self.xy_scale = float(norm.xy_std / s)
        self.xy_scale_mm = float(norm.xy_scale_mm)
        self.depth_scale, self.depth_mean = float(norm.depth_std / s), float(norm.depth_mean)
        self.log_e_scale, self.log_e_mean = float(norm.log_e_std / s), float(norm.log_e_mean)
        self.max_log_e = float(math.log(3e38))
        self.min_energy_mev = float(MIN_ENERGY_MEV)
        self.energy_mean_gev, self.energy_std_gev = float(norm.energy_mean_gev), float(norm.energy_std_gev)
        self.n_points_mean, self.n_points_std = float(norm.n_points_mean), float(norm.n_points_std)

    def physical_xy_e(self, a: Tensor, b: Tensor, le: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``PointNormaliser.inverse`` of x, y and e."""
        px = torch.sinh(a * self.xy_scale) * self.xy_scale_mm
        py = torch.sinh(b * self.xy_scale) * self.xy_scale_mm
        log_e = (le * self.log_e_scale + self.log_e_mean).clamp(max=self.max_log_e)
        return px, py, torch.exp(log_e).clamp_min(self.min_energy_mev)


class DepthPointStage(_ConsistencyStage):
    """Depth-based consistency model for one shower, with layer assignment by depth rank.

    Args:
        point_model: a loaded ``caloclouds.diffusion.PointModel`` of kind ``"cm"``.
        steps: consistency steps (1 = the shipped one-step sampler).
    """

    def __init__(self, point_model: Any, *, steps: int = 1) -> None:
        super().__init__(point_model, steps=steps, per_layer=False)
        self.stable_sort = True

    def denoise(self, x: Tensor, step: int, cond: Tensor) -> Tensor:
        """The consistency function f(x, sigma_step) of one shower (``EDMDenoiser.forward``)."""
        c = self.scalings[step]
        context = torch.cat([self.time_context[step : step + 1], cond], dim=-1)
        f = self.net(x * c[2], context)
        return c[0] * x + c[1] * f

    def sample_depth(self, n_points: int, incident_energy_gev: Tensor) -> Tensor:
        """(n_points, 4) physical points ``x_mm, y_mm, depth, e_MeV`` (``PointModel.sample`` for B = 1)."""
        e = (incident_energy_gev.reshape(1) - self.energy_mean_gev) / self.energy_std_gev
        n = (torch.full([1], float(n_points)) - self.n_points_mean) / self.n_points_std
        cond = torch.stack([e, n], dim=-1)
        x = torch.randn([n_points, 4]) * self.sigmas[0]
        x = self.denoise(x, 0, cond)
        for step in range(1, self.sigmas.shape[0]):
            if float(self.sigmas[step]) <= self.sigma_min:
                continue
            z = torch.randn(x.shape)
            x = self.denoise(x + z * self.renoise[step], step, cond)
        depth = (x[:, 2] * self.depth_scale + self.depth_mean).clamp(0.0, self.max_depth)
        px, py, pe = self.physical_xy_e(x[:, 0], x[:, 1], x[:, 3])
        return torch.stack([px, py, depth, pe], dim=-1)

    def forward(
        self,
        points_per_layer: Tensor,
        condition_points_per_layer: Tensor,
        energy_per_layer_mev: Tensor,
        incident_energy_gev: Tensor,
        tan_theta: Tensor | None = None,
    ) -> Tensor:
        """Points grouped by ascending layer; layer l gets the n_l shallowest (see the module doc).
        ``tan_theta`` is unused: a depth-based model knows no direction."""
        n_points = int(points_per_layer.sum())
        raw = self.sample_depth(n_points, incident_energy_gev)
        if self.stable_sort:  # ties (depths clamped to 0 or to the last layer) keep their order
            order = torch.argsort(raw[:, 2], stable=True)
        else:  # ONNX: TopK, which has no stable order of ties
            order = torch.topk(raw[:, 2], raw.shape[0], largest=False, sorted=True).indices
        layer = torch.repeat_interleave(torch.arange(self.n_layers), points_per_layer)
        points = raw.index_select(0, order)
        return torch.cat([points[:, :2], layer.to(torch.float32).unsqueeze(1), points[:, 3:]], dim=1)


class PerLayerPointStage(_ConsistencyStage):
    """Per-layer consistency model for one shower (``PointModel.sample_layers`` for B = 1).

    One network row per layer with points, conditioned on the shower (incident energy and the
    flow's N), ln n_l, ln(E_l / n_l) and the one-hot layer; each row's points are drawn given
    their layer, so the points come out grouped by ascending layer.

    Args:
        point_model: a loaded per-layer ``PointModel`` of kind ``"cm"``.
        steps: consistency steps.
    """

    def __init__(self, point_model: Any, *, steps: int = 1) -> None:
        super().__init__(point_model, steps=steps, per_layer=True)
        norm = point_model.normaliser
        self.direction = bool(getattr(norm, "direction", False))  # rows also conditioned on tan θ
        self.log_n_layer_mean, self.log_n_layer_std = float(norm.log_n_layer_mean), float(norm.log_n_layer_std)
        self.log_e_point_mean, self.log_e_point_std = float(norm.log_e_point_mean), float(norm.log_e_point_std)

    def row_conditions(
        self,
        incident_energy_gev: Tensor,
        n_points: Tensor,
        layer: Tensor,
        n_layer: Tensor,
        e_layer_mev: Tensor,
        tan_theta: Tensor | None = None,
    ) -> Tensor:
        """``PointNormaliser.layer_conditions``: (R, 4 + L) features of R rows (all arguments (R,)),
        and for a direction-aware model a last column tan θ (None: 0, normal incidence)."""
        e = (incident_energy_gev - self.energy_mean_gev) / self.energy_std_gev
        n = (n_points.to(torch.float32) - self.n_points_mean) / self.n_points_std
        n_l = n_layer.to(torch.float32)
        log_n = (n_l.log() - self.log_n_layer_mean) / self.log_n_layer_std
        mean_e = (e_layer_mev.to(torch.float32) / n_l).clamp_min(self.min_energy_mev)
        log_e = (mean_e.log() - self.log_e_point_mean) / self.log_e_point_std
        one_hot = nn.functional.one_hot(layer, self.n_layers).to(torch.float32)
        columns = [torch.stack([e, n], dim=-1), log_n[:, None], log_e[:, None], one_hot]
        if self.direction:
            tan = torch.zeros_like(log_n) if tan_theta is None else tan_theta.to(torch.float32).reshape(-1)
            columns.append(tan[:, None])
        return torch.cat(columns, dim=-1)

    def denoise_rows(self, x: Tensor, step: int, features: Tensor, index: Tensor) -> Tensor:
        """The consistency function f(x, sigma_step) of R rows (``EDMDenoiser.forward``)."""
        c = self.scalings[step]
        t = self.time_context[step : step + 1].expand(features.shape[0], self.time_context.shape[1])
        f = self.net.rows(x * c[2], torch.cat([t, features], dim=-1), index)
        return c[0] * x + c[1] * f

    def forward(
        self,
        points_per_layer: Tensor,
        condition_points_per_layer: Tensor,
        energy_per_layer_mev: Tensor,
        incident_energy_gev: Tensor,
        tan_theta: Tensor | None = None,
    ) -> Tensor:
        """Points grouped by ascending layer, drawn layer by layer (see the class doc); a
        direction-aware model's in the frame of the inclined axis at ``tan_theta`` (1,)."""
        features = self.layer_features(condition_points_per_layer, energy_per_layer_mev, incident_energy_gev, tan_theta)
        index = torch.repeat_interleave(torch.arange(self.n_layers), points_per_layer)
        return self.from_noise(torch.randn([index.shape[0], 3]), features, index)

    def layer_features(
        self,
        condition_points_per_layer: Tensor,
        energy_per_layer_mev: Tensor,
        incident_energy_gev: Tensor,
        tan_theta: Tensor | None = None,
    ) -> Tensor:
        """(L, 4 + L [+ 1]) ``row_conditions`` of every layer, the empty ones included: the number of
        rows is then no data-dependent size (ONNX), and an empty layer's row gets no points."""
        n_rows = self.n_layers
        return self.row_conditions(
            incident_energy_gev.reshape(1).expand(n_rows),
            condition_points_per_layer.sum().expand(n_rows),
            torch.arange(n_rows),
            condition_points_per_layer.clamp_min(1),
            energy_per_layer_mev.clamp_min(0.0),
            None if tan_theta is None else tan_theta.reshape(1).expand(n_rows),
        )

    def from_noise(self, noise: Tensor, features: Tensor, index: Tensor) -> Tensor:
        """The points of unit-variance ``noise`` (P, 3) in rows ``index`` (P,) with ``row_conditions``
        ``features``: deterministic for one step (further steps draw their own noise)."""
        x = self.denoise_rows(noise * self.sigmas[0], 0, features, index)
        for step in range(1, self.sigmas.shape[0]):
            if float(self.sigmas[step]) <= self.sigma_min:
                continue
            x = self.denoise_rows(x + torch.randn(x.shape) * self.renoise[step], step, features, index)
        px, py, pe = self.physical_xy_e(x[:, 0], x[:, 1], x[:, 2])
        return torch.stack([px, py, index.to(torch.float32), pe], dim=-1)


def build_point_stage(point_model: Any, *, steps: int = 1) -> nn.Module:
    """The point stage for ``point_model``: :class:`PerLayerPointStage` or :class:`DepthPointStage`."""
    if getattr(point_model, "per_layer", False):
        return PerLayerPointStage(point_model, steps=steps)
    return DepthPointStage(point_model, steps=steps)
