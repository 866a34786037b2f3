"""ONNX export (optional extra ``caloclouds[onnx]``): the parts run in onnxruntime as in torch.

Skipped when onnx, onnxruntime or onnxscript are not installed. The export itself takes about
half a minute of CPU time, so it is made once per module.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from caloclouds.cli import main  # noqa: E402
from caloclouds.export.onnx import _session, onnx_ddml_call  # noqa: E402
from caloclouds.export.pipeline import ScriptShowerPipeline  # noqa: E402

N_LAYERS = 30


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("onnx")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["export", "--format", "onnx", "-o", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    return out


def test_flow_part_matches_torch(onnx_dir, default_bundle):
    pipeline = ScriptShowerPipeline(default_bundle)
    sess = _session(onnx_dir / "shower_flow.onnx")
    energy = torch.tensor([12.0, 47.0, 88.0, 60.0, 20.0])
    noise = torch.randn(5, pipeline.flow.dim, generator=torch.Generator().manual_seed(3))
    per_layer, e_layer = sess.run(None, {"incident_energy_gev": energy.numpy(), "noise": noise.numpy()})
    with torch.no_grad():
        ref_n, ref_e = pipeline.flow(energy, noise)
    assert np.array_equal(per_layer, ref_n.numpy())
    np.testing.assert_allclose(e_layer, ref_e.numpy(), rtol=1e-4, atol=1e-3)


def test_point_part_matches_torch_for_any_n(onnx_dir, default_bundle):
    from caloclouds.export.onnx import _PointGraph

    graph = _PointGraph(ScriptShowerPipeline(default_bundle).points)
    sess = _session(onnx_dir / "point_model.onnx")
    for n in (3, 517, 4100):
        noise = torch.randn(n, 4, generator=torch.Generator().manual_seed(n))
        args = (noise, torch.tensor([33.0]), torch.tensor([n]))
        got = sess.run(
            None, {"noise": noise.numpy(), "incident_energy_gev": args[1].numpy(), "n_points": args[2].numpy()}
        )[0]
        with torch.no_grad():
            np.testing.assert_allclose(got, graph(*args).numpy(), rtol=1e-4, atol=1e-4)


def test_whole_pipeline_runs_in_onnxruntime_with_the_ddml_layout(onnx_dir, default_bundle):
    import onnxruntime

    from caloclouds.export.torchscript import decode_output

    onnxruntime.set_seed(4)  # seeds the random ops of sessions created afterwards
    sess = _session(onnx_dir / "caloclouds_ddml.onnx")
    assert [i.name for i in sess.get_inputs()] == ["energy_gev", "theta_deg", "phi_deg"]
    first = onnx_ddml_call(sess, 50.0)
    assert not np.array_equal(onnx_ddml_call(sess, 50.0), first)  # each call draws a new shower
    onnxruntime.set_seed(4)
    assert np.array_equal(onnx_ddml_call(_session(onnx_dir / "caloclouds_ddml.onnx"), 50.0), first)
    counts, points = decode_output(first, N_LAYERS)
    assert counts.sum() == len(points) > 500 and np.all(points[:, 3] > 0)


@pytest.mark.parametrize(("energy_gev", "geant4_fraction"), [(10.0, 0.03008), (50.0, 0.02801), (90.0, 0.02725)])
def test_onnx_showers_have_the_geant4_sampling_fraction(onnx_dir, energy_gev, geant4_fraction):
    from caloclouds.export.onnx import onnx_sampling_fractions

    fraction = onnx_sampling_fractions(
        _session(onnx_dir / "caloclouds_ddml.onnx"), N_LAYERS, energies_gev=(energy_gev,), n=60
    )[energy_gev]
    assert abs(fraction / geant4_fraction - 1) < 0.03  # g4_photons_val_fixed.h5, 200 showers each


def test_metadata_lists_what_onnx_cannot_express(onnx_dir):
    meta = json.loads((onnx_dir / "metadata.json").read_text())
    assert meta["onnx"]["files"] == ["caloclouds_ddml.onnx", "point_model.onnx", "shower_flow.onnx"]
    notes = " ".join(meta["onnx"]["differences_from_torchscript"])
    assert "input checks" in notes and "set_seed" in notes and "stable sort" in notes
    assert meta["n_layers"] == N_LAYERS
