"""The generator's calibration stage as one TorchScript call (``calibrate_points``): the same bits as the
step functions composed one by one, as the generator composed them before. The rotation of
``cog: rotate`` is checked against the data layer's own rotation (``rotate_about_beam_axis``), not
the function ``calibrate_points`` calls."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from caloclouds.generation.bundle import load_bundle
from caloclouds.generation.calibration import (
    PointEnergyCalibration,
    calibrate_points,
    compiled,
    map_point_energies,
    random_angles,
    rescale_layer_energies,
    share_core_energy,
    shift_showers_to_cog,
)
from caloclouds.generation.generator import ShowerGenerator
from caloclouds.showers import rotate_about_beam_axis, shower_index_torch

SHIPPED = Path(__file__).resolve().parents[2] / "caloclouds" / "models" / "default"


@pytest.fixture(scope="module")
def shipped():
    torch.set_num_threads(1)
    return load_bundle(SHIPPED)


def _stepwise(gen: ShowerGenerator, raw, offsets, energy, stats, generator):  # noqa: ANN001, ANN202
    """The calibration stage one public function at a time (per-layer model: the layer is exact)."""
    layer = raw[:, 2].long()
    shower = shower_index_torch(offsets)
    e = rescale_layer_energies(raw[:, 3], layer, shower, stats.energy_per_layer_mev)
    if gen._energy_table is not None:  # the point-energy map, which keeps each (shower, layer)'s energy
        n_layers = stats.energy_per_layer_mev.shape[1]
        row = layer if len(energy) == 1 else shower * n_layers + layer
        e = map_point_energies(e, row, len(energy) * n_layers, gen._energy_table)
    x, y = gen.radial.apply(raw[:, 0], raw[:, 1], layer, energy[shower])
    if gen.cog == "rotate":  # the same draw, rotated by the data layer's function
        x, y = rotate_about_beam_axis(x, y, random_angles(len(energy), x.device, generator), shower)
    elif gen.cog == "flow":
        x, y = shift_showers_to_cog(x, y, e, shower, stats.cog_mm)
    keep = e > 0
    points = torch.stack([x, y, layer.float(), e], dim=1)[keep]
    return share_core_energy(points, shower[keep], len(energy), gen.core_radius_mm, gen.core_spread_mm)


class StepwiseGenerator(ShowerGenerator):
    """The generator with its calibration stage step by step, as it was before ``calibrate_points``."""

    def _calibrate(self, raw, layer, offsets, energy, stats, generator, direction=None):  # noqa: ANN001, ANN202
        assert direction is None  # no angles given: the direction stage does not run
        return _stepwise(self, raw, offsets, energy, stats, generator)


@pytest.mark.parametrize(
    "options",
    [
        {"cog": "flow"},  # the shipped setting
        {"cog": "rotate"},
        {"cog": "none"},
        {"cog": "rotate", "share_core": False, "calibrate_radii": False},
        {"cog": "flow", "calibrate_radii": False},
        {"cog": "rotate", "calibrate_energies": False},
    ],
)
@pytest.mark.parametrize("energies", [[47.0], [12.0, 88.0, 30.0, 65.0]])
def test_generated_showers_equal_the_stepwise_stage(shipped, options, energies) -> None:
    gen, stepwise = ShowerGenerator(shipped, **options), StepwiseGenerator(shipped, **options)
    assert gen.point_model.per_layer
    energy = torch.tensor(energies)
    for seed in (1, 2):
        got = gen.generate_tensors(energy, generator=torch.Generator().manual_seed(seed))
        expected = stepwise.generate_tensors(energy, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
        assert len(got[0]) > 300 * len(energies)
        torch.manual_seed(seed)  # the global generator: the rotation angle is still the same draw
        got = gen.generate_tensors(energy), torch.rand(1)
        torch.manual_seed(seed)
        expected = stepwise.generate_tensors(energy), torch.rand(1)
        assert torch.equal(got[0][0], expected[0][0]) and torch.equal(got[0][1], expected[0][1])
        assert torch.equal(got[1], expected[1])  # and the next draw too


# ln(e) -> 1.3 ln(e) on a uniform grid: a point-energy map
STRETCH = PointEnergyCalibration(tuple(range(-6, 7)), tuple(1.3 * v for v in range(-6, 7))).table()


@pytest.mark.parametrize("energy_table", [None, STRETCH], ids=["no-energy-map", "energy-map"])
@pytest.mark.parametrize("cog", ["flow", "rotate", "none"])
def test_edge_cases_equal_the_stepwise_stage(cog: str, energy_table: torch.Tensor | None) -> None:
    """A shower without points, a layer asking no energy (its points dropped), negative and zero energies."""
    g = torch.Generator().manual_seed(3)
    counts = torch.tensor([30, 0, 20])
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(counts, 0)])
    layer = torch.randint(0, 4, (50,), generator=g)
    raw = torch.cat([torch.randn(50, 2, generator=g) * 5, layer.float()[:, None], torch.randn(50, 1, generator=g)], 1)
    energy_per_layer = torch.rand(3, 4, generator=g) * 100
    energy_per_layer[0, 1] = 0.0  # dropped
    energy_per_layer[2, 2] = -1.0  # no energy either
    stats = SimpleNamespace(energy_per_layer_mev=energy_per_layer, cog_mm=torch.randn(3, 2, generator=g))
    energy = torch.tensor([20.0, 50.0, 80.0])
    no_radial_map = SimpleNamespace(apply=lambda x, y, *_: (x, y))
    gen = SimpleNamespace(
        cog=cog, radial=no_radial_map, core_radius_mm=3.0, core_spread_mm=1.0, _energy_table=energy_table
    )
    expected = _stepwise(gen, raw, offsets, energy, stats, torch.Generator().manual_seed(4))
    angle = random_angles(3, torch.device("cpu"), torch.Generator().manual_seed(4))
    no_table = (torch.zeros(1), torch.zeros(1, 2))
    shower = shower_index_torch(offsets)
    got = compiled(calibrate_points)(
        raw, layer, shower, energy_per_layer, energy, stats.cog_mm, angle, *no_table, cog, False, 3.0, 1.0, energy_table
    )
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    assert got[1][1] == got[1][2] and len(got[0]) < 50  # the empty shower stays empty; points dropped
    # every point dropped: nothing out, offsets all 0, in TorchScript and in Python
    for function in (calibrate_points, compiled(calibrate_points)):
        no_energy = torch.zeros(3, 4)
        points, new_offsets = function(
            raw, layer, shower, no_energy, energy, stats.cog_mm, angle, *no_table, cog, False, 3.0, 1.0, energy_table
        )
        assert points.shape == (0, 4) and new_offsets.tolist() == [0, 0, 0, 0]
