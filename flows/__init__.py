"""The Shower Flow: a conditional normalising flow (pyro) for the global statistics of a shower.

Given the incident energy it draws the number of points N, the visible energy E_vis, the points
and energy of every layer (n_l, E_l) and the energy-weighted centre of gravity. The diffusion
model then only places points, and calibration forces them onto these values.

>>> flow = load_shower_flow("runs/flow")                      # doctest: +SKIP
>>> s = flow.sample(torch.tensor([10.0, 50.0]), generator=torch.Generator().manual_seed(0))  # doctest: +SKIP
>>> s.points_per_layer.sum(1) == s.n_points                     # doctest: +SKIP

This package imports only the data layer (``caloclouds.showers``, ``caloclouds.io``,
``caloclouds.config``, ``caloclouds.errors``).
"""

from __future__ import annotations

from flows.calibration import calibrate_layer_profile
from flows.checkpoint import default_flow_path, load_shower_flow
from flows.features import ShowerFeatures, compute_features, file_features
from flows.preprocessing import FeaturePreprocessing, largest_remainder_round
from flows.sampling import EnergyRangeWarning, FlowSample, ShowerFlow
from flows.quality import FlowCheck, check_shower_flow
from flows.shower_flow import ShowerFlowModel
from flows.training import train_shower_flow

__all__ = [
    "EnergyRangeWarning",
    "FeaturePreprocessing",
    "FlowCheck",
    "FlowSample",
    "ShowerFeatures",
    "ShowerFlow",
    "ShowerFlowModel",
    "calibrate_layer_profile",
    "check_shower_flow",
    "compute_features",
    "default_flow_path",
    "file_features",
    "largest_remainder_round",
    "load_shower_flow",
    "train_shower_flow",
]
