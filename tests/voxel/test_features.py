"""CaloChallenge high-level features and voxel-space FPD/KPD."""

from __future__ import annotations

import numpy as np

from caloclouds.io.hdf5 import ShowerFile
from caloclouds.evaluation.voxelspace import voxel_space_scores
from caloclouds.voxel.features import high_level_features
from caloclouds.voxel.mesh import calochallenge_ds1_like, calochallenge_ds2_like
from caloclouds.voxel.voxelize import VoxelShowers, voxelize


def test_feature_dimensions() -> None:
    for mesh, dim in ((calochallenge_ds2_like(45), 362), (calochallenge_ds2_like(), 242)):
        v = VoxelShowers(np.ones((2, mesh.n_voxels), np.float32), [10.0, 20.0], mesh)
        assert high_level_features(v).shape == (2, dim)
    ds1 = calochallenge_ds1_like()
    n_alpha_layers = sum(a > 1 for a in ds1.n_alpha)
    v = VoxelShowers(np.ones((1, ds1.n_voxels), np.float32), [10.0], ds1)
    assert high_level_features(v).shape == (1, 2 + 4 * 30 + 4 * n_alpha_layers)


def test_features_of_one_voxel() -> None:
    mesh = calochallenge_ds2_like(1)
    e = np.zeros((1, mesh.n_voxels), np.float32)
    e[0, 4 * 9 + 2] = 5.0  # alpha bin 4, r bin 2
    f = high_level_features(VoxelShowers(e, [1.0], mesh))[0]
    alpha = -np.pi + 4.5 * 2 * np.pi / 16
    r = 2.5 * 4.65
    np.testing.assert_allclose(
        f[:4], [3.0, np.log10(5.0 + 1e-8), r * np.cos(alpha) / 100, r * np.sin(alpha) / 100], rtol=1e-6
    )
    np.testing.assert_allclose(f[-3:], [1 - 1 / 144, r / 100, 0.0], rtol=1e-6, atol=1e-12)


def test_fpd_of_real_showers(shared) -> None:
    with ShowerFile(shared("g4_photons_val_uniform.h5")) as f:
        voxels = voxelize(f.read(0, 200), calochallenge_ds2_like(4))  # the first 4 layers: 34 features
    kw = {"fpd_min_samples": 50, "fpd_max_samples": 100, "kpd_batch_size": 50, "fpd_points": 4, "fpd_batches": 5}
    same = voxel_space_scores(voxels[:100], voxels[100:], **kw)
    shifted = VoxelShowers(voxels.energy_mev[100:] * 1.5, voxels.incident_energy_gev[100:], voxels.mesh)
    worse = voxel_space_scores(voxels[:100], shifted, **kw)
    assert same["n_features"] == 34
    assert worse["fpd_x1e3"] > same["fpd_x1e3"]


def test_voxel_code_does_not_import_the_evaluation() -> None:
    """Issue 16, item 5: the FPD/KPD voxel scoring lives in evaluation/, so voxel/ -> evaluation/ has no edge."""
    import ast
    from pathlib import Path

    import caloclouds.voxel

    offenders = []
    for path in sorted(Path(caloclouds.voxel.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [f"{path.name}: {n}" for n in names if n.startswith("caloclouds.evaluation")]
    assert not offenders, offenders
