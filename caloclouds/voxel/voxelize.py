"""Points <-> voxels on a :class:`CylindricalMesh`, for a whole ragged batch in one call.

:func:`voxelize` sums the energy of every point into its voxel (points outside the mesh, i.e. at
a radius beyond the last edge of their layer or in a layer the mesh lacks, are counted in
``outside_mev``). :func:`voxels_to_points` makes points back from voxels, one (or k) per non-empty
voxel, at the voxel centre or uniformly (in area) inside it, so that voxel showers can go through
projection and evaluation like any point cloud. ``voxelize(voxels_to_points(v))`` gives back ``v``
exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from caloclouds.showers import Showers
from caloclouds.voxel.mesh import CylindricalMesh

__all__ = ["VoxelShowers", "voxel_indices", "voxelize", "voxels_to_points"]

_INSIDE_MARGIN = 1e-4  # Uniform sampling stays this fraction of a bin width away from the voxel edges.


@dataclass
class VoxelShowers:
    """A batch of voxelised showers.

    Args:
        energy_mev: (N, n_voxels) float32 voxel energies in MeV, flat (layer, alpha, r) order.
        incident_energy_gev: (N,) float32.
        mesh: the binning.
        outside_mev: (N,) float64 energy of points that fell outside the mesh (None if unknown).
    """

    energy_mev: np.ndarray
    incident_energy_gev: np.ndarray
    mesh: CylindricalMesh
    outside_mev: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.energy_mev = np.ascontiguousarray(self.energy_mev, dtype=np.float32)
        self.incident_energy_gev = np.ascontiguousarray(self.incident_energy_gev, dtype=np.float32).reshape(-1)
        n = len(self.incident_energy_gev)
        if self.energy_mev.shape != (n, self.mesh.n_voxels):
            msg = f"energy_mev has shape {self.energy_mev.shape}, expected ({n}, {self.mesh.n_voxels}) for mesh {self.mesh!r}"
            raise ValueError(msg)
        if self.outside_mev is not None and len(self.outside_mev) != n:
            raise ValueError(f"outside_mev has {len(self.outside_mev)} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.incident_energy_gev)

    def __getitem__(self, key: int | slice | np.ndarray) -> VoxelShowers:
        idx = np.arange(len(self))[key].reshape(-1)
        out = None if self.outside_mev is None else self.outside_mev[idx]
        return VoxelShowers(self.energy_mev[idx], self.incident_energy_gev[idx], self.mesh, out)

    def images(self) -> np.ndarray:
        """(N, n_layers, n_alpha, n_r) view of a regular mesh."""
        return self.energy_mev.reshape(len(self), *self.mesh.shape)

    def layer_sums(self) -> np.ndarray:
        """(N, n_layers) float64 energy per layer in MeV."""
        e = self.energy_mev.astype(np.float64)
        return (
            np.add.reduceat(e, self.mesh.layer_offsets[:-1], axis=1) if len(self) else np.zeros((0, self.mesh.n_layers))
        )

    def total_mev(self) -> np.ndarray:
        """(N,) float64 summed voxel energy."""
        return self.energy_mev.sum(axis=1, dtype=np.float64)

    @classmethod
    def concatenate(cls, parts: list[VoxelShowers]) -> VoxelShowers:
        if not parts:
            raise ValueError("cannot concatenate an empty list of VoxelShowers")
        outside = None if any(p.outside_mev is None for p in parts) else np.concatenate([p.outside_mev for p in parts])
        return cls(
            np.concatenate([p.energy_mev for p in parts]),
            np.concatenate([p.incident_energy_gev for p in parts]),
            parts[0].mesh,
            outside,
        )


def voxel_indices(x_mm: np.ndarray, y_mm: np.ndarray, layer: np.ndarray, mesh: CylindricalMesh) -> np.ndarray:
    """Flat voxel index of each point (int64), -1 for points outside the mesh.

    Args:
        x_mm, y_mm: transverse position (shower axis at 0).
        layer: layer of each point; ``floor(layer)`` is used, so continuous depths work too.
        mesh: the binning.
    """
    x = np.asarray(x_mm, np.float64)
    y = np.asarray(y_mm, np.float64)
    lay = np.floor(np.asarray(layer, np.float64)).astype(np.int64)
    n_layers = mesh.n_layers
    in_layers = (lay >= 0) & (lay < n_layers)
    lay_c = np.clip(lay, 0, n_layers - 1)
    n_r = np.asarray(mesh.n_r, dtype=np.int64)
    n_a = np.asarray(mesh.n_alpha, dtype=np.int64)
    r = np.hypot(x, y)
    # Radial bin of every layer in one search: shift each layer's edges by layer * span.
    span = 2.0 * mesh.r_max_mm + 1.0
    edges = np.concatenate([np.asarray(e) + i * span for i, e in enumerate(mesh.r_edges_mm)])
    edge_start = np.concatenate([[0], np.cumsum(n_r + 1)])[:-1]
    r_bin = np.searchsorted(edges, lay_c * span + r, side="right") - 1 - edge_start[lay_c]
    inside = in_layers & (r_bin >= 0) & (r_bin < n_r[lay_c]) & np.isfinite(r)
    alpha = np.arctan2(y, x)
    a_bin = np.floor((alpha + np.pi) / (2 * np.pi) * n_a[lay_c]).astype(np.int64) % n_a[lay_c]
    flat = mesh.layer_offsets[lay_c] + a_bin * n_r[lay_c] + r_bin
    return np.where(inside, flat, -1)


def voxelize(showers: Showers, mesh: CylindricalMesh) -> VoxelShowers:
    """Sum the point energies of every shower into the voxels of ``mesh``.

    Args:
        showers: ragged batch; ``layer`` is the (integer or continuous) layer of each point.
        mesh: the binning (the shower axis is x = y = 0).

    Returns:
        :class:`VoxelShowers` with (N, n_voxels) float32 energies and the energy outside the mesh.
    """
    n, v = len(showers), mesh.n_voxels
    flat = voxel_indices(showers.x_mm, showers.y_mm, showers.layer, mesh)
    inside = flat >= 0
    e = showers.e_mev.astype(np.float64)
    shower = showers.shower_index
    sums = np.bincount(shower[inside] * v + flat[inside], weights=e[inside], minlength=n * v)
    outside = np.bincount(shower[~inside], weights=e[~inside], minlength=n)
    return VoxelShowers(sums.reshape(n, v).astype(np.float32), showers.incident_energy_gev, mesh, outside)


def voxels_to_points(
    voxels: VoxelShowers,
    *,
    mode: Literal["centre", "uniform"] = "centre",
    points_per_voxel: int = 1,
    threshold_mev: float = 0.0,
    rng: np.random.Generator | None = None,
) -> Showers:
    """Points from voxels: ``points_per_voxel`` points per voxel with energy > ``threshold_mev``.

    Args:
        voxels: the voxel showers.
        mode: ``"centre"``: at the voxel centre (radial and angular midpoint); ``"uniform"``:
            uniformly in area inside the voxel (needs ``rng``).
        points_per_voxel: points made per voxel; each carries an equal share of its energy.
        threshold_mev: voxels at or below this energy make no points (their energy is dropped).
        rng: random source for ``mode="uniform"``.

    Returns:
        :class:`caloclouds.showers.Showers` with ``layer`` = the voxel's layer index; the
        energy outside the mesh, if known, is kept in ``conditions["outside_mev"]``.
    """
    if mode not in ("centre", "uniform"):
        raise ValueError(f"mode must be 'centre' or 'uniform', got {mode!r}")
    if points_per_voxel < 1:
        raise ValueError(f"points_per_voxel must be >= 1, got {points_per_voxel}")
    if mode == "uniform" and rng is None:
        raise ValueError("mode='uniform' needs rng (a numpy Generator)")
    mesh = voxels.mesh
    energy = voxels.energy_mev
    shower, voxel = np.nonzero(energy > threshold_mev)
    k = points_per_voxel
    counts = np.bincount(shower, minlength=len(voxels)) * k
    voxel = np.repeat(voxel, k)
    e = np.repeat(energy[shower, voxel[::k]] / k, k) if k > 1 else energy[shower, voxel]
    table = mesh.voxel_table()
    if mode == "centre":
        r = (table["r_lo_mm"][voxel] + table["r_hi_mm"][voxel]) / 2
        alpha = (table["alpha_lo_rad"][voxel] + table["alpha_hi_rad"][voxel]) / 2
    else:
        assert rng is not None
        u_r, u_a = rng.uniform(_INSIDE_MARGIN, 1 - _INSIDE_MARGIN, size=(2, len(voxel)))
        r_lo2, r_hi2 = table["r_lo_mm"][voxel] ** 2, table["r_hi_mm"][voxel] ** 2
        r = np.sqrt(r_lo2 + u_r * (r_hi2 - r_lo2))
        alpha = table["alpha_lo_rad"][voxel] + u_a * (table["alpha_hi_rad"][voxel] - table["alpha_lo_rad"][voxel])
    points = np.stack([r * np.cos(alpha), r * np.sin(alpha), table["layer"][voxel], e], axis=1)
    conditions = {} if voxels.outside_mev is None else {"outside_mev": voxels.outside_mev}
    return Showers.from_counts(points.astype(np.float32), counts, voxels.incident_energy_gev, conditions)
