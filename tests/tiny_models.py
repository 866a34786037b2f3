"""Tiny model configurations for tests that train real models on one core in seconds."""

from __future__ import annotations

import dataclasses

from caloclouds.config import FlowConfig, RunConfig

# a Shower Flow small enough to train a few hundred steps in seconds (each test sets its batch and steps)
TINY_FLOW = FlowConfig(
    n_blocks=1,
    couplings_per_block=2,
    coupling_hidden=(32,),
    spline_hidden=(8,),
    spline_bins=4,
    learning_rate=3e-3,
)


def tiny_run_config(base: RunConfig) -> RunConfig:
    """``base`` (its detector) with a tiny flow, PointWise Net and distillation for tests on one core."""
    return dataclasses.replace(
        base,
        flow=dataclasses.replace(TINY_FLOW, batch_size=32, steps=60, eval_every=30),
        diffusion=dataclasses.replace(
            base.diffusion,
            hidden=(16, 32, 16),
            fourier_features=16,
            time_features=16,
            batch_size=4,
            checkpoint_every=1000,
        ),
        distillation=dataclasses.replace(base.distillation, batch_size=4, checkpoint_every=1000, num_steps=8),
    )


def tiny_direction_run_config(base: RunConfig) -> RunConfig:
    """:func:`tiny_run_config` of a direction-aware model (issue 25): a per-layer PointWise Net
    conditioned on tan(theta) (``diffusion.direction``) and a Shower Flow conditioned on theta_deg;
    core sharing on (3 mm, 1 mm, as the shipped bundle) so that the calibration's every step runs."""
    config = tiny_run_config(base)
    return dataclasses.replace(
        config,
        flow=dataclasses.replace(config.flow, condition_names=("theta_deg",)),
        diffusion=dataclasses.replace(config.diffusion, per_layer=True, direction=True),
        generation=dataclasses.replace(config.generation, cog="flow", core_radius_mm=3.0, core_spread_mm=1.0),
    )
