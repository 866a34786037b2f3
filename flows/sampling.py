"""The public Shower Flow: preprocessing + conditional flow, sampled at given incident energies."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from caloclouds.config import FlowConfig
from caloclouds.errors import CaloCloudsError
from caloclouds.showers import THETA
from flows.features import ShowerFeatures
from flows.preprocessing import FeaturePreprocessing
from flows.script import TransformChain
from flows.shower_flow import ShowerFlowModel

__all__ = [
    "EnergyRangeError",
    "EnergyRangeWarning",
    "FlowSample",
    "ShowerFlow",
    "check_energy_range",
    "outside_training_range",
]


# The training energies are a finite sample of the generated range (10.01-89.97 GeV for 10-90 GeV),
# so energies within this fraction of the range width outside it are not extrapolation.
RANGE_TOLERANCE = 0.01


class EnergyRangeWarning(UserWarning):
    """Incident energies outside the range the flow was trained on (the flow extrapolates)."""


class EnergyRangeError(CaloCloudsError, ValueError):
    """Incident energies outside the range the flow was trained on, extrapolation not asked for."""


def outside_training_range(
    energy_min_gev: float, energy_max_gev: float, training_range_gev: tuple[float, float]
) -> bool:
    """Whether energies from ``energy_min_gev`` to ``energy_max_gev`` reach outside the training range
    (beyond :data:`RANGE_TOLERANCE` of its width, the spread of a finite training sample)."""
    lo, hi = (float(v) for v in training_range_gev)
    margin = RANGE_TOLERANCE * (hi - lo) if hi < float("inf") else 0.0
    return not (lo - margin <= energy_min_gev and energy_max_gev <= hi + margin)  # a NaN is outside too


def check_energy_range(
    incident_energy_gev: Tensor | Sequence[float], training_range_gev: tuple[float, float], *, allow_extrapolation: bool
) -> None:
    """The one rule for incident energies: finite and > 0, and inside the flow's training range
    (:func:`outside_training_range`) unless ``allow_extrapolation``, when energies outside it give one
    :class:`EnergyRangeWarning` (the flow extrapolates there).

    Raises:
        ValueError: an energy that is not finite or not > 0.
        EnergyRangeError: energies outside the training range without ``allow_extrapolation``.
    """
    if isinstance(incident_energy_gev, Tensor):
        energy = incident_energy_gev.reshape(-1)
    else:
        energy = torch.as_tensor(incident_energy_gev, dtype=torch.float64).reshape(-1)
    if not energy.shape[0]:
        return
    e_min, e_max = (float(v) for v in torch.aminmax(energy))  # one reduction and two floats on the fast path
    if not outside_training_range(e_min, e_max, training_range_gev):
        return
    if not bool((torch.isfinite(energy) & (energy > 0)).all()):
        bad = energy[~torch.isfinite(energy) | (energy <= 0)][0].item()
        raise ValueError(f"incident_energy_gev must be finite and > 0, got {bad}")
    lo, hi = training_range_gev
    if not allow_extrapolation:
        bad = e_max if outside_training_range(e_max, e_max, training_range_gev) else e_min
        raise EnergyRangeError(
            f"incident energy {bad:g} GeV is outside the model's training range {lo:.4g}-{hi:.4g} GeV; "
            "pass --allow-extrapolation (allow_extrapolation=True) to generate there anyway"
        )
    msg = (
        f"incident energies {e_min:.4g}-{e_max:.4g} GeV reach outside "
        f"the training range {lo:.4g}-{hi:.4g} GeV; the flow extrapolates there"
    )
    warnings.warn(msg, EnergyRangeWarning, stacklevel=2)


@dataclass
class FlowSample:
    """Per-shower statistics drawn by the Shower Flow (all tensors on the flow's device).

    Attributes:
        n_points: (B,) int64, equal to ``points_per_layer.sum(1)``.
        visible_energy_mev: (B,) float, equal to ``energy_per_layer_mev.sum(1)``.
        points_per_layer: (B, L) int64 >= 0.
        energy_per_layer_mev: (B, L) float >= 0 (0 in every layer without points).
        cog_mm: (B, 2) float, energy-weighted x and y.
    """

    n_points: Tensor
    visible_energy_mev: Tensor
    points_per_layer: Tensor
    energy_per_layer_mev: Tensor
    cog_mm: Tensor

    def __len__(self) -> int:
        return self.n_points.shape[0]


class ShowerFlow(nn.Module):
    """Shower Flow: draws N, E_vis, n_l, E_l and the CoG of showers given the incident energy.

    Args:
        preprocessing: the fitted feature transform.
        config: the flow's architecture (``FlowConfig``).
    """

    def __init__(self, preprocessing: FeaturePreprocessing, config: FlowConfig) -> None:
        super().__init__()
        self.config = config
        self.preprocessing = preprocessing
        self.model = ShowerFlowModel(preprocessing.dim, preprocessing.condition_dim, config)

    @property
    def device(self) -> torch.device:
        return self.preprocessing.mean.device

    @property
    def n_layers(self) -> int:
        return self.preprocessing.n_layers

    @property
    def energy_range_gev(self) -> tuple[float, float]:
        lo, hi = self.preprocessing.energy_range_gev.tolist()
        return lo, hi

    def _condition(
        self, incident_energy_gev: Tensor, extra_conditions: Tensor | None, device: torch.device, check_range: bool
    ) -> tuple[Tensor, Tensor]:
        energy = torch.as_tensor(incident_energy_gev, dtype=torch.float32, device=device).reshape(-1)
        if check_range:
            check_energy_range(energy, self.energy_range_gev, allow_extrapolation=True)
        extra = None
        if extra_conditions is not None:
            extra = torch.as_tensor(extra_conditions, dtype=torch.float32, device=device).reshape(energy.shape[0], -1)
        elif tuple(self.config.condition_names) == (THETA,):  # a direction-aware flow: normal incidence
            extra = torch.zeros(energy.shape[0], 1, device=device)
        return energy, self.preprocessing.encode_condition(energy, extra)

    def sample(
        self,
        incident_energy_gev: Tensor,
        *,
        extra_conditions: Tensor | None = None,
        generator: torch.Generator | None = None,
        check_range: bool = True,
    ) -> FlowSample:
        """Draw the statistics of one shower per incident energy.

        Args:
            incident_energy_gev: (B,) photon energies in GeV (> 0). Energies outside the training
                range give an :class:`EnergyRangeWarning` (:func:`check_energy_range`).
            extra_conditions: (B, K) extra conditions, if the flow was trained with K > 0; a flow
                conditioned on the direction alone (``theta_deg``) takes None as normal incidence.
            generator: the random source; the same generator state gives the same sample.
            check_range: False where the caller has checked the energies with
                :func:`check_energy_range` already (once for a whole run, not once per batch).

        Returns:
            A :class:`FlowSample` on the flow's device.
        """
        device = self.device
        with torch.inference_mode():  # fastest for batch 1
            energy, cond = self._condition(incident_energy_gev, extra_conditions, device, check_range)
            noise_device = generator.device if generator is not None else device
            noise = torch.randn(energy.shape[0], self.preprocessing.dim, generator=generator, device=noise_device)
            out = self.preprocessing.decode(self._sampling_chain()(noise.to(device), cond), energy)
        # plain tensors again, which callers may modify in place or use with autograd
        return FlowSample(**{k: v.clone() for k, v in out.items()})

    def warm_up(self) -> None:
        """Compile the sampling chain and run it twice (TorchScript optimises on its first calls), so that
        the first shower of a run costs what the others do. Draws with its own generator: the global
        random state and the caller's generators are untouched."""
        lo, hi = (float(v) for v in self.energy_range_gev)
        generator = torch.Generator(device=self.device).manual_seed(0)
        for _ in range(2):
            self.sample(torch.full((1,), 0.5 * (lo + hi)), generator=generator)

    def _sampling_chain(self) -> Any:
        """The transforms' sampling direction as TorchScript (flows/script.py): the same maths and the
        same parameter tensors as the pyro chain, without its per-call bookkeeping (one shower: 1.5
        against 4-10 ms on one thread). Compiled once (0.3 s), again if the parameters move."""
        first = self._first_parameter()
        key = (first.data_ptr(), str(first.device))
        if self.__dict__.get("_chain_key") != key:  # kept out of the module tree and the state dict
            self.__dict__["_chain"] = torch.jit.script(TransformChain(self.model))
            self.__dict__["_chain_key"] = key
        return self.__dict__["_chain"]

    def _first_parameter(self) -> Tensor:
        """``next(self.model.parameters())`` from the module that holds it, found once per model:
        walking the module tree costs ~10 us a call, a dictionary look-up 0.1 us. The look-up sees a
        parameter replaced or moved (``to``, ``load_state_dict(assign=True)``)."""
        found = self.__dict__.get("_first_parameter_at")
        if found is None or found[0] is not self.model:
            name = next(self.model.named_parameters())[0]
            owner, _, attr = name.rpartition(".")
            found = self.__dict__["_first_parameter_at"] = (self.model, self.model.get_submodule(owner), attr)
        return found[1]._parameters[found[2]]

    def log_prob(self, features: ShowerFeatures, *, dequantise: torch.Generator | None = None) -> Tensor:
        """(B,) log density of showers' statistics in the standardised space (the training loss).

        ``dequantise``: generator of the dequantisation noise used in training (see
        :meth:`FeaturePreprocessing.encode`); give one to compare with the training loss.
        """
        n_l, e_l, cog, energy, extra = self.preprocessing.tensors_from(features)
        x = self.preprocessing.encode(n_l, e_l, cog, energy, dequantise=dequantise)
        cond = self.preprocessing.encode_condition(energy, extra)
        return self.model(cond).log_prob(x)

    def extra_repr(self) -> str:
        n = sum(p.numel() for p in self.parameters())
        return f"n_layers={self.n_layers}, dim={self.preprocessing.dim}, parameters={n}"

    def describe(self) -> dict[str, Any]:
        """Short summary for printing."""
        return {
            "n_layers": self.n_layers,
            "dim": self.preprocessing.dim,
            "parameters": sum(p.numel() for p in self.parameters()),
            "energy_range_gev": self.energy_range_gev,
        }
