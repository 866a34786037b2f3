"""Cylindrical voxel meshes around the shower axis: layers x angular bins x radial bins.

A mesh is pure data: for every layer, its radial bin edges (mm) and its number of angular bins.
Angles are ``alpha = atan2(y, x)`` in [-pi, pi), binned uniformly from -pi, as in the CaloChallenge
``HighLevelFeatures`` (alpha bin centres are the midpoints of ``linspace(-pi, pi, n_alpha + 1)``).
The voxels of a shower are flattened in (layer, alpha, r) order; layer ``l`` owns the flat range
``layer_offsets[l]:layer_offsets[l+1]`` (CaloChallenge's ``bin_edges``), so a regular mesh reshapes
to ``(N, n_layers, n_alpha, n_r)``.

References:
    Giannelli, Kasieczka, Krause, Nachman, Salamani, Shih, Zaborowska, "Fast Calorimeter
    Simulation Challenge 2022" (CaloChallenge), datasets 1-3 binning.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from caloclouds.errors import ConfigError
from caloclouds.showers import shower_index

__all__ = [
    "CylindricalMesh",
    "DS2_N_ALPHA",
    "DS2_N_R",
    "DS2_R_PITCH_MM",
    "calochallenge_ds2_like",
    "calochallenge_ds1_like",
    "get_mesh",
]

DS2_N_ALPHA = 16  # CaloChallenge dataset 2: angular bins per layer.
DS2_N_R = 9  # ... radial bins per layer.
DS2_R_PITCH_MM = 4.65  # ... radial bin width (mm), edges 0 to 41.85 mm.
N_LAYERS_DEFAULT = 30  # Silicon layers of the ILD-like ECAL of ../shared/data.


@dataclass(frozen=True)
class CylindricalMesh:
    """Per-layer cylindrical binning: ``r_edges_mm[l]`` (n_r_l + 1 edges) and ``n_alpha[l]`` bins.

    Args:
        r_edges_mm: one strictly increasing tuple of radial edges (mm) per layer, starting at 0.
        n_alpha: number of angular bins of each layer (>= 1).
        name: free text, written to outputs.
    """

    r_edges_mm: tuple[tuple[float, ...], ...]
    n_alpha: tuple[int, ...]
    name: str = "custom"

    def __post_init__(self) -> None:
        edges = tuple(tuple(float(e) for e in layer) for layer in self.r_edges_mm)
        n_alpha = tuple(int(a) for a in self.n_alpha)
        object.__setattr__(self, "r_edges_mm", edges)
        object.__setattr__(self, "n_alpha", n_alpha)
        if not edges:
            raise ConfigError("mesh.r_edges_mm must have at least one layer")
        if len(n_alpha) != len(edges):
            msg = f"mesh.n_alpha has {len(n_alpha)} entries but mesh.r_edges_mm has {len(edges)} layers"
            raise ConfigError(msg)
        for layer, e in enumerate(edges):
            if len(e) < 2 or e[0] != 0.0 or any(b <= a for a, b in zip(e, e[1:])):
                msg = f"mesh.r_edges_mm[{layer}] must start at 0 and increase strictly, got {list(e)}"
                raise ConfigError(msg)
        bad = [a for a in n_alpha if a < 1]
        if bad:
            raise ConfigError(f"mesh.n_alpha must be >= 1 for every layer, got {list(n_alpha)}")

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def regular(
        cls, n_layers: int, n_alpha: int, r_edges_mm: Sequence[float], *, name: str = "regular"
    ) -> CylindricalMesh:
        """The same binning in every layer."""
        return cls(tuple(tuple(r_edges_mm) for _ in range(n_layers)), (n_alpha,) * n_layers, name)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CylindricalMesh:
        """Inverse of :meth:`to_dict`; a single edge list or alpha count applies to every layer."""
        if not isinstance(data, dict):
            raise ConfigError(f"a mesh must be a mapping, got {type(data).__name__}")
        allowed = {"r_edges_mm", "n_alpha", "n_layers", "name"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ConfigError(f"unknown mesh key(s) {unknown}; valid keys are {sorted(allowed)}")
        if "r_edges_mm" not in data or "n_alpha" not in data:
            raise ConfigError("a mesh needs 'r_edges_mm' and 'n_alpha'")
        edges, n_alpha = data["r_edges_mm"], data["n_alpha"]
        per_layer_edges = bool(edges) and isinstance(edges[0], (list, tuple))
        n_layers = data.get("n_layers")
        if n_layers is None:
            n_layers = len(edges) if per_layer_edges else len(n_alpha) if isinstance(n_alpha, (list, tuple)) else None
        if n_layers is None:
            raise ConfigError("a mesh with one edge list and one alpha count needs 'n_layers'")
        if not per_layer_edges:
            edges = [edges] * n_layers
        if not isinstance(n_alpha, (list, tuple)):
            n_alpha = [n_alpha] * n_layers
        return cls(tuple(tuple(e) for e in edges), tuple(n_alpha), str(data.get("name", "custom")))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists), safe for YAML, JSON and checkpoints."""
        return {"name": self.name, "r_edges_mm": [list(e) for e in self.r_edges_mm], "n_alpha": list(self.n_alpha)}

    @classmethod
    def load(cls, path: str | Path) -> CylindricalMesh:
        """Read a mesh from a YAML or JSON file (see :meth:`from_dict` for the keys)."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: mesh file not found")
        try:
            text = path.read_text()
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.').upper() or 'YAML'} ({exc})") from None
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def save(self, path: str | Path) -> None:
        """Write the mesh as YAML (or JSON when the suffix is .json), atomically."""
        import yaml

        from caloclouds.io.atomic import atomic_path

        path = Path(path)
        with atomic_path(path) as tmp:
            data = self.to_dict()
            tmp.write_text(
                json.dumps(data, indent=1) if path.suffix == ".json" else yaml.safe_dump(data, sort_keys=False)
            )

    # -- sizes ----------------------------------------------------------------------------------

    @property
    def n_layers(self) -> int:
        return len(self.n_alpha)

    @property
    def n_r(self) -> tuple[int, ...]:
        """Radial bins of each layer."""
        return tuple(len(e) - 1 for e in self.r_edges_mm)

    @property
    def voxels_per_layer(self) -> np.ndarray:
        """(L,) int64 number of voxels of each layer."""
        return np.array([a * r for a, r in zip(self.n_alpha, self.n_r)], dtype=np.int64)

    @property
    def layer_offsets(self) -> np.ndarray:
        """(L+1,) int64: layer l owns flat voxels ``layer_offsets[l]:layer_offsets[l+1]``."""
        return np.concatenate([[0], np.cumsum(self.voxels_per_layer)]).astype(np.int64)

    @property
    def n_voxels(self) -> int:
        return int(self.voxels_per_layer.sum())

    @property
    def is_regular(self) -> bool:
        """True if every layer has the same edges and alpha bins (the mesh is an image)."""
        return len(set(self.r_edges_mm)) == 1 and len(set(self.n_alpha)) == 1

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(n_layers, n_alpha, n_r)`` of a regular mesh."""
        if not self.is_regular:
            raise ValueError(f"mesh {self.name!r} is irregular (per-layer binning): it has no image shape")
        return self.n_layers, self.n_alpha[0], self.n_r[0]

    @property
    def r_max_mm(self) -> float:
        return max(e[-1] for e in self.r_edges_mm)

    # -- per-voxel tables (flat, in (layer, alpha, r) order) ------------------------------------

    def voxel_table(self) -> dict[str, np.ndarray]:
        """Per-voxel arrays of length ``n_voxels``.

        Returns:
            dict with ``layer``, ``alpha_bin``, ``r_bin`` (int64), ``r_lo_mm``, ``r_hi_mm``,
            ``alpha_lo_rad``, ``alpha_hi_rad`` (float64).
        """
        offsets = self.layer_offsets
        layer = shower_index(offsets)  # the layer of every voxel
        local = np.arange(self.n_voxels, dtype=np.int64) - offsets[layer]
        n_r = np.asarray(self.n_r, dtype=np.int64)[layer]
        n_a = np.asarray(self.n_alpha, dtype=np.int64)[layer]
        alpha_bin, r_bin = local // n_r, local % n_r
        edge_start = np.concatenate([[0], np.cumsum(np.asarray(self.n_r) + 1)])[:-1]
        flat_edges = np.concatenate([np.asarray(e) for e in self.r_edges_mm])
        r_lo = flat_edges[edge_start[layer] + r_bin]
        r_hi = flat_edges[edge_start[layer] + r_bin + 1]
        width = 2 * np.pi / n_a
        alpha_lo = -np.pi + alpha_bin * width
        return {
            "layer": layer,
            "alpha_bin": alpha_bin,
            "r_bin": r_bin,
            "r_lo_mm": r_lo,
            "r_hi_mm": r_hi,
            "alpha_lo_rad": alpha_lo,
            "alpha_hi_rad": alpha_lo + width,
        }

    def voxel_centres(self) -> dict[str, np.ndarray]:
        """Per-voxel centre: ``r_mm`` (radial midpoint), ``alpha_rad`` (angular midpoint), ``x_mm``, ``y_mm``, ``layer``.

        Layers with a single alpha bin put the centre on the axis side at alpha = 0 (x = r, y = 0);
        the innermost bin of such a layer sits at x = r_mid as well.
        """
        t = self.voxel_table()
        r = (t["r_lo_mm"] + t["r_hi_mm"]) / 2
        alpha = (t["alpha_lo_rad"] + t["alpha_hi_rad"]) / 2
        return {
            "r_mm": r,
            "alpha_rad": alpha,
            "x_mm": r * np.cos(alpha),
            "y_mm": r * np.sin(alpha),
            "layer": t["layer"],
        }

    def voxel_area_mm2(self) -> np.ndarray:
        """(n_voxels,) transverse area of each voxel in mm^2."""
        t = self.voxel_table()
        return (t["alpha_hi_rad"] - t["alpha_lo_rad"]) * (t["r_hi_mm"] ** 2 - t["r_lo_mm"] ** 2) / 2

    def __repr__(self) -> str:
        kind = "x".join(map(str, self.shape)) if self.is_regular else "irregular"
        return f"CylindricalMesh({self.name!r}, {self.n_layers} layers, {kind}, {self.n_voxels} voxels, r <= {self.r_max_mm:g} mm)"


