"""The TorchScript export: exact agreement with the Python pipeline, the DDML layout, metadata, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from caloclouds.cli import main
from caloclouds.export.torchscript import EXTRA_FILES, decode_output, load_export
from caloclouds.generation.generator import ShowerGenerator
from flows import EnergyRangeWarning

N_LAYERS = 30


def _call(module, energy_gev: float, theta_deg: float = 0.0, phi_deg: float = 0.0) -> torch.Tensor:
    args = [torch.full((1, 1), v, dtype=torch.float32) for v in (energy_gev, theta_deg, phi_deg)]
    return module(*args)


def _sorted_points(points: torch.Tensor) -> torch.Tensor:
    """Points in a canonical order (by layer, then energy), to compare clouds point by point."""
    points = points[torch.argsort(points[:, 3], stable=True)]
    return points[torch.argsort(points[:, 2], stable=True)]


def test_flow_script_equals_pyro_flow(default_bundle):
    from caloclouds.export.flow import ScriptShowerFlow

    flow = default_bundle.flow()
    scripted = torch.jit.script(ScriptShowerFlow(flow))
    energy = torch.tensor([10.0, 33.3, 50.0, 89.9, 5.0, 120.0])
    for seed in range(3):
        torch.manual_seed(seed)
        with pytest.warns(EnergyRangeWarning):  # 5 and 120 GeV: the export extrapolates as the flow does
            ref = flow.sample(energy)
        torch.manual_seed(seed)
        noise = torch.randn(len(energy), scripted.dim)
        per_layer, energy_per_layer = scripted(energy, noise)
        assert torch.equal(per_layer, ref.points_per_layer)
        assert torch.equal(energy_per_layer, ref.energy_per_layer_mev)


@pytest.mark.parametrize("energy_gev", [10.0, 50.0, 90.0])
def test_export_equals_python_pipeline_for_the_same_seed(default_bundle, exported, energy_gev):
    module, _ = load_export(exported)
    gen = ShowerGenerator(default_bundle)
    for seed in range(3):
        torch.manual_seed(seed)
        points, offsets = gen.generate_tensors(torch.tensor([energy_gev]))
        torch.manual_seed(seed)
        counts, exported_points = decode_output(_call(module, energy_gev), N_LAYERS)
        assert np.array_equal(counts, torch.bincount(points[:, 2].long(), minlength=N_LAYERS).numpy())
        ours, ref = _sorted_points(torch.from_numpy(exported_points)), _sorted_points(points)
        # the same shower: counts exact; x, y, e equal up to float32 rounding of the network's
        # conditions, computed in another order in TorchScript (seen: 6e-5 mm, 1 % of the points)
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-4)


def test_output_layout_and_reproducibility(exported):
    module, _ = load_export(exported)
    torch.manual_seed(7)
    first = _call(module, 50.0)
    torch.manual_seed(7)
    again = _call(module, 50.0)
    other = _call(module, 50.0)
    assert first.dtype == torch.float32 and first.ndim == 1
    assert torch.equal(first, again)
    assert not torch.equal(first, other)  # each call draws a new shower
    counts, points = decode_output(first, N_LAYERS)
    assert counts.sum() == len(points) > 500
    assert np.all(np.diff(points[:, 2]) >= 0) and np.all(points[:, 3] > 0)
    header = first[: 4 * N_LAYERS].reshape(N_LAYERS, 4)
    assert torch.all(header[:, 1:] == 0)


def test_the_shipped_export_uses_the_angles(exported):
    """The shipped model is direction-aware (issue 25): the export's showers lean with theta along phi;
    a normal-incidence bundle's export ignores the angles (tests/export/test_export_direction.py)."""
    module, meta = load_export(exported)
    assert meta["angles"]["direction_aware"] is True
    torch.manual_seed(3)
    normal = _call(module, 40.0, 0.0, 0.0)
    torch.manual_seed(3)
    tilted = _call(module, 40.0, 30.0, 90.0)
    assert not torch.equal(normal, tilted)


def test_metadata_in_extra_files(default_bundle, exported):
    extra = {name: "" for name in EXTRA_FILES}
    torch.jit.load(str(exported), _extra_files=extra)
    meta = {k: json.loads(v) for k, v in extra.items()}
    assert meta["n_layers"] == N_LAYERS
    assert meta["version"]["export_format"] == 1 and meta["version"]["torch"] == torch.__version__
    assert meta["layer_positions_mm"]["silicon_front_mm"] == list(default_bundle.config.detector.silicon_front_mm)
    lo, hi = meta["energy_range_gev"]
    assert 9.9 < lo < 10.1 and 89.9 < hi < 90.1
    assert (
        meta["training"]["parts"]["cm"]["training_step"] > 0 and len(meta["training"]["parts"]["flow"]["sha256"]) == 64
    )
    assert meta["metadata.json"]["n_layers"] == N_LAYERS


