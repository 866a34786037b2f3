"""Voxelised alternative to the point-cloud model: cylindrical meshes, CaloChallenge I/O, GLaM and
a CaloDiffusion-style U-Net trained with the package's EDM preconditioning and samplers.

* ``mesh``: :class:`CylindricalMesh` (layers x alpha x r, per-layer radial edges).
* ``voxelize``: points <-> voxels (:func:`voxelize`, :func:`voxels_to_points`, :class:`VoxelShowers`).
* ``calochallenge``: read/write CaloChallenge HDF5.
* ``glam``: sparse learnable maps between an irregular binning and a regular cylinder.
* ``unet``, ``preprocessing``, ``layers``, ``training``, ``model``: the voxel diffusion model.

Only the data-side names are imported here; the model modules import torch networks on use.
"""

from __future__ import annotations

from caloclouds.voxel.calochallenge import read_calochallenge, write_calochallenge
from caloclouds.voxel.mesh import CylindricalMesh, calochallenge_ds1_like, calochallenge_ds2_like, get_mesh
from caloclouds.voxel.voxelize import VoxelShowers, voxelize, voxels_to_points

__all__ = [
    "CylindricalMesh",
    "VoxelShowers",
    "calochallenge_ds1_like",
    "calochallenge_ds2_like",
    "get_mesh",
    "read_calochallenge",
    "voxelize",
    "voxels_to_points",
    "write_calochallenge",
]
