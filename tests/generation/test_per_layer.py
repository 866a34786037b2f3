"""The per-layer PointWise Net end to end: tiny models trained here on real Geant4 showers.

Each (shower, layer) row is conditioned on the layer and the flow's n_l and E_l, so the generated
showers hold exactly the flow's points per layer (no depth-rank assignment), grouped by shower and
ascending layer, with the flow's energy in each layer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from caloclouds.config import RunConfig
from caloclouds.diffusion import load_point_model
from caloclouds.diffusion.data import TrainingData
from caloclouds.errors import CaloCloudsError
from caloclouds.generation.bundle import load_bundle
from caloclouds.generation.generator import ShowerGenerator
from caloclouds.io import ShowerFile, write_showers

N_LAYERS = 30


@pytest.fixture(scope="module")
def layer_bundle(tmp_path_factory: pytest.TempPathFactory, make_tiny_bundle, shared, tiny_config) -> Path:  # noqa: ANN001
    """A bundle of a tiny flow and a tiny per-layer teacher and CM, trained on 60 + 40 real showers."""
    files = [shared("g4_photons_train.h5"), shared("g4_photons_train2.h5")]
    root = tmp_path_factory.mktemp("layer_bundle")
    parts = []
    for i, (src, n) in enumerate(zip(files, (60, 40))):
        parts.append(root / f"train{i}.h5")
        with ShowerFile(src) as f:
            write_showers(parts[-1], f.read(0, n))
    tiny = tiny_config(RunConfig())
    config = dataclasses.replace(
        tiny,
        flow=dataclasses.replace(tiny.flow, steps=40, eval_every=20),
        diffusion=dataclasses.replace(
            tiny.diffusion, batch_size=8, per_layer=True, points_per_shower=200, val_showers=8
        ),
        distillation=dataclasses.replace(tiny.distillation, batch_size=8),
    )
    data = TrainingData.from_files(parts)
    return make_tiny_bundle(root, config, data, flow_data=parts[0], teacher_steps=30, val=parts[1])


def test_training_files_are_read_as_one_set(tmp_path, shared) -> None:  # noqa: ANN001
    src = shared("g4_photons_train2.h5")
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    with ShowerFile(src) as f:
        write_showers(a, f.read(0, 3))
        write_showers(b, f.read(3, 7))
        whole = f.read(0, 7)
    data = TrainingData.from_files([a, b])
    assert len(data) == 7
    np.testing.assert_array_equal(data.offsets.numpy(), whole.offsets)
    np.testing.assert_array_equal(data.points.numpy(), whole.points)
    assert len(TrainingData.from_files([a, b], limit=5)) == 5


def test_layer_batch_rows_carry_the_whole_layer(layer_bundle, shared) -> None:  # noqa: ANN001
    """Rows are (shower, layer) with the full n_l and E_l as conditions, also from a point subset."""
    model = load_point_model(layer_bundle / "teacher.pt")
    norm = model.normaliser
    assert norm.per_layer and norm.n_features == 3
    with ShowerFile(shared("g4_photons_train.h5")) as f:
        showers = f.read(0, 5)
    data = TrainingData(showers.points, showers.offsets, showers.incident_energy_gev)
    idx = torch.tensor([4, 0, 4])
    batch = data.layer_batch(
        idx, norm, rotate=True, jitter=True, points_per_shower=100, generator=torch.Generator().manual_seed(0)
    )
    kept = batch.offsets.diff()
    assert batch.x.shape == (int(kept.sum()), 3) and torch.all(kept <= data.n_points[idx])
    # about 100 points per shower (binomial): far fewer than the ~1000-3000 of a shower
    assert 50 < float(kept.float().mean()) < 150
    n_l, e_l = data.layer_totals(N_LAYERS)
    one_hot = batch.cond.features[:, 4:]
    row_layer = one_hot.argmax(1)
    assert torch.equal(one_hot.sum(1), torch.ones(len(one_hot)))
    # every point sits in a row of its own shower, whose ln(n_l) is that of the whole layer
    row_shower = torch.zeros(len(one_hot), dtype=torch.long)
    row_shower[batch.cond.shower_index] = batch.showers.shower_index
    expect = (n_l[idx[row_shower], row_layer].log() - norm.log_n_layer_mean) / norm.log_n_layer_std
    torch.testing.assert_close(batch.cond.features[:, 2], expect)


def test_sample_layers_gives_the_asked_counts_in_layer_order(layer_bundle) -> None:  # noqa: ANN001
    model = load_point_model(layer_bundle / "cm.pt")
    counts = torch.zeros(2, N_LAYERS, dtype=torch.long)
    counts[0, [0, 3, 29]] = torch.tensor([5, 40, 2])
    counts[1, 10] = 7
    energy_l = counts.float() * 0.3
    pts, offsets = model.sample_layers(
        counts, energy_l, torch.tensor([20.0, 80.0]), generator=torch.Generator().manual_seed(1)
    )
    assert offsets.tolist() == [0, 47, 54] and pts.shape == (54, 4) and torch.isfinite(pts).all()
    assert pts[:47, 2].tolist() == [0.0] * 5 + [3.0] * 40 + [29.0] * 2 and pts[47:, 2].tolist() == [10.0] * 7
    assert (pts[:, 3] > 0).all()
    with pytest.raises(CaloCloudsError, match="per layer"):
        model.sample(torch.tensor([10]), torch.tensor([50.0]))
    with pytest.raises(CaloCloudsError, match=r"must be \(2, 30\)"):
        model.sample_layers(counts[:, :5], energy_l[:, :5], torch.tensor([20.0, 80.0]))


@pytest.mark.parametrize("model_part", ["cm", "teacher"])
def test_generated_layers_are_the_flows(layer_bundle, model_part) -> None:  # noqa: ANN001
    gen = ShowerGenerator(load_bundle(layer_bundle), model_part=model_part, steps=None if model_part == "cm" else 3)
    assert gen.point_model.per_layer
    energies = np.array([15.0, 50.0, 85.0], np.float32)
    showers = gen.generate(energies, generator=torch.Generator().manual_seed(3))
    assert showers.check_values() is None
    stats = gen.flow.sample(torch.as_tensor(energies), generator=torch.Generator().manual_seed(3))
    counts = np.stack([np.bincount(s.points[:, 2].astype(int), minlength=N_LAYERS) for s in showers])
    np.testing.assert_array_equal(counts, stats.points_per_layer.numpy())  # uncalibrated bundle: exact
    np.testing.assert_allclose(showers.layer_sums(N_LAYERS), stats.energy_per_layer_mev.numpy(), rtol=1e-3, atol=1e-3)
    for s in showers:  # DDML order: ascending layer within each shower
        assert np.all(np.diff(s.points[:, 2]) >= 0)
