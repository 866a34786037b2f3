"""The point stages of the export against PointModel: depth-based (bundled) and per-layer (random weights)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from caloclouds.config import RunConfig
from caloclouds.diffusion import PointModel, PointNormaliser
from caloclouds.export.points import DepthPointStage, build_point_stage

N_LAYERS = 30


def _per_layer_model() -> PointModel:
    """A small per-layer consistency model with random weights (the per-layer PointWise Net's API)."""
    from caloclouds.diffusion.checkpoint import build_denoiser

    if not hasattr(PointModel, "sample_layers"):
        pytest.skip("this PointModel has no per-layer sampling")
    base = RunConfig()
    config = dataclasses.replace(
        base,
        diffusion=dataclasses.replace(
            base.diffusion, per_layer=True, hidden=(16, 32, 16), fourier_features=16, time_features=16
        ),
    )
    torch.manual_seed(0)
    denoiser = build_denoiser(config.diffusion, "cm", N_LAYERS)
    for p in denoiser.parameters():  # random, not zero: every weight enters the comparison
        torch.nn.init.normal_(p, std=0.3)
    normaliser = PointNormaliser(
        n_layers=N_LAYERS,
        subcell_pitch_mm=0.848,
        sigma_data=0.5,
        xy_scale_mm=4.0,
        xy_std=1.1,
        depth_mean=14.0,
        depth_std=6.0,
        log_e_mean=-1.0,
        log_e_std=1.2,
        energy_mean_gev=50.0,
        energy_std_gev=23.0,
        n_points_mean=2000.0,
        n_points_std=800.0,
        per_layer=True,
        log_n_layer_mean=3.5,
        log_n_layer_std=1.2,
        log_e_point_mean=-0.5,
        log_e_point_std=0.8,
    )
    return PointModel(denoiser, normaliser, config, kind="cm")


def test_build_point_stage_picks_the_stage_of_the_bundled_model(default_bundle):
    from caloclouds.export.points import PerLayerPointStage

    model = default_bundle.point_model("cm")
    assert isinstance(build_point_stage(model), PerLayerPointStage if model.per_layer else DepthPointStage)


@pytest.mark.parametrize("layout", ["one layer", "typical", "over one CPU chunk"])
def test_per_layer_stage_equals_sample_layers(layout):
    from caloclouds.export.points import PerLayerPointStage

    model = _per_layer_model()
    stage = torch.jit.script(build_point_stage(model))
    assert isinstance(stage, torch.jit.ScriptModule) and stage.original_name == PerLayerPointStage.__name__
    counts = torch.zeros(N_LAYERS, dtype=torch.int64)
    if layout == "one layer":
        counts[7] = 40
    else:
        scale = 1 if layout == "typical" else 4
        counts[2:25] = torch.arange(10, 240, 10)[:23] * scale
        counts[11] = 0  # an empty layer in the middle
    condition = (counts.double() * 1.2).round().long()
    energy_l = counts.double() * 0.8 + 1.0
    torch.manual_seed(5)
    ref, offsets = model.sample_layers(
        counts[None], energy_l[None], torch.tensor([42.0]), condition_points_per_layer=condition[None]
    )
    torch.manual_seed(5)
    ours = stage(counts, condition, energy_l.float(), torch.tensor([42.0]))
    assert int(offsets[-1]) == len(ours) == int(counts.sum())
    assert torch.equal(ours[:, 2], ref[:, 2])
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_depth_stage_refuses_a_per_layer_model():
    with pytest.raises(ValueError, match="needs the other point stage"):
        DepthPointStage(_per_layer_model())


def test_network_chunks_keep_activations_small_and_change_no_bit():
    """Issue 26: the export runs the network in chunks whose activations malloc keeps (C++ client at
    full speed with no malloc settings); every point's numbers are those of the unchunked network and,
    for one row, those of ``PointWiseNet`` for one shower."""
    from caloclouds.export.points import MAX_ACTIVATION_BYTES, chunk_points_for

    model = _per_layer_model()
    stage = build_point_stage(model)
    net = stage.net
    assert net.chunk_points == chunk_points_for(net.widths) > 1
    assert net.chunk_points * max(net.widths) * 4 <= MAX_ACTIVATION_BYTES < 128 * 1024
    assert (net.chunk_points + 1) * max(net.widths) * 4 > MAX_ACTIVATION_BYTES
    gen = torch.Generator().manual_seed(1)
    n_points = 5 * net.chunk_points + 17
    x = torch.randn(n_points, 3, generator=gen)
    context = torch.randn(N_LAYERS, net.gate_weight.shape[1], generator=gen)
    index = torch.sort(torch.randint(0, N_LAYERS, (n_points,), generator=gen)).values
    scripted = torch.jit.script(stage).net  # as in the export
    with torch.inference_mode():
        chunked_rows, chunked_one = scripted.rows(x, context, index), scripted(x, context[:1])
        scripted.chunked = False
        whole_rows, whole_one = scripted.rows(x, context, index), scripted(x, context[:1])
        inner = model.denoiser.inner
        modulation = [layer.modulation(context[:1]) for layer in inner.layers]
        reference_one = inner._layers(x, modulation, None)
    assert torch.equal(chunked_rows, whole_rows) and torch.equal(chunked_one, whole_one)
    assert torch.equal(chunked_one, reference_one)
