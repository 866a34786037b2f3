"""Radial calibration: the map itself, its storage in the bundle, and a real fit on Geant4 showers."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from caloclouds.errors import CaloCloudsError, InputFileError
from caloclouds.generation.bundle import load_bundle, write_bundle_manifest
from caloclouds.generation.calibrate import RADIAL_LEVELS, _radial_quantiles, fit_radial_calibration
from caloclouds.generation.calibration import PointCountCalibration, RadialCalibration, radial_grid
from caloclouds.generation.calibration import map_radii as _map_radii
from caloclouds.generation.generator import ShowerGenerator
from caloclouds.io import ShowerFile

# the normal-incidence model shipped until 2026-12-08, whose generation shares its core (cog: flow)
SHIPPED = Path(__file__).resolve().parents[2] / "caloclouds" / "models" / "ild_normal_incidence"
LEVELS = torch.linspace(0.0, 1.0, 5)


def map_radii(x, y, layer, energy, nodes, model, g4):  # noqa: ANN001, ANN201
    return _map_radii(x, y, layer, energy, nodes, radial_grid(model, g4))


def _tables(factor_per_node: list[float], n_layers: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    model = torch.tensor([0.0, 1.0, 2.0, 5.0, 20.0], dtype=torch.float64).repeat(len(factor_per_node) * n_layers, 1)
    scale = torch.tensor(factor_per_node, dtype=torch.float64).repeat_interleave(n_layers)[:, None]
    nodes = torch.linspace(10.0, 90.0, len(factor_per_node), dtype=torch.float64)
    return nodes, model, model * scale


def test_map_scales_radii_along_their_direction() -> None:
    nodes, model, g4 = _tables([2.0])
    x = torch.tensor([0.3, -1.5, 4.0, 0.0, 30.0])
    y = torch.tensor([0.4, 2.0, -3.0, 0.0, 40.0])
    layer = torch.tensor([0, 1, 2, 0, 1])
    x2, y2 = map_radii(x, y, layer, torch.full((5,), 50.0), nodes, model, g4)
    # inside the table, below and beyond it: all doubled (the map is a float32 lookup table: 1e-4 relative)
    torch.testing.assert_close(x2, 2 * x, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(y2, 2 * y, rtol=1e-4, atol=1e-4)


def test_map_interpolates_between_energy_nodes_and_per_layer() -> None:
    nodes, model, g4 = _tables([1.0, 3.0])  # identity at 10 GeV, x3 at 90 GeV
    x, y = torch.tensor([1.0, 1.0, 1.0, 1.0]), torch.zeros(4)
    energy = torch.tensor([5.0, 10.0, 50.0, 120.0])  # outside the nodes: the nearest node
    x2, _ = map_radii(x, y, torch.zeros(4, dtype=torch.long), energy, nodes, model, g4)
    torch.testing.assert_close(x2, torch.tensor([1.0, 1.0, 2.0, 3.0]), rtol=1e-4, atol=1e-4)
    g4_layer = g4.clone()
    g4_layer[1] = model[1] * 0.5  # node 0, layer 1 halves its radii
    x3, _ = map_radii(x[:2], y[:2], torch.tensor([0, 1]), torch.tensor([10.0, 10.0]), nodes, model, g4_layer)
    torch.testing.assert_close(x3, torch.tensor([1.0, 0.5]), rtol=1e-4, atol=1e-4)


def test_identity_and_manifest_round_trip(tmp_path) -> None:  # noqa: ANN001
    assert RadialCalibration().is_identity
    x = torch.tensor([1.0, 2.0])
    out = RadialCalibration().apply(x, x, torch.zeros(2, dtype=torch.long), torch.full((2,), 50.0))
    assert out[0] is x
    nodes, model, g4 = _tables([1.0, 2.0], n_layers=30)
    cal = RadialCalibration(
        tuple(nodes.tolist()), tuple(LEVELS.tolist()), tuple(map(tuple, model.tolist())), tuple(map(tuple, g4.tolist()))
    )
    assert RadialCalibration.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal
    assert RadialCalibration.from_dict(None).is_identity  # bundles written before the radial calibration
    bundle = load_bundle(SHIPPED)
    folder = tmp_path / "bundle"
    folder.mkdir()
    for name in bundle.files.values():
        shutil.copyfile(SHIPPED / name, folder / name)
    write_bundle_manifest(folder, bundle.config, calibration=PointCountCalibration(), radial=cal)
    assert load_bundle(folder).radial == cal


def _quantiles(showers, edges, jitter_mm):  # noqa: ANN001, ANN202
    return _radial_quantiles(showers, edges, 30, jitter_mm=jitter_mm, seed=0)[0]


def test_fit_on_geant4_brings_the_model_radial_profile_to_geant4(shared) -> None:  # noqa: ANN001
    """A real fit: the shipped networks against 400 Geant4 training showers; scored on 400 others."""
    with ShowerFile(shared("g4_photons_train.h5")) as f:
        fit_showers, test_showers = f.read(0, 400), f.read(400, 800)
    torch.set_num_threads(1)
    bundle = load_bundle(SHIPPED).with_calibration(PointCountCalibration(), RadialCalibration())
    cal = fit_radial_calibration(bundle, fit_showers, seed=1)
    assert len(cal.nodes_gev) == 5 and len(cal.model_r_mm) == 5 * 30 and cal.levels == RADIAL_LEVELS
    assert all(np.all(np.diff(row) >= 0) for row in cal.model_r_mm)  # every row is a monotone map
    energies = test_showers.incident_energy_gev
    edges = np.array([0.0, 40.0, 70.0, 100.0])
    g4 = _quantiles(test_showers, edges, 5.088333 / 6)
    off = {}
    for name, radial in (("before", RadialCalibration()), ("after", cal)):
        gen = ShowerGenerator(
            dataclasses.replace(bundle, radial=radial), calibrate_n=False, share_core=False, cog="none"
        )
        model = gen.generate(energies, generator=torch.Generator().manual_seed(2))
        q = _quantiles(model, edges, 0.0)
        off[name] = np.median(np.abs(np.log(q[:, 5:-1] / g4[:, 5:-1])))  # median relative error of the quantiles
    assert off["after"] < 0.6 * off["before"], off
    one_energy = dataclasses.replace(fit_showers, incident_energy_gev=np.full(400, 50.0, np.float32))
    with pytest.raises(CaloCloudsError, match="one incident energy"):
        fit_radial_calibration(bundle, one_energy)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r["nodes_gev"].__setitem__(0, "x"), "could not convert"),
        (lambda r: r["nodes_gev"].__setitem__(1, r["nodes_gev"][0]), "increasing"),
        (lambda r: r["model_r_mm"].__setitem__(3, r["model_r_mm"][3][:10]), "row 3 has 10 quantiles"),
        (lambda r: r["g4_r_mm"].__setitem__(5, list(reversed(r["g4_r_mm"][5]))), "g4_r_mm row 5 is not"),
        (lambda r: r["g4_r_mm"].pop(), "rows"),
    ],
)
def test_a_broken_radial_table_is_named_on_load(tmp_path, edit, message) -> None:  # noqa: ANN001
    folder = tmp_path / "bundle"
    shutil.copytree(SHIPPED, folder)
    manifest = json.loads((folder / "bundle.json").read_text())
    edit(manifest["radial_calibration"])
    (folder / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(InputFileError, match=rf"radial_calibration.*{message}"):
        load_bundle(folder)
