"""The MIP of a silicon cell as a function of its thickness, and per-cell MIP thresholds.

The measured MIP of the shared Geant4 data (``EvaluationConfig.mip_mev`` = 0.147 MeV) is the most
probable energy in the 0.5 mm silicon of the ILD-like detector. Thinner sensors see less: the most
probable value of the Landau-Vavilov distribution for a relativistic particle (PDG, "Passage of
particles through matter", eq. 34.12 in the limit of large beta*gamma) is

    Delta_p = xi * (ln(2 m_e c^2 xi / (hbar omega_p)^2) + j),   xi = (K/2) <Z/A> rho t,

which grows faster than linearly in t. For silicon (Z/A = 0.49848, rho = 2.329 g/cm^3,
hbar omega_p = 31.05 eV, j = 0.200) it gives 0.145 MeV at 500 um (the measured 0.147 MeV to 1.5 %),
84.2 keV at 300 um, 54.7 keV at 200 um and 31.7 keV at 120 um. A cell of thickness t gets the
measured MIP scaled by Delta_p(t) / Delta_p(500 um).

CMS HGCal cell types (``celltype`` of the geometry file): 0 = high density, 120 um; 1 = low
density, 200 um; 2 = low density, 300 um.

References:
    Particle Data Group, Review of Particle Physics, "Passage of particles through matter" (2024).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "landau_mpv_mev",
    "mip_mev_for_thickness",
    "HGCAL_THICKNESS_UM",
    "REFERENCE_THICKNESS_UM",
    "THICKNESS_EXTRA",
]

K_MEV_CM2_PER_MOL = 0.307075  # 4 pi N_A r_e^2 m_e c^2
SILICON_Z_OVER_A = 0.49848  # <Z/A> of silicon (mol/g)
SILICON_DENSITY_G_CM3 = 2.329
SILICON_PLASMA_EV = 31.05  # hbar omega_p of silicon
ELECTRON_MASS_EV = 510998.95
LANDAU_J = 0.200
REFERENCE_THICKNESS_UM = 500.0  # silicon of the ILD-like simulation (shared data README)
HGCAL_THICKNESS_UM = {0: 120.0, 1: 200.0, 2: 300.0}  # HGCal celltype -> sensor thickness
THICKNESS_EXTRA = "silicon_thickness_um"  # per-cell Geometry.extras key read by projection.project


def landau_mpv_mev(thickness_um: np.ndarray | float) -> np.ndarray:
    """Most probable energy loss (MeV) of a relativistic particle in silicon of this thickness (um)."""
    t_cm = np.asarray(thickness_um, dtype=np.float64) * 1e-4
    xi_ev = 0.5 * K_MEV_CM2_PER_MOL * SILICON_Z_OVER_A * SILICON_DENSITY_G_CM3 * t_cm * 1e6
    return xi_ev * (np.log(2.0 * ELECTRON_MASS_EV * xi_ev / SILICON_PLASMA_EV**2) + LANDAU_J) * 1e-6


def mip_mev_for_thickness(thickness_um: np.ndarray | float, *, reference_mip_mev: float) -> np.ndarray:
    """The MIP (MeV) of cells of ``thickness_um``, scaled from ``reference_mip_mev`` measured at 500 um."""
    if not (math.isfinite(reference_mip_mev) and reference_mip_mev > 0):
        raise ValueError(f"reference_mip_mev must be a finite number > 0, got {reference_mip_mev}")
    return reference_mip_mev * landau_mpv_mev(thickness_um) / landau_mpv_mev(REFERENCE_THICKNESS_UM)