@pytest.mark.parametrize("energy_gev", [0.0, -5.0, float("nan"), float("inf")])
def test_bad_energy_raises(exported, energy_gev):
    module, _ = load_export(exported)
    with pytest.raises(torch.jit.Error, match="energy_gev must be finite and > 0"):
        _call(module, energy_gev)


def test_bad_input_shape_raises(exported):
    module, _ = load_export(exported)
    with pytest.raises(torch.jit.Error, match=r"shape \(1, 1\)"):
        module(torch.full((2, 1), 50.0), torch.zeros(1, 1), torch.zeros(1, 1))


def test_decode_output_rejects_broken_layouts():
    good = np.zeros(4 * N_LAYERS + 8, dtype=np.float32)
    good[0] = 2
    good[4 * N_LAYERS :] = [1, 1, 0, 1, 2, 2, 0, 1]
    counts, points = decode_output(good, N_LAYERS)
    assert counts[0] == 2 and points.shape == (2, 4)
    with pytest.raises(ValueError, match="header counts 3 points but 2 follow"):
        bad = good.copy()
        bad[0] = 3
        decode_output(bad, N_LAYERS)
    with pytest.raises(ValueError, match="between the layer counts must be zero"):
        bad = good.copy()
        bad[1] = 1
        decode_output(bad, N_LAYERS)
    with pytest.raises(ValueError, match="grouped by ascending layer"):
        bad = good.copy()
        bad[4 * N_LAYERS + 2] = 1
        decode_output(bad, N_LAYERS)
    with pytest.raises(ValueError, match="header entries plus 4 per point"):
        decode_output(good[:-1], N_LAYERS)


def test_python_and_export_agree_in_distribution_at_50_gev(default_bundle, exported):
    """200 showers at 50 GeV from each, independent seeds: mean points per layer and sampling fraction."""
    module, _ = load_export(exported)
    n = 200
    gen = ShowerGenerator(default_bundle)
    showers = gen.generate(np.full(n, 50.0, dtype=np.float32), generator=torch.Generator().manual_seed(11))
    py_counts = showers.layer_sums(N_LAYERS, np.ones(len(showers.points)))
    py_frac = showers.visible_energy_mev() / 50_000.0
    torch.manual_seed(12)
    ex_counts, ex_frac = [], []
    for _ in range(n):
        counts, points = decode_output(_call(module, 50.0), N_LAYERS)
        ex_counts.append(counts)
        ex_frac.append(points[:, 3].sum() / 50_000.0)
    ex_counts, ex_frac = np.array(ex_counts), np.array(ex_frac)
    # difference of means in units of its standard error (two independent samples of 200)
    se = np.sqrt(py_counts.var(0) / n + ex_counts.var(0) / n) + 1e-9
    pull = (py_counts.mean(0) - ex_counts.mean(0)) / se
    assert np.abs(pull).max() < 4.5, pull
    se_total = np.sqrt(py_counts.sum(1).var() / n + ex_counts.sum(1).var() / n)
    assert abs(py_counts.sum(1).mean() - ex_counts.sum(1).mean()) < 4 * se_total
    se_frac = np.sqrt(py_frac.var() / n + ex_frac.var() / n)
    assert abs(py_frac.mean() - ex_frac.mean()) < 4 * se_frac
    assert abs(ex_frac.mean() / py_frac.mean() - 1) < 0.02


def test_cli_export_writes_a_loadable_file(tmp_path, capsys):
    out = tmp_path / "sub" / "model.pt"
    assert main(["export", "--model", "default", "-o", str(out)]) == 0
    assert "DDML CaloClouds convention" in capsys.readouterr().out
    module, meta = load_export(out)
    assert meta["n_layers"] == N_LAYERS
    decode_output(_call(module, 30.0), N_LAYERS)


def test_cli_export_errors(tmp_path, capsys):
    assert main(["export", "--model", str(tmp_path / "missing"), "-o", str(tmp_path / "m.pt")]) == 2
    assert "model bundle folder not found" in capsys.readouterr().err
    assert main(["export", "-o", str(tmp_path / "m.txt")]) == 2
    assert "unknown extension '.txt'" in capsys.readouterr().err
    assert main(["export", "--steps", "0", "-o", str(tmp_path / "m.pt")]) == 2
    assert "--steps must be >= 1" in capsys.readouterr().err


def test_load_export_names_a_bad_file(tmp_path):
    from caloclouds.errors import InputFileError

    bad = tmp_path / "junk.pt"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputFileError, match="junk.pt.*not a TorchScript file"):
        load_export(bad)
