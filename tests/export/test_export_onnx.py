"""ONNX export (optional extra ``caloclouds[onnx]``): the parts run in onnxruntime as in torch.

Skipped when onnx, onnxruntime or onnxscript are not installed. The export of the shipped
(per-layer, calibrated) model takes about 50 s of CPU time, so it is made once per module.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

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
def onnx_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The shipped model exported to ONNX: (folder, what the export printed)."""
    out = tmp_path_factory.mktemp("onnx")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            assert main(["export", "--format", "onnx", "-o", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    return out, printed.getvalue()


@pytest.fixture(scope="module")
def onnx_dir(onnx_report: tuple[Path, str]) -> Path:
    return onnx_report[0]


def test_export_prints_sampling_fractions_with_their_uncertainty(onnx_report):
    """Issue 26: 20 showers without an uncertainty read as a 2-3 % deficit; now 200 with their error."""
    printed = onnx_report[1]
    found = re.findall(r"(\d+) GeV (\d\.\d{3}) ± (0\.\d{3}) %", printed)
    assert [e for e, _, _ in found] == ["10", "50", "90"], printed
    assert "standard error of 200 showers" in printed
    for _, mean, error in found:
        assert 2.5 < float(mean) < 3.2 and 0 < float(error) < 0.05


def test_flow_part_matches_torch(onnx_dir, default_bundle):
    pipeline = ScriptShowerPipeline(default_bundle)
    sess = _session(onnx_dir / "shower_flow.onnx")
    energy = torch.tensor([12.0, 47.0, 88.0, 60.0, 20.0])
    noise = torch.randn(5, pipeline.flow.dim, generator=torch.Generator().manual_seed(3))
    feed = {"incident_energy_gev": energy.numpy(), "noise": noise.numpy()}
    theta = None
    if "theta_deg" in [i.name for i in sess.get_inputs()]:  # the shipped flow is conditioned on theta
        theta = torch.tensor([[0.0], [10.0], [20.0], [30.0], [40.0]])
        feed["theta_deg"] = theta.numpy()
    per_layer, e_layer = sess.run(None, feed)
    with torch.no_grad():
        ref_n, ref_e = pipeline.flow(energy, noise, theta)
    assert np.array_equal(per_layer, ref_n.numpy())
    np.testing.assert_allclose(e_layer, ref_e.numpy(), rtol=1e-4, atol=1e-3)


def _drawn(pipeline, energy_gev: float, seed: int):
    from caloclouds.export.onnx import _drawn_shower

    return _drawn_shower(pipeline, energy_gev, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("energy_gev", "seed"), [(11.0, 1), (52.0, 2), (89.0, 3)])
def test_per_layer_point_part_matches_torch(onnx_dir, default_bundle, energy_gev, seed):
    from caloclouds.export.onnx import _LayerPointGraph

    pipeline = ScriptShowerPipeline(default_bundle)
    graph = _LayerPointGraph(pipeline.points)
    args = _drawn(pipeline, energy_gev, seed)["points"]
    sess = _session(onnx_dir / "point_model.onnx")
    got = sess.run(None, {i.name: a.numpy() for i, a in zip(sess.get_inputs(), args, strict=True)})[0]
    with torch.no_grad():
        expected = graph(*args).numpy()
    assert got.shape == expected.shape and len(got) > 300
    assert np.array_equal(got[:, 2], expected[:, 2])  # layers exact
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize(("energy_gev", "seed"), [(15.0, 4), (70.0, 5)])
def test_calibration_part_matches_torch(onnx_dir, default_bundle, energy_gev, seed):
    """Layer energies, radial map, CoG shift and core sharing: the same points, core copies included."""
    from caloclouds.export.onnx import _CalibrationGraph

    pipeline = ScriptShowerPipeline(default_bundle)
    args = _drawn(pipeline, energy_gev, seed)["calibration"]
    sess = _session(onnx_dir / "point_calibration.onnx")
    got = sess.run(None, {i.name: a.numpy() for i, a in zip(sess.get_inputs(), args, strict=True)})[0]
    with torch.no_grad():
        expected = _CalibrationGraph(pipeline)(*args).numpy()
    assert got.shape == expected.shape
    if default_bundle.config.generation.core_radius_mm > 0:
        assert len(got) > len(args[0])  # core points became four copies
    else:  # no core sharing (the shipped model since 2026-12-08): no copies, points without energy dropped
        assert len(got) <= len(args[0])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


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
    assert fraction.n_showers == 60 and 0 < fraction.standard_error < 0.03 * fraction.mean
    assert abs(fraction.mean / geant4_fraction - 1) < 0.03  # g4_photons_val_fixed.h5, 200 showers each


def test_metadata_lists_what_onnx_cannot_express(onnx_dir):
    meta = json.loads((onnx_dir / "metadata.json").read_text())
    assert meta["onnx"]["files"] == [
        "caloclouds_ddml.onnx",
        "point_calibration.onnx",
        "point_model.onnx",
        "shower_flow.onnx",
    ]
    notes = " ".join(meta["onnx"]["differences_from_torchscript"])
    assert "input checks" in notes and "set_seed" in notes
    assert "stable sort" not in notes  # the per-layer model draws its layers exactly: nothing to rank
    assert all(diff < 1e-3 for diff in meta["onnx"]["max_abs_diff_vs_torch"].values())
    assert meta["n_layers"] == N_LAYERS


def test_onnx_and_torchscript_agree_in_distribution_at_50_gev(onnx_dir, exported):
    """200 showers at 50 GeV from each: mean points per layer, sampling fraction and the energy-weighted
    radius (radial calibration, CoG shift and core sharing included) agree within statistics."""
    import onnxruntime

    from caloclouds.export.torchscript import decode_output, load_export

    module, _ = load_export(exported)
    onnxruntime.set_seed(21)
    sess = _session(onnx_dir / "caloclouds_ddml.onnx")
    torch.manual_seed(22)
    n = 200
    samples = {"onnx": [], "torchscript": []}
    for _ in range(n):
        with torch.no_grad():
            ts = module(*(torch.full((1, 1), v) for v in (50.0, 0.0, 0.0))).numpy()
        for name, flat in (("onnx", onnx_ddml_call(sess, 50.0)), ("torchscript", ts)):
            counts, points = decode_output(flat, N_LAYERS)
            e = points[:, 3]
            r = np.hypot(points[:, 0], points[:, 1])
            samples[name].append(np.concatenate([counts, [e.sum() / 50_000.0, (e * r).sum() / e.sum()]]))
    a, b = (np.array(samples[k]) for k in ("onnx", "torchscript"))
    se = np.sqrt(a.var(0) / n + b.var(0) / n) + 1e-9
    pull = (a.mean(0) - b.mean(0)) / se
    assert np.abs(pull).max() < 4.5, pull  # 30 layer counts, sampling fraction, mean radius
    assert abs(a[:, N_LAYERS].mean() / b[:, N_LAYERS].mean() - 1) < 0.02


@pytest.fixture(scope="module")
def depth_bundle(tmp_path_factory: pytest.TempPathFactory, make_tiny_bundle, shared):  # noqa: ANN001
    """A tiny depth-based bundle (flow, teacher, CM trained for a few steps on 60 real showers)."""
    from caloclouds.config import RunConfig
    from caloclouds.io import ShowerFile, write_showers
    from tests.tiny_models import tiny_run_config

    root = tmp_path_factory.mktemp("depth_bundle")
    data = root / "train.h5"
    with ShowerFile(shared("g4_photons_train.h5")) as f:
        write_showers(data, f.read(0, 60))
    return make_tiny_bundle(root, tiny_run_config(RunConfig()), data, flow_data=data, teacher_steps=20)


def test_depth_model_exports_with_topk_and_its_parts_match_torch(depth_bundle, tmp_path):
    """An earlier, depth-based bundle: the whole graph runs, the depth CM part equals torch for the
    same noise, and the metadata names the TopK ranking."""
    from caloclouds.export.onnx import _PointGraph
    from caloclouds.export.torchscript import decode_output
    from caloclouds.generation.bundle import load_bundle

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["export", "--model", str(depth_bundle), "--format", "onnx", "-o", str(tmp_path)]) == 0
    finally:
        torch.set_num_threads(threads)
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert meta["onnx"]["files"] == ["caloclouds_ddml.onnx", "point_model.onnx", "shower_flow.onnx"]
    assert "stable sort" in " ".join(meta["onnx"]["differences_from_torchscript"])
    counts, points = decode_output(onnx_ddml_call(_session(tmp_path / "caloclouds_ddml.onnx"), 40.0), N_LAYERS)
    assert counts.sum() == len(points) > 0
    graph = _PointGraph(ScriptShowerPipeline(load_bundle(depth_bundle)).points)
    sess = _session(tmp_path / "point_model.onnx")
    noise = torch.randn(517, 4, generator=torch.Generator().manual_seed(5))
    args = (noise, torch.tensor([33.0]), torch.tensor([517]))
    got = sess.run(None, {i.name: a.numpy() for i, a in zip(sess.get_inputs(), args, strict=True)})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, graph(*args).numpy(), rtol=1e-4, atol=1e-4)


def test_onnx_output_must_be_a_folder(tmp_path, capsys):
    target = tmp_path / "model.onnx"
    target.write_text("not a folder")
    assert main(["export", "--format", "onnx", "-o", str(target)]) == 2
    assert "is a file: --format onnx writes a folder" in capsys.readouterr().err
    assert target.read_text() == "not a folder"
