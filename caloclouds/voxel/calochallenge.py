"""CaloChallenge HDF5 files: ``incident_energies`` (N, 1) and ``showers`` (N, n_voxels), in MeV.

The voxels are flattened in (layer, alpha, r) order, so ``showers.reshape(N, L, A, R)`` recovers the
image of a regular mesh. Files we write also carry the mesh as a JSON attribute ``mesh`` of the
file, so they read back without naming the mesh; files without it (the official datasets) need
``mesh=`` or a voxel count that matches one of the named meshes.

References:
    CaloChallenge 2022 data format, https://calochallenge.github.io/homepage/ (datasets 1-3).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from caloclouds.io.atomic import AtomicWriter, rename_unless_signalled, temp_path_for
from caloclouds.io.writers import writer_format
from caloclouds.errors import InputFileError
from caloclouds.voxel.mesh import CylindricalMesh, calochallenge_ds1_like, calochallenge_ds2_like
from caloclouds.voxel.voxelize import VoxelShowers

__all__ = [
    "CaloChallengeWriter",
    "calochallenge_to_points",
    "is_calochallenge_hdf5",
    "read_calochallenge",
    "voxelize_file",
    "write_calochallenge",
]

MEV_PER_GEV = 1000.0
_KEYS = ("incident_energies", "showers")
_CHUNK_SHOWERS = 256


def is_calochallenge_hdf5(path: str | Path) -> bool:
    """True if ``path`` is an HDF5 file with ``incident_energies`` and ``showers``."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return all(k in f for k in _KEYS)
    except OSError:
        return False


def _mesh_for(path: Path, f: Any, n_voxels: int, mesh: CylindricalMesh | None) -> CylindricalMesh:
    if mesh is None and "mesh" in f.attrs:
        try:
            mesh = CylindricalMesh.from_dict(json.loads(f.attrs["mesh"]))
        except (ValueError, TypeError) as exc:
            raise InputFileError(path, f"attribute 'mesh' is not a valid mesh: {exc}") from None
    if mesh is None:
        known = [
            m
            for m in (calochallenge_ds2_like(), calochallenge_ds2_like(45), calochallenge_ds1_like())
            if m.n_voxels == n_voxels
        ]
        if not known:
            msg = f"has {n_voxels} voxels per shower and no 'mesh' attribute; pass the mesh (--mesh FILE)"
            raise InputFileError(path, msg, where="showers")
        mesh = known[0]
    if mesh.n_voxels != n_voxels:
        msg = f"has {n_voxels} voxels per shower but the mesh {mesh!r} has {mesh.n_voxels}"
        raise InputFileError(path, msg, where="showers")
    return mesh


