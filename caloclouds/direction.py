"""The frame of the inclined shower axis: where an angled shower is a normal-incidence-like shower.

A photon with direction (θ, φ) (key4hep DDML's local angles: θ = acos(d_z), φ = atan2(d_y, d_x))
that enters the calorimeter at x = y = 0 has its axis at depth z (mm) at

    (z tan θ cos φ, z tan θ sin φ).

The models work in the *axis frame* of each shower:

1. turn the shower by -φ about the beam axis, so that it leans towards +x;
2. subtract the axis, ``z_l tan θ``, from x in each layer (z_l the middle of silicon layer l).

In this frame the shower is centred on x = y = 0 in every layer, like a normal-incidence shower;
what is left of θ is the shape (longer, wider, leaning), which the models learn as a function of
θ alone. The detector is symmetric under turns about the beam axis, so φ needs no learning: it is
put back by a turn. Mirroring y (y -> -y) is a symmetry of the axis frame (it maps φ to -φ), and
augments the training data of angled showers in place of the random turns of normal incidence.

Normal incidence (θ = 0) is the identity. Everything is vectorised over points; the torch
function :func:`from_axis_frame` is TorchScript-compatible (the generator and the export call it).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from caloclouds.showers import LAYER, Showers, X, Y

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "MAX_THETA_DEG",
    "augmentation_turn",
    "axis_offset_mm",
    "check_direction",
    "from_axis_frame",
    "tan_theta",
    "to_axis_frame",
    "wrap_phi_deg",
]

MAX_THETA_DEG = 80.0  # beyond this the axis leaves any calorimeter sideways; refused as input


def tan_theta(theta_deg: np.ndarray) -> np.ndarray:
    """tan θ of angles in degrees (float64), the models' direction condition."""
    return np.tan(np.radians(np.asarray(theta_deg, np.float64)))


def axis_offset_mm(layer: np.ndarray, tan_theta_per_point: np.ndarray, layer_z_mm: np.ndarray) -> np.ndarray:
    """Distance (mm) of the inclined axis from the beam axis at each point's layer: z_l tan θ.

    Args:
        layer: (P,) integer layer of each point (points outside 0..L-1 take the nearest layer's z).
        tan_theta_per_point: (P,) tan θ of each point's shower.
        layer_z_mm: (L,) depth of the middle of each silicon layer from the front face.
    """
    z = np.asarray(layer_z_mm, np.float64)
    index = np.clip(np.asarray(layer).astype(np.int64), 0, len(z) - 1)
    return z[index] * tan_theta_per_point


def to_axis_frame(showers: Showers, layer_z_mm: np.ndarray) -> Showers:
    """The showers in the frame of their inclined axis (the module docstring); conditions kept.

    Showers without a direction (normal incidence) are returned as they are.
    """
    if not showers.has_direction or not np.any(showers.theta_deg):
        return showers
    shower = showers.shower_index
    phi = np.radians(showers.phi_deg)[shower]
    cos, sin = np.cos(phi), np.sin(phi)
    x, y = showers.points[:, X].astype(np.float64), showers.points[:, Y].astype(np.float64)
    offset = axis_offset_mm(showers.points[:, LAYER], tan_theta(showers.theta_deg)[shower], layer_z_mm)
    points = showers.points.copy()
    points[:, X] = cos * x + sin * y - offset  # turn by -phi, then subtract the axis
    points[:, Y] = -sin * x + cos * y
    return Showers(points, showers.offsets, showers.incident_energy_gev, showers.conditions)


def from_axis_frame(
    x_mm: Tensor,
    y_mm: Tensor,
    layer: Tensor,
    tan_theta_per_point: Tensor,
    phi_rad_per_point: Tensor,
    layer_z_mm: Tensor,
) -> tuple[Tensor, Tensor]:
    """Points from the axis frame back to the detector frame (torch, TorchScript-compatible).

    Adds the axis z_l tan θ to x, then turns by φ. All arguments but ``layer_z_mm`` (L,) are (P,).
    Tensor methods only, no ``torch`` name: TorchScript compiles it (it has no import statements)
    and this module still imports without torch.
    """
    index = layer.long().clamp(0, layer_z_mm.shape[0] - 1)
    x = x_mm + layer_z_mm.to(x_mm.dtype).index_select(0, index) * tan_theta_per_point.to(x_mm.dtype)
    cos, sin = phi_rad_per_point.cos().to(x_mm.dtype), phi_rad_per_point.sin().to(x_mm.dtype)
    return cos * x - sin * y_mm, sin * x + cos * y_mm


def augmentation_turn(angle_rad: Tensor, angled: Tensor) -> tuple[Tensor, Tensor]:
    """The training augmentation of a batch of showers, given one uniform angle in [0, 2π) each.

    A normal-incidence shower is turned by its angle. An angled one, held in its axis frame, is not
    turned but mirrored in y when its angle is below π (the symmetry of that frame, as likely as not).
    Returns ``(turn angles, sign of y after the turn)``, the sign ±1 in the angles' dtype; all (B,).
    Tensor methods only, as :func:`from_axis_frame`.
    """
    flip = angled & (angle_rad < math.pi)
    return angle_rad.masked_fill(angled, 0.0), 1.0 - 2.0 * flip.to(angle_rad.dtype)


def check_direction(theta_deg: np.ndarray, phi_deg: np.ndarray, source: str) -> str | None:
    """A description of the first bad angle, or None: θ must be finite and in [0, MAX_THETA_DEG]
    degrees, φ finite (any value: it is an angle)."""
    theta, phi = np.asarray(theta_deg, np.float64), np.asarray(phi_deg, np.float64)
    bad = ~np.isfinite(theta) | (theta < 0) | (theta > MAX_THETA_DEG)
    if np.any(bad):
        i = int(np.argmax(bad))
        return f"{source}: shower {i} has theta_deg {theta[i]:g}, expected a value in 0-{MAX_THETA_DEG:g} degrees"
    if not np.all(np.isfinite(phi)):
        i = int(np.argmax(~np.isfinite(phi)))
        return f"{source}: shower {i} has phi_deg {phi[i]:g}, expected a finite angle in degrees"
    return None


def wrap_phi_deg(phi_deg: np.ndarray) -> np.ndarray:
    """φ wrapped into (-180, 180] degrees (DDML's convention)."""
    phi = np.mod(np.asarray(phi_deg, np.float64) + 180.0, 360.0) - 180.0
    return np.where(phi == -180.0, 180.0, phi)
