"""Issue 24: the energy within 3 mm of the shower axis, layer by layer, model against Geant4.

Usage: python campaign/core_density.py GEN.h5 [GEN2.h5 ...] [--reference g4_photons_val_uniform.h5]

Geant4's points sit on the centres of the 0.848 mm clustering sub-cells, a grid that a real detector
does not share, so they are dequantised first (moved uniformly within their sub-cell, fixed seed).
For each layer: the mean over showers of E(r < 3 mm) / E_layer, and the model / Geant4 ratio; the
energy-weighted summary over layers is printed too. Showers are compared at the same energies when the
files were generated from the reference's energies.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def core_fraction(showers, radius_mm: float, n_layers: int, jitter_mm: float = 0.0, seed: int = 0) -> np.ndarray:  # noqa: ANN001
    """(N, L) fraction of each layer's energy within ``radius_mm`` of the beam axis (NaN: empty layer)."""
    x, y = showers.x_mm.astype(np.float64), showers.y_mm.astype(np.float64)
    if jitter_mm > 0:
        rng = np.random.default_rng(seed)
        x = x + (rng.random(len(x)) - 0.5) * jitter_mm
        y = y + (rng.random(len(y)) - 0.5) * jitter_mm
    inside = np.hypot(x, y) < radius_mm
    near = showers.layer_sums(n_layers, np.where(inside, showers.e_mev, 0.0))
    total = showers.layer_sums(n_layers)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, near / total, np.nan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("generated", nargs="+")
    parser.add_argument("--reference", default=str(ROOT.parent / "shared" / "data" / "g4_photons_val_uniform.h5"))
    parser.add_argument("--radius-mm", type=float, default=3.0)
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args()

    from caloclouds.config import ILD_LIKE_DETECTOR as detector
    from caloclouds.io.formats import read_any

    n_layers = detector.n_layers
    g4 = read_any(args.reference)[: args.n]
    ref = np.nanmean(core_fraction(g4, args.radius_mm, n_layers, detector.subcell_pitch_mm), axis=0)
    weight = g4.layer_sums(n_layers).sum(0)
    print(f"E(r < {args.radius_mm} mm) / E_layer, Geant4 dequantised: " + " ".join(f"{v:.2f}" for v in ref))
    for path in args.generated:
        model = np.nanmean(core_fraction(read_any(path)[: args.n], args.radius_mm, n_layers), axis=0)
        ratio = model / ref
        mean = float(np.nansum(ratio * weight) / weight.sum())
        print(f"{Path(path).name}: model / Geant4 per layer " + " ".join(f"{v:.2f}" for v in ratio))
        print(f"  energy-weighted mean ratio {mean:.3f}, min {np.nanmin(ratio):.2f}, max {np.nanmax(ratio):.2f}")


if __name__ == "__main__":
    main()
