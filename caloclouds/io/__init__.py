"""Readers and writers. The data layer: nothing here imports models, projection or flows.

* ``hdf5``: our ragged HDF5 schema (read lazily, write atomically in chunks).
* ``caloclouds_hdf5``: the CaloClouds training format (``events``/``energy``, padded).
* ``edm4hep``: EDM4hep ROOT files (SimCalorimeterHit contributions) via uproot.
* ``steps``: clustering of raw Geant4 steps onto the sub-cell grid.
* ``root``: ROOT output (and read-back) via uproot.
* ``formats``: format detection, ``read_any``/``iter_any`` for every format, ``convert_file``.
* ``summary``: one-pass statistics of a file (``caloclouds info``).
* ``writers``: ``open_writer(path)``, the one writer protocol (``write(showers, cells=None)``) for
  HDF5, ROOT, cells and CaloChallenge files.

Modules that need uproot or awkward import them inside their functions.
"""

from __future__ import annotations

from caloclouds.io.formats import FORMATS, detect_format, iter_any, read_any
from caloclouds.io.hdf5 import ShowerFile, ShowerWriter, read_showers, write_showers
from caloclouds.io.writers import open_writer

__all__ = [
    "FORMATS",
    "ShowerFile",
    "ShowerWriter",
    "detect_format",
    "iter_any",
    "open_writer",
    "read_any",
    "read_showers",
    "write_showers",
]
