"""GLaM: sparse overlap-initialised maps that conserve the energy of every layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from caloclouds.io.hdf5 import ShowerFile
from caloclouds.voxel.glam import GLaM, overlap_pairs
from caloclouds.voxel.mesh import CylindricalMesh, calochallenge_ds1_like, calochallenge_ds2_like
from caloclouds.voxel.voxelize import voxelize


@pytest.fixture(scope="module")
def glam() -> GLaM:
    return GLaM(calochallenge_ds1_like(), calochallenge_ds2_like())


def _layer_sums(x: torch.Tensor, mesh: CylindricalMesh) -> np.ndarray:
    return np.add.reduceat(x.detach().double().numpy(), mesh.layer_offsets[:-1], axis=1)


def test_encode_decode_conserves_layer_energy(shared, glam: GLaM) -> None:
    with ShowerFile(shared("g4_photons_val_fixed.h5")) as f:
        showers = f.take(np.array([0, 1, 250, 251, 500, 501]))
    voxels = voxelize(showers, glam.irregular)  # DS1-like binning of real Geant4 showers
    x = torch.from_numpy(voxels.energy_mev).double()
    latent = glam.encode(x)
    back = glam.decode(latent)
    expected = voxels.layer_sums()
    np.testing.assert_allclose(_layer_sums(latent, glam.regular), expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(_layer_sums(back, glam.irregular), expected, rtol=1e-5, atol=1e-4)
    assert back.min() >= 0


def test_stored_sparsely(glam: GLaM) -> None:
    dense = glam.irregular.n_voxels * glam.regular.n_voxels
    assert glam.encoder.nnz < dense / 100
    sparse = glam.encoder.to_sparse_coo()
    assert sparse.is_sparse and sparse.shape == (4320, 3404)
    # every irregular voxel is fully distributed at initialisation
    np.testing.assert_allclose(sparse.to_dense().sum(0).numpy(), 1.0, rtol=1e-5)
    assert all(p.dim() == 1 for p in glam.parameters())


def test_single_alpha_layers_spread_evenly(glam: GLaM) -> None:
    # layer 0 of the DS1-like mesh has one alpha bin: its first r bin (0-2 mm) goes to 16 alpha bins
    enc = glam.encoder.to_sparse_coo().to_dense()
    column = enc[:, 0]
    assert int((column > 0).sum()) == 16
    np.testing.assert_allclose(column[column > 0].numpy(), 1 / 16, rtol=1e-5)


def test_identical_meshes_give_identity() -> None:
    mesh = calochallenge_ds2_like(3)
    src, dst, _ = overlap_pairs(mesh, mesh)
    assert np.array_equal(src, dst) and len(src) == mesh.n_voxels


def test_trained_maps_still_conserve_energy() -> None:
    ds1 = calochallenge_ds1_like()
    layers = [0, 5, 15, 25]  # one layer of each DS1-like pattern
    irregular = CylindricalMesh(tuple(ds1.r_edges_mm[i] for i in layers), tuple(ds1.n_alpha[i] for i in layers))
    glam = GLaM(irregular, calochallenge_ds2_like(len(layers)), trainable=True)
    opt = torch.optim.SGD(glam.parameters(), lr=10.0)
    x = torch.rand(4, glam.irregular.n_voxels)
    target = torch.rand(4, glam.regular.n_voxels)
    loss = (glam.encode(x) - target).pow(2).mean() + glam.decode(target).pow(2).mean()
    loss.backward()
    assert glam.encoder.logits.grad is not None and glam.encoder.logits.grad.abs().sum() > 0
    opt.step()
    np.testing.assert_allclose(
        _layer_sums(glam.decode(glam.encode(x)), glam.irregular), _layer_sums(x, glam.irregular), rtol=1e-5
    )


def test_layer_count_mismatch() -> None:
    with pytest.raises(ValueError, match="layer to layer"):
        GLaM(calochallenge_ds1_like(), calochallenge_ds2_like(45))
