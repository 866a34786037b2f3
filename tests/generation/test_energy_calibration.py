"""Point-energy calibration: the map, its place in the calibration stage, its storage in the bundle,
and a real fit on Geant4 showers with the shipped networks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from caloclouds.errors import CaloCloudsError, InputFileError
from caloclouds.generation.bundle import load_bundle, write_bundle_manifest
from caloclouds.generation.calibrate_energy import GRID_LOG_E_MEV, cell_energies_mev, fit_energy_calibration
from caloclouds.generation.calibration import (
    PointEnergyCalibration,
    calibrate_points,
    compiled,
    map_point_energies,
)
from caloclouds.generation.generator import ShowerGenerator
from caloclouds.io import ShowerFile

SHIPPED = Path(__file__).resolve().parents[2] / "caloclouds" / "models" / "default"
GRID = np.linspace(-4.0, 4.0, 9)


def _stretch(factor: float) -> PointEnergyCalibration:
    """ln(e) -> factor * ln(e) on GRID: e -> e^factor inside it."""
    return PointEnergyCalibration(tuple(GRID), tuple(factor * GRID))


def test_map_is_linear_in_log_e_and_keeps_the_end_ratios_beyond_the_grid() -> None:
    cal = _stretch(1.5)
    e = torch.tensor([0.0, 1e-3, np.exp(-1.0), 1.0, np.exp(2.5), 1e3], dtype=torch.float64)
    expected = np.array(
        [
            0.0,  # no energy stays none
            1e-3 * np.exp(-6.0 + 4.0),  # below the grid: the shift at its first value
            np.exp(-1.5),
            1.0,
            np.exp(3.75),
            1e3 * np.exp(6.0 - 4.0),  # beyond it: the shift at its last value
        ]
    )
    np.testing.assert_allclose(cal.apply(e.numpy()), expected, rtol=1e-12)  # the numpy twin
    # the torch map, each point in a row of its own (no rescaling), and two rows rescaled to their energies
    one_row_each = compiled(map_point_energies)(e.float(), torch.arange(6), 6, cal.table())
    np.testing.assert_allclose(one_row_each.numpy(), e.numpy(), rtol=1e-6)
    row = torch.tensor([0, 0, 0, 1, 1, 1])
    two_rows = compiled(map_point_energies)(e.float(), row, 2, cal.table())
    for r in (0, 1):
        part = expected[row.numpy() == r]
        np.testing.assert_allclose(two_rows[row == r].numpy(), part * e[row == r].sum().item() / part.sum(), rtol=2e-5)


def test_the_stage_keeps_layer_energies_and_positions() -> None:
    gen = torch.Generator().manual_seed(0)
    n = 400
    raw = torch.rand(n, 4, generator=gen) * torch.tensor([20.0, 20.0, 0.0, 2.0])
    layer = torch.randint(0, 3, (n,), generator=gen)
    shower = (torch.arange(n) >= 150).long()
    per_layer = torch.tensor([[10.0, 20.0, 5.0], [1.0, 0.0, 30.0]])
    args = (raw, layer, shower, per_layer, torch.tensor([50.0, 20.0]), torch.zeros(2, 2), torch.zeros(2))
    rest = (torch.zeros(1), torch.zeros(1, 2), "none", False, 0.0, 1.0)
    plain, plain_offsets = compiled(calibrate_points)(*args, *rest)
    mapped, offsets = compiled(calibrate_points)(*args, *rest, _stretch(2.0).table())
    assert offsets.tolist() == plain_offsets.tolist() and offsets[1] == 150  # the empty layer's points dropped
    torch.testing.assert_close(mapped[:, :3], plain[:, :3])  # positions and layers unchanged
    kept_shower = (torch.arange(len(mapped)) >= offsets[1]).long()
    rows = kept_shower * 3 + mapped[:, 2].long()
    sums = torch.zeros(6, dtype=torch.float64).index_add_(0, rows, mapped[:, 3].double())
    torch.testing.assert_close(sums.reshape(2, 3).float(), per_layer)
    # squaring spreads the energies within each layer (e^2 is more spread than e)
    assert mapped[:, 3].std() > plain[:, 3].std()


def test_identity_round_trip_and_storage(tmp_path) -> None:  # noqa: ANN001
    assert PointEnergyCalibration().is_identity and PointEnergyCalibration.from_dict(None).is_identity
    cal = _stretch(1.2)
    assert PointEnergyCalibration.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal
    bundle = load_bundle(SHIPPED)
    folder = tmp_path / "bundle"
    folder.mkdir()
    for name in bundle.files.values():
        shutil.copyfile(SHIPPED / name, folder / name)
    write_bundle_manifest(folder, bundle.config, calibration=bundle.calibration, radial=bundle.radial, energy=cal)
    assert load_bundle(folder).energy_calibration == cal
    assert load_bundle(folder).with_energy_calibration(PointEnergyCalibration()).energy_calibration.is_identity
    write_bundle_manifest(folder, bundle.config, energy=PointEnergyCalibration())
    assert "energy_calibration" not in json.loads((folder / "bundle.json").read_text())  # older bundles unchanged


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["mapped_log_e_mev"].pop(), "equal length"),
        (lambda m: m["log_e_mev"].__setitem__(3, m["log_e_mev"][3] + 0.01), "uniform"),
        (lambda m: m["mapped_log_e_mev"].__setitem__(5, -50.0), "must not decrease"),
        (lambda m: m["log_e_mev"].__setitem__(0, "x"), "could not convert"),
    ],
)
def test_a_broken_energy_map_is_named_on_load(tmp_path, edit, message) -> None:  # noqa: ANN001
    folder = tmp_path / "bundle"
    shutil.copytree(SHIPPED, folder)
    manifest = json.loads((folder / "bundle.json").read_text())
    manifest["energy_calibration"] = _stretch(1.1).to_dict()
    edit(manifest["energy_calibration"])
    (folder / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(InputFileError, match=rf"bundle.json.*energy_calibration.*{message}"):
        load_bundle(folder)


def _spectrum(showers, seed: int) -> np.ndarray:  # noqa: ANN001
    """Cells per shower above 0.5 MIP in bins of 0.5-1.2-2.5-8-60-inf MIP, ILD cells at random impact."""
    import projection

    detector = load_bundle(SHIPPED).config.detector
    geometry = projection.get_geometry("ild", detector=detector)
    e = cell_energies_mev(
        showers,
        lambda s: projection.project(s, geometry, n_shower_layers=detector.n_layers),
        detector.cell_pitch_mm,
        np.random.default_rng(seed),
    )
    edges = np.array([0.5, 1.2, 2.5, 8.0, 60.0, np.inf]) * detector.mip_mev
    return np.histogram(e, edges)[0] / len(showers)


def test_fit_on_geant4_brings_the_cell_spectrum_to_geant4(shared) -> None:  # noqa: ANN001
    """A real fit: the shipped networks and calibrations against 400 Geant4 training showers; the
    cell spectrum is then scored on 400 other showers."""
    with ShowerFile(shared("g4_photons_train.h5")) as f:
        fit_showers, test_showers = f.read(0, 400), f.read(400, 800)
    torch.set_num_threads(1)
    bundle = load_bundle(SHIPPED).with_energy_calibration(PointEnergyCalibration())
    report = fit_energy_calibration(bundle, fit_showers, seed=1)
    cal = report.calibration
    assert cal.log_e_mev == GRID_LOG_E_MEV and np.all(np.diff(cal.mapped_log_e_mev) >= 0)
    assert "model after" in report.text()
    g4 = _spectrum(test_showers, 3)
    off = {}
    for name, energy in (("before", PointEnergyCalibration()), ("after", cal)):
        gen = ShowerGenerator(bundle.with_energy_calibration(energy))
        model = gen.generate(test_showers.incident_energy_gev, generator=torch.Generator().manual_seed(2))
        off[name] = np.abs(np.log(_spectrum(model, 4) / g4))
    # before: 0.76x Geant4's cells at 0.5-1.2 MIP, 1.2x at 2.5-8 MIP; after: each bin within 10 %
    assert off["before"].max() > 0.15, off
    assert off["after"].max() < 0.1, off
    with pytest.raises(CaloCloudsError, match="at least 20 reference showers"):
        fit_energy_calibration(bundle, fit_showers[:5])


def test_calibrate_refuses_to_replace_a_point_energy_map_without_overwrite(tmp_path, shared, capsys) -> None:  # noqa: ANN001
    """A bundle whose only calibration is a point-energy map is calibrated already: the CLI says so
    before any fit, and names --overwrite."""
    from caloclouds.cli import main
    from caloclouds.generation.calibration import PointCountCalibration, RadialCalibration

    bundle = load_bundle(SHIPPED)
    folder = tmp_path / "bundle"
    folder.mkdir()
    for name in bundle.files.values():
        shutil.copyfile(SHIPPED / name, folder / name)
    write_bundle_manifest(
        folder, bundle.config, calibration=PointCountCalibration(), radial=RadialCalibration(), energy=_stretch(1.1)
    )
    code = main(["calibrate", "--model", str(folder), "--reference", str(shared("g4_photons_train.h5"))])
    assert code != 0
    assert "calibrated already" in capsys.readouterr().err