def read_calochallenge(
    path: str | Path,
    *,
    mesh: CylindricalMesh | None = None,
    start: int = 0,
    stop: int | None = None,
) -> VoxelShowers:
    """Read showers ``start:stop`` of a CaloChallenge file.

    Args:
        path: the HDF5 file.
        mesh: the binning; default: the file's ``mesh`` attribute, else the named mesh with the
            same number of voxels.
        start, stop: shower range.

    Returns:
        :class:`VoxelShowers` (incident energies converted to GeV).

    Raises:
        InputFileError: missing file or dataset, wrong shapes, NaN or negative energies.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "file not found")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputFileError(path, f"not a readable HDF5 file: {exc}") from None
    with f:
        missing = [k for k in _KEYS if k not in f]
        if missing:
            raise InputFileError(
                path, f"missing dataset(s) {missing}; a CaloChallenge file has {list(_KEYS)}, found {sorted(f)}"
            )
        inc, sh = f["incident_energies"], f["showers"]
        if sh.ndim != 2:
            raise InputFileError(path, f"has shape {sh.shape}, expected (N, n_voxels)", where="showers")
        if inc.shape not in ((sh.shape[0], 1), (sh.shape[0],)):
            raise InputFileError(path, f"has shape {inc.shape}, expected ({sh.shape[0]}, 1)", where="incident_energies")
        mesh = _mesh_for(path, f, sh.shape[1], mesh)
        energy = np.asarray(sh[start:stop], dtype=np.float32)
        inc_mev = np.asarray(inc[start:stop], dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(energy)):
        row = int(np.argmax(~np.isfinite(energy).all(axis=1))) + start
        raise InputFileError(path, f"shower {row} has NaN or inf voxel energies", where="showers")
    if np.any(energy < 0):
        row = int(np.argmax((energy < 0).any(axis=1))) + start
        raise InputFileError(path, f"shower {row} has negative voxel energies", where="showers")
    if not np.all(np.isfinite(inc_mev)) or np.any(inc_mev <= 0):
        raise InputFileError(path, "incident energies must be finite and > 0 (MeV)", where="incident_energies")
    return VoxelShowers(energy, (inc_mev / MEV_PER_GEV).astype(np.float32), mesh)


class CaloChallengeWriter(AtomicWriter):
    """Append :class:`VoxelShowers` chunks to a CaloChallenge file; renamed into place on close.

    Args:
        path: output file.
        mesh: the binning of every chunk (stored as the JSON attribute ``mesh``).
        attrs: extra file attributes.
        compression_level: gzip level.
    """

    def __init__(
        self,
        path: str | Path,
        mesh: CylindricalMesh,
        *,
        attrs: dict[str, Any] | None = None,
        compression_level: int = 4,
    ) -> None:
        import h5py

        writer_format(path, "hdf5")  # .h5 or .hdf5, or a one-line error naming the file
        self.path = Path(path)
        self.mesh = mesh
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = temp_path_for(self.path)
        self._file = h5py.File(self._tmp, "w")
        self._file.attrs["mesh"] = json.dumps(mesh.to_dict())
        self._file.attrs["energy_unit"] = "MeV"
        self._file.attrs["voxel_order"] = "layer, alpha, r"
        self.update_attrs(attrs or {})
        v = mesh.n_voxels
        gz = {"compression": "gzip", "compression_opts": compression_level}
        self._inc = self._file.create_dataset(
            "incident_energies", (0, 1), maxshape=(None, 1), dtype="f4", chunks=(4096, 1), **gz
        )
        self._sh = self._file.create_dataset(
            "showers", (0, v), maxshape=(None, v), dtype="f4", chunks=(min(_CHUNK_SHOWERS, 4096), v), **gz
        )
        self.n_showers = 0

    def update_attrs(self, attrs: dict[str, Any]) -> None:
        """Add or replace file attributes before the file closes."""
        for key, value in attrs.items():
            self._file.attrs[key] = value

    def write(self, voxels: VoxelShowers, cells: Any | None = None) -> None:
        """Append a chunk (the writer protocol of :mod:`caloclouds.io.writers`, ``ShowerSink``); cell hits are refused."""
        if cells is not None:
            from caloclouds.errors import CaloCloudsError

            raise CaloCloudsError(
                f"{self.path}: a CaloChallenge file stores voxel energies only, not cell hits; "
                "write the cells to a .h5 or .root shower file"
            )
        if not isinstance(voxels, VoxelShowers):
            raise TypeError(
                f"{self.path}: a CaloChallenge file stores VoxelShowers, got {type(voxels).__name__} "
                "(voxelise point showers first: caloclouds voxelize)"
            )
        if voxels.mesh.n_voxels != self.mesh.n_voxels:
            raise ValueError(f"chunk has {voxels.mesh.n_voxels} voxels per shower, the file has {self.mesh.n_voxels}")
        n0, n = self.n_showers, len(voxels)
        self._inc.resize(n0 + n, axis=0)
        self._sh.resize(n0 + n, axis=0)
        self._inc[n0:] = (voxels.incident_energy_gev.astype(np.float64) * MEV_PER_GEV)[:, None]
        self._sh[n0:] = voxels.energy_mev
        self.n_showers += n

    def close(self) -> None:
        if self._file.id.valid:
            self._file.close()
            rename_unless_signalled(self._tmp, self.path)

    def abort(self) -> None:
        if self._file.id.valid:
            self._file.close()
        if self._tmp.exists():
            self._tmp.unlink()


def write_calochallenge(path: str | Path, voxels: VoxelShowers, *, attrs: dict[str, Any] | None = None) -> None:
    """Write ``voxels`` to a CaloChallenge file atomically (incident energies in MeV)."""
    with CaloChallengeWriter(path, voxels.mesh, attrs=attrs) as writer:
        writer.write(voxels)


def voxelize_file(
    path: str | Path,
    out: str | Path,
    mesh: CylindricalMesh,
    *,
    chunk_showers: int = 1000,
    max_showers: int | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Voxelise a shower file (our HDF5) into a CaloChallenge file, chunk by chunk.

    Returns:
        summary: ``n_showers``, ``visible_mev`` (summed over showers), ``outside_fraction``
        (energy outside the mesh / visible energy).
    """
    from tqdm import tqdm

    from caloclouds.io.hdf5 import ShowerFile
    from caloclouds.voxel.voxelize import voxelize

    visible = outside = 0.0
    with ShowerFile(path) as f:
        stop = len(f) if max_showers is None else min(len(f), max_showers)
        with CaloChallengeWriter(out, mesh, attrs={"source": str(path)}) as writer:
            for start in tqdm(range(0, stop, chunk_showers), disable=not progress, unit="chunk"):
                showers = f.read(start, min(stop, start + chunk_showers))
                voxels = voxelize(showers, mesh)
                writer.write(voxels)
                visible += float(showers.visible_energy_mev().sum())
                outside += float(voxels.outside_mev.sum())  # type: ignore[union-attr]
    return {"n_showers": float(stop), "visible_mev": visible, "outside_fraction": outside / visible if visible else 0.0}


def calochallenge_to_points(
    path: str | Path,
    out: str | Path,
    *,
    mesh: CylindricalMesh | None = None,
    mode: str = "centre",
    points_per_voxel: int = 1,
    threshold_mev: float = 0.0,
    chunk_showers: int = 1000,
    seed: int = 0,
) -> int:
    """Write the showers of a CaloChallenge file as points (our HDF5); returns the number of showers."""
    import h5py

    from caloclouds.io.hdf5 import ShowerWriter
    from caloclouds.voxel.voxelize import voxels_to_points

    rng = np.random.default_rng(seed)
    mesh = read_calochallenge(path, mesh=mesh, stop=0).mesh  # checks the file and the mesh first
    with h5py.File(path, "r") as f:
        n = len(f["showers"])
    with ShowerWriter(out, attrs={"source": str(path), "voxel_to_points": mode}) as writer:
        for start in range(0, n, chunk_showers):
            voxels = read_calochallenge(path, mesh=mesh, start=start, stop=start + chunk_showers)
            writer.write(
                voxels_to_points(
                    voxels, mode=mode, points_per_voxel=points_per_voxel, threshold_mev=threshold_mev, rng=rng
                )
            )  # type: ignore[arg-type]
    return n
