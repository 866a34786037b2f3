"""Projection of point-cloud showers onto calorimeter cell geometries (CPU numpy and torch/CUDA).

Geometries: ``ild`` square grid, ``ild-real`` (real ILD ECAL barrel cells with gaps and dead
areas), hexagonal lattices (``hex:PITCH_MM``), the real CMS HGCal CE-E (``hgcal``), arbitrary cell
centres (Voronoi), or a saved ``.npz`` geometry file.

>>> import projection
>>> geometry = projection.get_geometry("ild")
>>> hits = projection.project(showers, geometry, threshold_mev=0.08)   # doctest: +SKIP

Imports only numpy and the caloclouds data layer; torch, scipy and matplotlib are imported by the
functions that need them.
"""

from __future__ import annotations

from projection.cells import CellHits
from projection.errors import ProjectionError
from projection.geometry import Geometry, save_geometry
from projection.hexgrid import hex_lattice
from projection.hgcal import load_hgcal
from projection.ildreal import load_ild_real, square_cells
from projection.placement import resolve_layer_map
from projection.project import project, project_torch
from projection.registry import GEOMETRY_NAMES, get_geometry, load_geometry
from projection.square import ild_grid, square_grid
from projection.voronoi import voronoi_cells

__all__ = [
    "CellHits",
    "Geometry",
    "GEOMETRY_NAMES",
    "ProjectionError",
    "get_geometry",
    "hex_lattice",
    "ild_grid",
    "load_geometry",
    "load_hgcal",
    "load_ild_real",
    "project",
    "project_torch",
    "resolve_layer_map",
    "save_geometry",
    "square_cells",
    "square_grid",
    "voronoi_cells",
]