# -- named meshes ---------------------------------------------------------------------------------


def calochallenge_ds2_like(n_layers: int = N_LAYERS_DEFAULT) -> CylindricalMesh:
    """CaloChallenge dataset-2 binning (16 alpha x 9 r bins of 4.65 mm) on ``n_layers`` layers."""
    edges = tuple(DS2_R_PITCH_MM * i for i in range(DS2_N_R + 1))
    return CylindricalMesh.regular(n_layers, DS2_N_ALPHA, edges, name="calochallenge-ds2-like")


# Dataset-1 photon binning patterns (n_alpha, r edges in mm), adapted to our 30 Si-W layers, whose
# Moliere radius (~10-15 mm with the silicon gaps) is much smaller than ATLAS's. DS1 photons have a
# presampler-like layer with 8 r x 1 alpha, two fine layers with 16 and 19 r x 10 alpha, and coarse
# 5 r x 1 alpha back layers; we use the same patterns for the front, middle and back of our stack.
_DS1_PATTERNS: dict[str, tuple[int, tuple[float, ...]]] = {
    "front": (1, (0.0, 2.0, 4.0, 7.0, 10.0, 15.0, 25.0, 40.0, 80.0)),
    "fine": (10, (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.5, 8.0, 10.0, 12.0, 14.0, 17.0, 20.0, 25.0, 30.0, 40.0, 60.0)),
    "finer": (
        10,
        (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.5, 10.0, 12.0, 14.0, 16.0, 19.0, 22.0, 26.0, 30.0, 36.0, 45.0, 60.0),
    ),
    "back": (1, (0.0, 5.0, 10.0, 20.0, 35.0, 60.0)),
}
_DS1_LAYER_PATTERN = ("front",) * 3 + ("fine",) * 9 + ("finer",) * 10 + ("back",) * 8


