"""End-to-end generation with tiny models trained here on real Geant4 showers."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from caloclouds.cli import main
from caloclouds.config import RunConfig
from caloclouds.errors import CaloCloudsError, InputFileError
from caloclouds.generation.bundle import load_bundle
from caloclouds.generation.generator import ShowerGenerator
from caloclouds.io import ShowerFile, read_showers, write_showers

N_LAYERS = 30


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory, make_tiny_bundle, tiny_config, shared) -> Path:  # noqa: ANN001
    """A bundle folder with a tiny flow, teacher and CM, each trained for a few steps on 60 real showers."""
    src = shared("g4_photons_train.h5")
    root = tmp_path_factory.mktemp("bundle")
    data = root / "train.h5"
    with ShowerFile(src) as f:
        write_showers(data, f.read(0, 60))
    return make_tiny_bundle(root, tiny_config(RunConfig()), data, flow_data=data, teacher_steps=20)


@pytest.mark.parametrize("model_part,steps", [("cm", None), ("cm", 2), ("teacher", 3)])
def test_generated_showers_obey_the_flow(tiny_bundle, model_part, steps):
    gen = ShowerGenerator(load_bundle(tiny_bundle), model_part=model_part, steps=steps, cog="flow")
    # the untrained tiny teacher scatters points metres away; clipped to the calorimeter, they would
    # move the CoG (clipping has its own test below)
    gen.half_width_mm = float("inf")
    energies = np.array([20.0, 50.0, 80.0, 50.0], np.float32)
    showers = gen.generate(energies, generator=torch.Generator().manual_seed(3))
    assert len(showers) == 4
    assert showers.check_values() is None
    layer = showers.layer
    assert np.array_equal(layer, np.round(layer)) and layer.min() >= 0 and layer.max() < N_LAYERS
    # the calibration puts exactly the flow's energy into each shower
    stats = gen.flow.sample(torch.as_tensor(energies), generator=torch.Generator().manual_seed(3))
    np.testing.assert_allclose(showers.visible_energy_mev(), stats.visible_energy_mev.numpy(), rtol=1e-4)
    np.testing.assert_allclose(showers.layer_sums(N_LAYERS), stats.energy_per_layer_mev.numpy(), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(showers.centre_of_gravity_mm(), stats.cog_mm.numpy(), atol=1e-2)


def test_the_deprecated_sampler_keyword_goes_through_the_one_shim(tiny_bundle):
    """``ShowerGenerator(sampler="edm")`` and ``point_model("edm")`` are the teacher, with a FutureWarning."""
    bundle = load_bundle(tiny_bundle)
    energies = np.array([20.0, 50.0], np.float32)
    new = ShowerGenerator(bundle, model_part="teacher", steps=2)
    with pytest.warns(FutureWarning, match="sampler='edm' is deprecated; use model_part='teacher'"):
        old = ShowerGenerator(bundle, sampler="edm", steps=2)
    assert (old.model_part, old.solver) == (new.model_part, new.solver) == ("teacher", "heun")
    a = old.generate(energies, generator=torch.Generator().manual_seed(5))
    b = new.generate(energies, generator=torch.Generator().manual_seed(5))
    assert np.array_equal(a.points, b.points) and np.array_equal(a.offsets, b.offsets)
    with pytest.warns(FutureWarning, match="use model_part='teacher'"):
        assert bundle.point_model("edm") is bundle.point_model("teacher")
    with pytest.raises(CaloCloudsError, match="means model part 'teacher', not 'cm'"):
        ShowerGenerator(bundle, sampler="edm", model_part="cm")
    with pytest.raises(CaloCloudsError, match="valid parts are \\['cm', 'teacher'\\]"):
        bundle.point_model("student")


def test_rotation_keeps_radii_and_the_flow_values(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    energies = np.array([20.0, 50.0, 80.0], np.float32)
    plain = ShowerGenerator(bundle, cog="none").generate(energies, generator=torch.Generator().manual_seed(4))
    turned = ShowerGenerator(bundle).generate(energies, generator=torch.Generator().manual_seed(4))
    assert np.array_equal(plain.offsets, turned.offsets)
    np.testing.assert_array_equal(turned.e_mev, plain.e_mev)
    np.testing.assert_array_equal(turned.layer, plain.layer)
    np.testing.assert_allclose(
        np.hypot(turned.x_mm, turned.y_mm), np.hypot(plain.x_mm, plain.y_mm), rtol=1e-5, atol=1e-4
    )
    # one angle per shower: the angle between the two versions of each point is the shower's
    turn = np.angle((turned.x_mm + 1j * turned.y_mm) / (plain.x_mm + 1j * plain.y_mm))
    for s in range(len(energies)):
        part = turn[plain.offsets[s] : plain.offsets[s + 1]]
        assert np.ptp(np.unwrap(part)) < 1e-3
    with pytest.raises(CaloCloudsError, match="cog mode"):
        ShowerGenerator(bundle, cog="sideways")


def test_same_seed_same_showers(tiny_bundle):
    gen = ShowerGenerator(load_bundle(tiny_bundle))
    a = gen.generate([20.0, 70.0], generator=torch.Generator().manual_seed(7))
    b = gen.generate([20.0, 70.0], generator=torch.Generator().manual_seed(7))
    np.testing.assert_array_equal(a.points, b.points)


def test_generate_cli_root_and_h5(tiny_bundle, tmp_path, capsys):
    import uproot

    out = tmp_path / "gen.root"
    assert (
        main(
            [
                "generate",
                "--model",
                str(tiny_bundle),
                "--energies",
                "20",
                "80",
                "-n",
                "3",
                "--cells",
                "ild",
                "--batch-size",
                "4",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "showers/s" in text and "ms per shower after the first chunk (4 showers" in text
    with uproot.open(out) as f:
        tree = f["events"]
        assert tree.num_entries == 6
        assert {"incident_energy_gev", "cells_e_mev"} <= set(tree.keys())
    h5 = tmp_path / "gen.h5"
    energies = tmp_path / "e.txt"
    energies.write_text("# GeV\n25\n\n45.5\n")
    assert main(["generate", "--model", str(tiny_bundle), "--energies-file", str(energies), "-o", str(h5)]) == 0
    showers = read_showers(h5)
    assert showers.incident_energy_gev.tolist() == [25.0, 45.5]


def test_generate_to_file_times_the_showers_apart_from_setup(tiny_bundle, tmp_path):
    """The clock runs from the first shower to the renamed file; setup (bundle, opening the file) and
    the first chunk (the flow's TorchScript compiles on its first call) are reported apart."""
    from caloclouds.generation.pipeline import generate_to_file

    summary = generate_to_file(
        tmp_path / "t.root", np.full(5, 50.0, np.float32), model=tiny_bundle, batch_size=2, progress=False
    )
    assert summary.setup_seconds > 0 and 0 < summary.first_seconds <= summary.seconds and summary.first_showers == 2
    assert summary.ms_per_shower_after_first == pytest.approx((summary.seconds - summary.first_seconds) / 3 * 1e3)
    one = generate_to_file(tmp_path / "one.h5", np.full(2, 50.0, np.float32), model=tiny_bundle, progress=False)
    assert one.first_showers == 2 and one.ms_per_shower_after_first is None
    assert "after the first chunk" not in one.text()


@pytest.mark.filterwarnings("ignore::flows.sampling.EnergyRangeWarning")  # tiny flow, narrow range
def test_calibrate_writes_the_bundle(tiny_bundle, tmp_path, capsys, shared):
    bundle = tmp_path / "model"
    shutil.copytree(tiny_bundle, bundle)
    ref = tmp_path / "ref.h5"
    src = shared("g4_photons_val_uniform.h5")
    with ShowerFile(src) as f:
        write_showers(ref, f.read(0, 40))
    # 40 showers and an untrained model: the fit fails the quality checks and is not stored ...
    assert main(["calibrate", "--model", str(bundle), "--reference", str(ref)]) == 2
    assert "at least 500" in capsys.readouterr().err and load_bundle(bundle).calibration.is_identity
    # ... unless forced (issue 15: never stored without a word)
    assert main(["calibrate", "--model", str(bundle), "--reference", str(ref), "--force"]) == 0
    out = capsys.readouterr().out
    assert "R^2" in out and "mean cells" in out
    fitted = load_bundle(bundle).calibration
    assert not fitted.is_identity
    # a calibrated bundle is not re-calibrated without --overwrite, the shipped one not without --into-package
    before = (bundle / "bundle.json").read_bytes()
    assert main(["calibrate", "--model", str(bundle), "--reference", str(ref), "--force"]) == 2
    assert "--overwrite" in capsys.readouterr().err and (bundle / "bundle.json").read_bytes() == before
    assert main(["calibrate", "--model", "default", "--reference", str(ref), "--force", "--overwrite"]) == 2
    assert "--into-package" in capsys.readouterr().err
    assert main(["calibrate", "--model", str(bundle), "--reference", str(ref), "--force", "--overwrite"]) == 0
    provenance = load_bundle(bundle).manifest["provenance"]["calibration_reference"]
    assert provenance["file"] == os.path.relpath(ref)  # relative, not this machine's absolute path


def test_bad_bundles_and_arguments(tiny_bundle, tmp_path, capsys):
    with pytest.raises(InputFileError, match="not found"):
        load_bundle(tmp_path / "nope")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_bundle, broken)
    (broken / "flow.pt").unlink()
    with pytest.raises(InputFileError, match="Shower Flow"):
        load_bundle(broken)
    bad = tmp_path / "bad"
    shutil.copytree(tiny_bundle, bad)
    (bad / "bundle.json").write_text('{"format_version": 99}')
    with pytest.raises(InputFileError, match="version"):
        load_bundle(bad)
    assert (
        main(["generate", "--model", str(tiny_bundle), "--energies", "-5", "-n", "2", "-o", str(tmp_path / "x.h5")])
        == 2
    )
    assert "positive" in capsys.readouterr().err
    assert (
        main(["generate", "--model", str(tiny_bundle), "--energy-range", "20", "80", "-o", str(tmp_path / "x.h5")]) == 2
    )
    assert (
        main(["generate", "--model", str(tiny_bundle), "--energies", "30", "-n", "1", "-o", str(tmp_path / "x.txt")])
        == 2
    )
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.filterwarnings("ignore::flows.sampling.EnergyRangeWarning")  # tiny flow, narrow range
def test_bench_reports_every_stage(tiny_bundle, capsys):
    threads = torch.get_num_threads()
    try:
        assert main(["bench", "--model", str(tiny_bundle), "-n", "3", "--edm-n", "2", "--edm-steps", "2"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "| cm |" in out and "| edm (2 steps) |" in out and "projection ms" in out


def test_generate_tensors_are_plain_tensors_and_the_generated_showers(tiny_bundle):
    """The batch is drawn in inference mode; generate_tensors hands back ordinary tensors with the same values."""
    gen = ShowerGenerator(load_bundle(tiny_bundle))
    points, offsets = gen.generate_tensors(torch.tensor([20.0, 70.0]), generator=torch.Generator().manual_seed(7))
    assert not points.is_inference() and not offsets.is_inference()
    points[:, 3] *= 2  # may be modified in place
    showers = gen.generate([20.0, 70.0], generator=torch.Generator().manual_seed(7))
    np.testing.assert_array_equal(points[:, 3].numpy(), 2 * showers.e_mev)
    np.testing.assert_array_equal(offsets.numpy(), showers.offsets)


def test_warm_up_leaves_the_random_state_and_the_stage_times_alone(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    bundle.flow(), bundle.point_model("cm")  # loaded (building a network draws its initial weights)
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    gen = ShowerGenerator(bundle, cog="rotate")  # warms up with two showers of its own generator
    assert torch.equal(torch.rand(3), expected)
    assert gen.times.total() == 0.0


def test_generate_cells_and_project_use_one_threshold_rule(shared, tmp_path, capsys) -> None:
    """HGCal cells of different silicon thickness: `generate --cells hgcal` cuts each cell at 0.5 of
    its own MIP, as `project --geometry hgcal --threshold-mip 0.5` does (issue 26: it once cut flat)."""
    from caloclouds.io.cells import CellsReader

    shared("hgcal_ce_e_26layers.npz")
    gen = tmp_path / "g.h5"
    assert main(["generate", "--energies", "60", "-n", "4", "--cells", "hgcal", "-o", str(gen), "--seed", "3"]) == 0
    proj = tmp_path / "p.h5"
    assert main(["project", "--geometry", "hgcal", "--in", str(gen), "-o", str(proj), "--threshold-mip", "0.5"]) == 0
    capsys.readouterr()
    with CellsReader(gen, group="cells") as a, CellsReader(proj) as b:
        ha, hb = a.read(0, 4), b.read(0, 4)
    np.testing.assert_array_equal(ha.offsets, hb.offsets)
    np.testing.assert_array_equal(ha.cell_id, hb.cell_id)
    np.testing.assert_allclose(ha.e_mev, hb.e_mev, rtol=1e-6)
    with h5py.File(gen) as f:
        assert f.attrs["cells"] == "hgcal" and f.attrs["cell_threshold_mip"] == 0.5 and f.attrs["model"] == "default"
    with h5py.File(proj) as f:
        assert f.attrs["cells"] == "hgcal"


def test_generated_points_stay_inside_the_calorimeter_and_are_counted(tmp_path) -> None:
    gen = ShowerGenerator(load_bundle("default"))
    assert gen.half_width_mm == 200.0 and gen.points_clipped == 0  # the warm-up is not counted
    gen.half_width_mm = 10.0  # a calorimeter much narrower than the showers: many points clipped
    showers = gen.generate(np.array([50.0, 80.0], np.float32), generator=torch.Generator().manual_seed(1))
    assert np.abs(showers.points[:, :2]).max() <= 10.0 and gen.points_clipped > 100
    out = tmp_path / "g.h5"
    assert main(["generate", "--energies", "50", "-n", "2", "-o", str(out)]) == 0
    with h5py.File(out) as f:
        assert f.attrs["points_clipped"] >= 0 and f.attrs["detector_half_width_mm"] == 200.0
