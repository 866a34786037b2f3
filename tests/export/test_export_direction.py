"""The export of a direction-aware bundle (issue 25): TorchScript and ONNX ``forward(E, theta, phi)``
follow ShowerGenerator at oblique incidence, on a tiny direction-aware bundle trained in the session
(tests/export/conftest.py: 80 angled and 40 normal-incidence Geant4 showers, a few seconds).

Angles are DDML's: theta = acos(d_z) (z into the calorimeter, 0 = normal incidence), phi =
atan2(d_y, d_x) in degrees.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from caloclouds.errors import InputFileError
from caloclouds.export.drift import drift_per_mm, layer_centres_mm
from caloclouds.export.torchscript import decode_output, export_torchscript, load_export
from caloclouds.generation.bundle import load_bundle
from caloclouds.generation.generator import ShowerGenerator

N_LAYERS = 30


def _call(module, energy_gev: float, theta_deg: float, phi_deg: float) -> torch.Tensor:
    with torch.inference_mode():
        return module(*(torch.full((1, 1), v, dtype=torch.float32) for v in (energy_gev, theta_deg, phi_deg)))


def _sorted_points(points: torch.Tensor) -> torch.Tensor:
    """Points in a canonical order (by layer, then energy), to compare clouds point by point."""
    points = points[torch.argsort(points[:, 3], stable=True)]
    return points[torch.argsort(points[:, 2], stable=True)]


def _with_cog(bundle, cog: str):  # noqa: ANN001, ANN202
    """The bundle with another ``generation.cog`` (the export reads it from the bundle's config)."""
    config = dataclasses.replace(bundle.config, generation=dataclasses.replace(bundle.config.generation, cog=cog))
    return dataclasses.replace(bundle, config=config)


@pytest.fixture(scope="module")
def bundle(direction_bundle):  # noqa: ANN001, ANN201
    return load_bundle(direction_bundle)


@pytest.fixture(scope="module")
def exports(bundle, direction_exported, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """cog mode -> (TorchScript module, ShowerGenerator): the bundle's "flow" and the "rotate" mode,
    where an angled shower gets no random turn but a normal-incidence one does."""
    out = {"flow": (load_export(direction_exported)[0], ShowerGenerator(bundle))}
    rotate = _with_cog(bundle, "rotate")
    path = tmp_path_factory.mktemp("rotate") / "model.pt"
    export_torchscript(rotate, path)
    out["rotate"] = (load_export(path)[0], ShowerGenerator(rotate))
    return out


@pytest.mark.parametrize("cog", ["flow", "rotate"])
@pytest.mark.parametrize("phi_deg", [30.0, 390.0])
@pytest.mark.parametrize("theta_deg", [0.0, 20.0, 40.0])
def test_export_equals_the_generator_at_every_angle(exports, cog, theta_deg, phi_deg):
    """The same seed gives the same shower as ShowerGenerator.generate(theta_deg=, phi_deg=): flow on
    theta, PointWise Net on tan(theta), calibration in the axis frame, then the layers' frame."""
    module, gen = exports[cog]
    for seed, energy in ((0, 50.0), (1, 23.0)):
        torch.manual_seed(seed)
        ref = gen.generate(np.array([energy], np.float32), theta_deg=theta_deg, phi_deg=phi_deg)
        torch.manual_seed(seed)
        counts, points = decode_output(_call(module, energy, theta_deg, phi_deg), N_LAYERS)
        assert np.array_equal(counts, ref.layer_sums(N_LAYERS, np.ones(len(ref.points)))[0].astype(np.int64))
        ours, theirs = _sorted_points(torch.from_numpy(points)), _sorted_points(torch.from_numpy(ref.points))
        # up to float32 rounding of the network's conditions and of phi (390 against 30 wrapped)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=2e-4)


def test_phi_is_wrapped_and_theta_clamped_into_the_trained_range(direction_exported):
    module, meta = load_export(direction_exported)
    assert meta["angles"]["theta_range_deg"] == [0.0, 40.0]

    def shower(theta: float, phi: float) -> torch.Tensor:
        torch.manual_seed(4)
        return _call(module, 45.0, theta, phi)

    reference = shower(30.0, 30.0)
    for phi in (390.0, -330.0, 30.0 + 3 * 360.0):
        assert torch.equal(shower(30.0, phi), reference), phi
    assert torch.equal(shower(30.0, -180.0), shower(30.0, 180.0))
    assert torch.equal(shower(55.0, 30.0), shower(40.0, 30.0))  # beyond the trained range: its edge
    assert torch.equal(shower(90.0, 30.0), shower(40.0, 30.0))
    assert torch.equal(shower(-5.0, 30.0), shower(0.0, 30.0))
    assert not torch.equal(shower(20.0, 30.0), reference)


@pytest.mark.parametrize("angle", ["theta_deg", "phi_deg"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_angles_raise(direction_exported, angle, value):
    module, _ = load_export(direction_exported)
    args = {"theta_deg": 20.0, "phi_deg": 30.0, angle: value}
    with pytest.raises(torch.jit.Error, match="theta_deg and phi_deg must be finite"):
        _call(module, 50.0, args["theta_deg"], args["phi_deg"])


@pytest.mark.parametrize("cog", ["flow", "rotate"])
def test_at_normal_incidence_phi_only_turns_the_shower(exports, cog):
    module, _ = exports[cog]
    torch.manual_seed(9)
    _, straight = decode_output(_call(module, 60.0, 0.0, 0.0), N_LAYERS)
    torch.manual_seed(9)
    _, turned = decode_output(_call(module, 60.0, 0.0, 30.0), N_LAYERS)
    inside = np.all(np.abs(straight[:, :2]) < 150.0, axis=1)  # away from the clip at the calorimeter's edge
    assert inside.mean() > 0.99
    c, s = np.cos(np.radians(30.0)), np.sin(np.radians(30.0))
    x, y = straight[inside, 0], straight[inside, 1]
    np.testing.assert_allclose(turned[inside, 0], c * x - s * y, atol=1e-3)
    np.testing.assert_allclose(turned[inside, 1], s * x + c * y, atol=1e-3)
    np.testing.assert_array_equal(turned[:, 2:], straight[:, 2:])


def _drift(showers: list[np.ndarray], phi_deg: float, layer_z_mm: np.ndarray) -> tuple[float, float]:
    along, across, energy = layer_centres_mm(np.concatenate(showers), phi_deg, N_LAYERS)
    return drift_per_mm(along, energy, layer_z_mm), drift_per_mm(across, energy, layer_z_mm)


def test_the_centre_drifts_by_tan_theta_along_phi(bundle, direction_exported):
    """30 showers at each angle: the layers' centre moves by tan(theta) per mm of depth along phi
    (plus the tiny model's own lean, 0.02) and not across it; turning phi turns the drift."""
    module, _ = load_export(direction_exported)
    z = np.asarray(bundle.config.detector.layer_centre_z_mm)
    torch.manual_seed(2)
    for theta in (0.0, 20.0, 40.0):
        for phi in (30.0, 120.0):
            showers = [decode_output(_call(module, 50.0, theta, phi), N_LAYERS)[1] for _ in range(30)]
            along, across = _drift(showers, phi, z)
            assert abs(along - np.tan(np.radians(theta))) < 0.05, (theta, phi, along)
            assert abs(across) < 0.01, (theta, phi, across)
            if theta == 40.0:  # seen from phi + 90 deg, the drift is across
                assert abs(_drift(showers, phi + 90.0, z)[1] + along) < 1e-9


def test_metadata_states_the_convention_and_the_trained_range(direction_exported):
    _, meta = load_export(direction_exported)
    angles = meta["angles"]
    assert angles["direction_aware"] is True
    assert "acos(d_z)" in angles["convention"] and "theta_deg = 0 is normal incidence" in angles["convention"]
    assert angles["theta_range_deg"] == [0.0, 40.0] and "not recorded in the bundle" in angles["theta_range_source"]
    assert "clamped into [0, 40]" in angles["outside_training_range"]
    assert "wrapped into (-180, 180]" in angles["phi_deg"]
    assert "z_l tan(theta)" in meta["calling_convention"]["frame"]


def test_a_range_recorded_in_the_bundle_is_the_clamp(direction_bundle, tmp_path):
    """The flow's training range recorded in the bundle sets the range the export clamps to and states it."""
    copy = tmp_path / "bundle"
    shutil.copytree(direction_bundle, copy)
    manifest = json.loads((copy / "bundle.json").read_text())
    manifest["provenance"]["trained_condition_ranges"] = {"theta_deg": [0.0, 30.0]}
    (copy / "bundle.json").write_text(json.dumps(manifest))
    meta = export_torchscript(load_bundle(copy), tmp_path / "m.pt")
    assert meta["angles"]["theta_range_deg"] == [0.0, 30.0]
    assert meta["angles"]["theta_range_source"].startswith("the flow's training record")
    module, _ = load_export(tmp_path / "m.pt")
    torch.manual_seed(1)
    at_edge = _call(module, 50.0, 30.0, 10.0)
    torch.manual_seed(1)
    assert torch.equal(_call(module, 50.0, 38.0, 10.0), at_edge)
    manifest["provenance"]["trained_condition_ranges"] = {"theta_deg": [0.0, 95.0]}
    (copy / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(InputFileError, match="theta_deg"):
        export_torchscript(load_bundle(copy), tmp_path / "bad.pt")


# -- ONNX --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_dir(direction_bundle, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN001, ANN201
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from caloclouds.export.onnx import export_onnx

    out = tmp_path_factory.mktemp("direction_onnx")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        export_onnx(load_bundle(direction_bundle), out, check_showers=2)  # the tests draw their own
    finally:
        torch.set_num_threads(threads)
    return out


def _onnx_shower(onnx_dir, seed: int, energy: float, theta: float, phi: float) -> np.ndarray:  # noqa: ANN001
    """One call of a fresh session whose random ops are seeded with ``seed``."""
    import onnxruntime

    from caloclouds.export.onnx import _session, onnx_ddml_call

    onnxruntime.set_seed(seed)
    return onnx_ddml_call(_session(onnx_dir / "caloclouds_ddml.onnx"), energy, theta, phi)


def test_onnx_wraps_phi_clamps_theta_and_turns_normal_incidence(onnx_dir):
    reference = _onnx_shower(onnx_dir, 3, 50.0, 25.0, 30.0)
    assert np.array_equal(_onnx_shower(onnx_dir, 3, 50.0, 25.0, 390.0), reference)
    assert np.array_equal(_onnx_shower(onnx_dir, 3, 50.0, 70.0, 30.0), _onnx_shower(onnx_dir, 3, 50.0, 40.0, 30.0))
    _, straight = decode_output(_onnx_shower(onnx_dir, 5, 50.0, 0.0, 0.0), N_LAYERS)
    _, turned = decode_output(_onnx_shower(onnx_dir, 5, 50.0, 0.0, 90.0), N_LAYERS)
    inside = np.all(np.abs(straight[:, :2]) < 150.0, axis=1)
    np.testing.assert_allclose(turned[inside, 0], -straight[inside, 1], atol=1e-3)
    np.testing.assert_allclose(turned[inside, 1], straight[inside, 0], atol=1e-3)


def test_onnx_parts_take_the_direction_and_match_torch(onnx_dir, bundle):
    from caloclouds.export.onnx import _drawn_shower, _FlowGraph, _LayerPointGraph, _session
    from caloclouds.export.pipeline import ScriptShowerPipeline

    pipeline = ScriptShowerPipeline(bundle)
    meta = json.loads((onnx_dir / "metadata.json").read_text())
    assert meta["angles"]["direction_aware"] is True
    assert "finite angles" in " ".join(meta["onnx"]["differences_from_torchscript"])
    assert all(diff < 1e-3 for diff in meta["onnx"]["max_abs_diff_vs_torch"].values())
    flow = _session(onnx_dir / "shower_flow.onnx")
    assert [i.name for i in flow.get_inputs()] == ["incident_energy_gev", "noise", "theta_deg"]
    args = (
        torch.tensor([20.0, 60.0]),
        torch.randn(2, pipeline.flow.dim, generator=torch.Generator().manual_seed(0)),
        torch.tensor([[38.0], [3.0]]),
    )
    got = flow.run(None, {i.name: a.numpy() for i, a in zip(flow.get_inputs(), args, strict=True)})
    with torch.no_grad():
        expected = _FlowGraph(pipeline.flow)(*args)
    assert np.array_equal(got[0], expected[0].numpy())
    np.testing.assert_allclose(got[1], expected[1].numpy(), rtol=1e-4, atol=1e-3)
    points = _session(onnx_dir / "point_model.onnx")
    assert points.get_inputs()[-1].name == "tan_theta"
    args = _drawn_shower(pipeline, 40.0, torch.Generator().manual_seed(1), theta_deg=30.0)["points"]
    got = points.run(None, {i.name: a.numpy() for i, a in zip(points.get_inputs(), args, strict=True)})[0]
    with torch.no_grad():
        expected = _LayerPointGraph(pipeline.points)(*args).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)


def test_onnx_centre_drifts_as_torchscript(onnx_dir, bundle, direction_exported):
    """30 onnxruntime showers at theta 40, phi 30: the drift is TorchScript's tan(theta) (+ the lean)."""
    import onnxruntime

    from caloclouds.export.onnx import _session, onnx_ddml_call

    z = np.asarray(bundle.config.detector.layer_centre_z_mm)
    onnxruntime.set_seed(8)
    session = _session(onnx_dir / "caloclouds_ddml.onnx")
    showers = [decode_output(onnx_ddml_call(session, 50.0, 40.0, 30.0), N_LAYERS)[1] for _ in range(30)]
    along, across = _drift(showers, 30.0, z)
    assert abs(along - np.tan(np.radians(40.0))) < 0.05 and abs(across) < 0.01