def calochallenge_ds1_like() -> CylindricalMesh:
    """An irregular CaloChallenge dataset-1-photon-like binning of our 30 layers (3404 voxels).

    Layers 0-2: 8 r x 1 alpha; 3-11: 16 r x 10 alpha; 12-21: 19 r x 10 alpha; 22-29: 5 r x 1 alpha,
    with radial edges up to 60-80 mm (unequal widths, finer near the axis).
    """
    patterns = [_DS1_PATTERNS[p] for p in _DS1_LAYER_PATTERN]
    return CylindricalMesh(tuple(e for _, e in patterns), tuple(a for a, _ in patterns), name="calochallenge-ds1-like")


_NAMED = {"ds2": calochallenge_ds2_like, "ds1": calochallenge_ds1_like}


def get_mesh(spec: str | Path | CylindricalMesh) -> CylindricalMesh:
    """A mesh by name (``"ds2"``: the default regular cylinder, ``"ds1"``: the irregular one) or a YAML/JSON file."""
    if isinstance(spec, CylindricalMesh):
        return spec
    key = str(spec).lower()
    if key in _NAMED:
        return _NAMED[key]()
    path = Path(spec)
    if path.suffix in (".yaml", ".yml", ".json") or path.exists():
        return CylindricalMesh.load(path)
    raise ConfigError(f"unknown mesh {str(spec)!r}; use one of {sorted(_NAMED)} or a .yaml/.json file")
