"""Issue 24: the cell-energy spectrum near the threshold, model / Geant4, at random impact positions.

Usage: python campaign/cell_spectrum.py GEN.h5 [GEN2.h5 ...] [--reference g4_photons_val_uniform.h5]

Each shower is moved by its own offset, uniform within an ILD cell (seeded), projected onto the ILD
5.088 mm cells with the 0.5 MIP threshold, and the cell energies are histogrammed in MIP units (0.147
MeV). Printed: the number of cells per bin of each file relative to Geant4's, and the cells per shower.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EDGES_MIP = np.array([0.5, 0.8, 1.2, 1.8, 2.5, 4.0, 8.0, 20.0, 60.0, 200.0, 700.0, 1e9])


def cell_energies_mip(showers, seed: int) -> np.ndarray:  # noqa: ANN001
    from caloclouds.config import ILD_LIKE_DETECTOR as detector
    from caloclouds.generation.pipeline import cell_projector
    from caloclouds.showers import Showers

    rng = np.random.default_rng(seed)
    offset = (rng.random((len(showers), 2)) - 0.5) * detector.cell_pitch_mm
    points = showers.points.copy()
    points[:, :2] += offset[showers.shower_index]
    hits = cell_projector("ild", detector)(Showers(points, showers.offsets, showers.incident_energy_gev))
    return np.asarray(hits.e_mev) / detector.mip_mev


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("generated", nargs="+")
    parser.add_argument("--reference", default=str(ROOT.parent / "shared" / "data" / "g4_photons_val_uniform.h5"))
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args()

    from caloclouds.io.formats import read_any

    g4 = read_any(args.reference)[: args.n]
    ref = np.histogram(cell_energies_mip(g4, 1), EDGES_MIP)[0]
    labels = [f"{lo:g}-{hi:g}" for lo, hi in zip(EDGES_MIP[:-1], EDGES_MIP[1:], strict=True)]
    print("cell energy (MIP): " + " ".join(f"{s:>8s}" for s in labels))
    print("Geant4 cells/shower " + " ".join(f"{v / len(g4):8.1f}" for v in ref))
    for path in args.generated:
        model = read_any(path)[: args.n]
        counts = np.histogram(cell_energies_mip(model, 2), EDGES_MIP)[0]
        print(
            f"{Path(path).name[:18]:18s} " + " ".join(f"{c / max(r, 1):8.2f}" for c, r in zip(counts, ref, strict=True))
        )


if __name__ == "__main__":
    main()
