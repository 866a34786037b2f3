"""Calibration of generated point clouds onto the Shower Flow's per-shower quantities.

The diffusion model places points i.i.d.; the Shower Flow knows how many points and how much energy
each layer has. Three modules force the points onto the flow's values, for a whole ragged batch at
once (torch, CPU or CUDA, no loop over showers), with one function per step, used alike by the
generator, the export and the tests:

* :mod:`~caloclouds.generation.calibration.count`: the N calibration (:class:`PointCountCalibration`)
  maps the flow's N onto the number of points the diffusion model needs to give the right number of
  cells, fitted by ``caloclouds calibrate``.
* :mod:`~caloclouds.generation.calibration.points`: the point stage.

  1. :func:`assign_layers_by_depth`: sort each shower's points by depth; layer l receives exactly n_l.
  2. :func:`rescale_layer_energies`: negative energies go to 0, then each layer is scaled to E_l;
     with a point-energy calibration (:mod:`~caloclouds.generation.calibration.energy`, fitted by
     ``caloclouds calibrate``) each point's energy is then mapped so that the cell-energy spectrum
     is Geant4's, and each layer scaled to E_l again.
  3. the transverse position, one of (``COG_MODES``):

     * ``rotate``: :func:`rotate_showers` turns each shower by a random angle
       (:func:`random_angles`) about the beam axis. The detector is symmetric under it, so this
       keeps the network's own CoG fluctuations and removes any systematic x/y offset. Those
       fluctuations are too small (point-level CoG x 0.16 mm rms for the per-layer model, Geant4
       0.22 mm: the network's points are independent, while a Geant4 shower moves as a whole); a
       lumpy core (below) hides this at cell level;
     * ``flow``: :func:`shift_showers_to_cog` moves x and y so that the energy-weighted CoG equals
       the flow's (the CaloClouds II step), which has Geant4's spread. With a lumpy core the shift
       widens the cell-level CoG (1.5x Geant4's for the previous depth-rank model); with the core
       sharing below the cell-level CoG is Geant4's (the shipped model's setting);
     * ``none``: the network's positions as they are.

  4. :func:`share_core_energy` (``generation.core_radius_mm`` > 0): each point near the shower axis
     becomes four points at x +- s, y +- s with a quarter of its energy. The shower axis is where four
     ILD cells meet, and Geant4's clustered core is one point per 0.848 mm sub-cell on each side of
     it, so the four central cells share a layer's core energy evenly (hottest / mean of the four:
     1.26 in the training showers at 60-90 GeV). The network's core is a few heavier points placed
     independently (1.75); sharing them with s = 1 mm gives 1.27. Each point's energy-weighted
     position is kept, so the CoG does not move.

* :mod:`~caloclouds.generation.calibration.radial`: before 3., the radial calibration
  (:class:`RadialCalibration`, :func:`map_radii`) moves each point along its direction from the axis
  so that the energy-weighted radial profile of every layer is Geant4's, as a function of the
  incident energy (fitted by ``caloclouds calibrate``).

The generator and the export run 2. to 4. (with the radial calibration) as one TorchScript call,
:func:`calibrate_points`, which calls the step functions themselves. Each step takes each point's
shower index ``shower`` (P,), :func:`caloclouds.showers.shower_index_torch` of the offsets.

References:
    Buhmann et al., "CaloClouds II" (arXiv:2309.05704), Sec. 3.3 and the reference notes, Sec. 5.
"""

from __future__ import annotations

from caloclouds.config import COG_MODES  # re-exported: the generator's modes are the config's
from caloclouds.generation.calibration.count import PointCountCalibration
from caloclouds.generation.calibration.energy import PointEnergyCalibration, map_point_energies
from caloclouds.generation.calibration.points import (
    assign_layers_by_depth,
    calibrate_points,
    random_angles,
    rescale_layer_energies,
    rotate_showers,
    share_core_energy,
    shift_showers_to_cog,
)
from caloclouds.generation.calibration.radial import RadialCalibration, map_radii, radial_grid
from caloclouds.generation.calibration.tensors import compiled, per_point

__all__ = [
    "COG_MODES",
    "PointCountCalibration",
    "PointEnergyCalibration",
    "RadialCalibration",
    "assign_layers_by_depth",
    "calibrate_points",
    "compiled",
    "map_point_energies",
    "map_radii",
    "per_point",
    "radial_grid",
    "random_angles",
    "rescale_layer_energies",
    "rotate_showers",
    "share_core_energy",
    "shift_showers_to_cog",
]
