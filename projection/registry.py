"""Geometry names and kinds: ``get_geometry("ild" | "ild-real" | "hgcal" | "hex:PITCH_MM" | FILE)``.

Named geometries are built on request (nothing is read or built at import time). ``ild-real`` and
``hgcal`` read their cell files from the shared data folder: ``$CALOCLOUDS_DATA`` if set, else
``../shared/data`` next to the package checkout; pass ``data_dir`` to choose another folder.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

from projection.errors import ProjectionError
from projection.geometry import Geometry

__all__ = ["get_geometry", "GEOMETRY_NAMES", "KINDS", "default_data_dir"]

GEOMETRY_NAMES = ("ild", "ild-real", "hgcal", "hex:PITCH_MM", "square:PITCH_MM")
ILD_REAL_FILE = "ild_ecal_barrel_cells.npz"
HGCAL_FILE = "hgcal_ce_e_26layers.npz"


class _LazyKinds(dict):
    """kind name -> module with ``assign`` and ``REQUIRED_TABLES`` (imported on first use)."""

    _MODULES = {
        "square_grid": "projection.square",
        "square_cells": "projection.ildreal",
        "hex_lattice": "projection.hexgrid",
        "hgcal": "projection.hgcal",
        "voronoi": "projection.voronoi",
    }

    def __missing__(self, key: str) -> ModuleType:
        if key not in self._MODULES:
            raise KeyError(key)
        module = importlib.import_module(self._MODULES[key])
        self[key] = module
        return module

    def __contains__(self, key: object) -> bool:
        return key in self._MODULES

    def __iter__(self):  # type: ignore[override]
        return iter(self._MODULES)


KINDS: dict[str, ModuleType] = _LazyKinds()


def default_data_dir() -> Path:
    """``$CALOCLOUDS_DATA`` or ``../shared/data`` relative to the checkout holding this package."""
    env = os.environ.get("CALOCLOUDS_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def get_geometry(spec: str | Path, *, data_dir: str | Path | None = None) -> Geometry:
    """A geometry from its name or a geometry file.

    Args:
        spec: ``"ild"`` (square grid, 5.088 mm, 30 layers), ``"ild-real"`` (the real ILD ECAL barrel
            cells with gaps and dead areas), ``"hgcal"`` (CMS HGCal CE-E, 26 layers),
            ``"hex:PITCH_MM"`` (flat-top hexagonal lattice of that pitch on the 30 ILD layers;
            ``hex:PITCH_MM:pointy`` for pointy-top), ``"square:PITCH_MM[:EVERY:GAP_MM]"`` (square grid
            on the 30 ILD layers, edges at multiples of the pitch from 0, optionally a gap of GAP_MM after
            every EVERY cells), or the path of a ``.npz`` geometry file.
        data_dir: folder with the shared data files (for ``ild-real`` and ``hgcal``).

    Raises:
        ProjectionError: unknown name (the message lists the valid names).
        InputFileError: a geometry or data file is missing or malformed.
    """
    text = str(spec)
    folder = Path(data_dir) if data_dir is not None else default_data_dir()
    if text == "ild":
        from projection.square import ild_grid

        return ild_grid()
    if text == "ild-real":
        from projection.ildreal import load_ild_real

        return load_ild_real(folder / ILD_REAL_FILE)
    if text == "hgcal":
        from projection.hgcal import load_hgcal

        return load_hgcal(folder / HGCAL_FILE)
    if text.startswith("square:"):
        from projection.square import square_geometry_from_spec

        return square_geometry_from_spec(text)
    if text.startswith("hex:"):
        from projection.hexgrid import hex_geometry_from_spec

        return hex_geometry_from_spec(text)
    path = Path(text)
    if path.suffix == ".npz" or path.exists():
        from projection.geometry import load_geometry

        return load_geometry(path)
    msg = (
        f"unknown geometry {text!r}; valid names: {', '.join(GEOMETRY_NAMES)}, "
        "or the path of a .npz geometry file"
    )
    raise ProjectionError(msg)
