"""The axis calibration of a direction-aware bundle, fitted on angled Geant4 showers.

A direction-aware model works in the frame of the inclined axis, which crosses silicon layer l at
``z_l tan θ`` from the entry point (``z_l`` the layer's middle, :mod:`caloclouds.direction`). A real
shower does not follow that line exactly: its energy-weighted centre leads the axis in the first
layers and lags it in the last (about 0.92 tan θ per mm of depth overall at 50 GeV, ``../shared/data``
section 4), and a network learns only part of that. The axis calibration replaces ``z_l`` by an
effective depth per layer when the points go back to the detector frame, so that each layer's mean
centre follows Geant4's:

    depth_l = z_l + a + b z_l,

a straight line in depth fitted to the per-layer differences ``s_l(Geant4) - s_l(model)``, where
``s_l`` is the slope of the layer's energy-weighted centre along φ against tan θ (a weighted
least-squares fit through the origin over the angled showers, weights the layer energies); the line
is weighted by Geant4's layer energies. A line, not a free value per layer: the first layers' centres
are pulled far along φ by a little energy scattered back from the shower maximum, and moving their
whole core by that much would widen it about the axis. It is one table of L depths, used alike by the
generator and the export (``ModelBundle.axis_depth_mm``).
"""

from __future__ import annotations

import numpy as np

from caloclouds.direction import tan_theta
from caloclouds.errors import CaloCloudsError
from caloclouds.generation.bundle import ModelBundle
from caloclouds.generation.generator import generate_in_batches
from caloclouds.showers import Showers

__all__ = ["AXIS_MIN_SHOWERS", "AXIS_MIN_THETA_DEG", "fit_axis_depth", "layer_lean_mm"]

AXIS_MIN_THETA_DEG = 5.0  # showers this steep or steeper constrain the slopes (tan 5 deg = 0.09)
AXIS_MIN_SHOWERS = 200  # fewer angled reference showers: no axis calibration


def layer_lean_mm(showers: Showers, n_layers: int, *, weights: bool = False) -> np.ndarray:
    """(L,) slope s_l of each layer's energy-weighted centre along φ against tan θ, in mm (with
    ``weights``: ``(s_l, w_l)``, w_l the fit's weight of each layer, sum of E_l tan² θ)."""
    shower = showers.shower_index
    phi = np.radians(showers.phi_deg)[shower]
    along = showers.x_mm * np.cos(phi) + showers.y_mm * np.sin(phi)
    layer = np.clip(showers.layer.astype(np.int64), 0, n_layers - 1)
    row = shower * n_layers + layer
    size = len(showers) * n_layers
    energy = np.bincount(row, weights=showers.e_mev, minlength=size).reshape(len(showers), n_layers)
    moment = np.bincount(row, weights=showers.e_mev * along, minlength=size).reshape(len(showers), n_layers)
    tan = tan_theta(showers.theta_deg)[:, None]
    # per shower and layer the centre is moment / energy; weighted by energy: sum(moment tan) / sum(energy tan^2)
    denominator = (energy * tan**2).sum(axis=0)
    lean = np.where(denominator > 0, (moment * tan).sum(axis=0) / np.maximum(denominator, 1e-30), 0.0)
    return (lean, denominator) if weights else lean


def fit_axis_depth(
    bundle: ModelBundle,
    reference: Showers,
    *,
    device: str = "cpu",
    seed: int = 0,
    batch_size: int = 500,
) -> tuple[float, ...]:
    """The effective depth (mm) of each layer's axis: the bundle's, corrected so that the model's
    layer centres lean as the angled showers of ``reference`` do (module docstring).

    The model (its consistency model, with every calibration of ``bundle``) is run at the energies
    and directions of the reference's showers with θ >= ``AXIS_MIN_THETA_DEG``.
    """
    if not bundle.direction_aware:
        raise CaloCloudsError("the axis calibration is for direction-aware bundles")
    angled = reference[reference.theta_deg >= AXIS_MIN_THETA_DEG]
    if len(angled) < AXIS_MIN_SHOWERS:
        raise CaloCloudsError(
            f"the axis calibration needs at least {AXIS_MIN_SHOWERS} angled reference showers "
            f"(theta >= {AXIS_MIN_THETA_DEG:g} deg), got {len(angled)}"
        )
    model = generate_in_batches(
        bundle,
        angled.incident_energy_gev,
        theta_deg=angled.theta_deg,
        phi_deg=angled.phi_deg,
        device=device,
        seed=seed,
        batch_size=batch_size,
    )
    n_layers = bundle.config.detector.n_layers
    g4_lean, weight = layer_lean_mm(angled, n_layers, weights=True)
    difference = g4_lean - layer_lean_mm(model, n_layers)
    depth = np.asarray(bundle.axis_depth_mm, np.float64)
    slope, offset = np.polyfit(depth, difference, 1, w=np.sqrt(weight))  # a line, weighted by Geant4's energy
    return tuple(float(v) for v in depth + offset + slope * depth)
