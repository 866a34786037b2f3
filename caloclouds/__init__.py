"""caloclouds: fast calorimeter shower simulation with generative point-cloud models.

``import caloclouds`` loads numpy only; torch, h5py, uproot and matplotlib are imported by the
modules that need them.
"""

from __future__ import annotations

from caloclouds.showers import COLUMNS, Showers

__all__ = ["COLUMNS", "Showers", "__version__"]
__version__ = "0.1.0"
