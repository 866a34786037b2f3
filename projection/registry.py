"""Geometry names and kinds: ``get_geometry("ild" | "ild-real" | "hgcal" | "hex:PITCH_MM" | FILE)``.

Named geometries are built on request (nothing is read or built at import time). ``ild-real`` and
``hgcal`` read their cell files from the shared data folder: ``$CALOCLOUDS_DATA`` if set, else
``../shared/data`` next to the package checkout; pass ``data_dir`` to choose another folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from caloclouds.config import ILD_LIKE_DETECTOR, DetectorConfig
from caloclouds.errors import InputFileError
from projection.errors import ProjectionError
from projection.geometry import CELL_ARRAYS, GEOMETRY_FORMAT_VERSION, Geometry, read_npz
from projection.hexgrid import hex_geometry_from_spec
from projection.hgcal import load_hgcal
from projection.ildreal import load_ild_real
from projection.kinds import KINDS
from projection.square import ild_grid, square_geometry_from_spec

__all__ = ["get_geometry", "load_geometry", "GEOMETRY_NAMES", "KINDS", "default_data_dir"]

GEOMETRY_NAMES = ("ild", "ild-real", "hgcal", "hex:PITCH_MM", "square:PITCH_MM")
ILD_REAL_FILE = "ild_ecal_barrel_cells.npz"
HGCAL_FILE = "hgcal_ce_e_26layers.npz"


def default_data_dir() -> Path:
    """``$CALOCLOUDS_DATA`` or ``../shared/data`` relative to the checkout holding this package."""
    env = os.environ.get("CALOCLOUDS_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def get_geometry(
    spec: str | Path, *, detector: DetectorConfig = ILD_LIKE_DETECTOR, data_dir: str | Path | None = None
) -> Geometry:
    """A geometry from its name or a geometry file.

    Args:
        spec: ``"ild"`` (the detector's square grid: 5.088 mm, 30 layers for the ILD-like one),
            ``"ild-real"`` (the real ILD ECAL barrel cells with gaps and dead areas), ``"hgcal"``
            (CMS HGCal CE-E, 26 layers, at the depths of the detector's layers merged by the linear
            map), ``"hex:PITCH_MM"`` (flat-top hexagonal lattice of that pitch on the detector's
            layers; ``hex:PITCH_MM:pointy`` for pointy-top), ``"square:PITCH_MM[:EVERY:GAP_MM]"``
            (square grid on the detector's layers, edges at multiples of the pitch from 0, optionally
            a gap of GAP_MM after every EVERY cells), or the path of a ``.npz`` geometry file.
        detector: the detector the showers come from (layers, their depths, cell pitch); default
            :data:`caloclouds.config.ILD_LIKE_DETECTOR`. Pipelines pass their config's detector.
        data_dir: folder with the shared data files (for ``ild-real`` and ``hgcal``).

    Raises:
        ProjectionError: unknown name (the message lists the valid names).
        InputFileError: a geometry or data file is missing or malformed.
    """
    text = str(spec)
    folder = Path(data_dir) if data_dir is not None else default_data_dir()
    if text == "ild":
        return ild_grid(detector)
    if text == "ild-real":
        return load_ild_real(folder / ILD_REAL_FILE)
    if text == "hgcal":
        return load_hgcal(folder / HGCAL_FILE, shower_detector=detector)
    if text.startswith("square:"):
        return square_geometry_from_spec(text, detector=detector)
    if text.startswith("hex:"):
        return hex_geometry_from_spec(text, detector=detector)
    path = Path(text)
    if path.suffix == ".npz" or path.exists():
        return load_geometry(path)
    msg = f"unknown geometry {text!r}; valid names: {', '.join(GEOMETRY_NAMES)}, or the path of a .npz geometry file"
    raise ProjectionError(msg)


def load_geometry(path: str | Path) -> Geometry:
    """Read a geometry written by :func:`save_geometry`.

    Raises:
        InputFileError: the file is missing, not an npz file, or lacks a required array.
    """
    required = ("format_version", "name", "kind", "cell_shape", "layer_z_mm", *CELL_ARRAYS)
    content = read_npz(Path(path), required, "geometry file")
    version = int(content["format_version"])
    if version != GEOMETRY_FORMAT_VERSION:
        raise InputFileError(path, f"format_version {version} is not supported (expected {GEOMETRY_FORMAT_VERSION})")
    kind = str(content["kind"])
    if kind not in KINDS:
        raise InputFileError(path, f"unknown geometry kind {kind!r}; valid kinds: {sorted(KINDS)}", where="kind")
    tables = {k[len("table/") :]: v for k, v in content.items() if k.startswith("table/")}
    missing_tables = [k for k in KINDS[kind].required_tables if k not in tables]
    if missing_tables:
        raise InputFileError(path, f"kind {kind!r} needs tables {missing_tables}", where="table")
    try:
        return Geometry(
            name=str(content["name"]),
            kind=kind,
            layer_z_mm=content["layer_z_mm"],
            cell_layer=content["cell_layer"],
            cell_x_mm=content["cell_x_mm"],
            cell_y_mm=content["cell_y_mm"],
            cell_size_mm=content["cell_size_mm"],
            cell_shape=str(content["cell_shape"]),
            tables=tables,
            default_layer_map=str(content.get("default_layer_map", "identity")),
            extras={k[len("extra/") :]: v for k, v in content.items() if k.startswith("extra/")},
        )
    except ValueError as exc:
        raise InputFileError(path, str(exc)) from None
