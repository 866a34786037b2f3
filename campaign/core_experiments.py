"""Issue 24 experiments: generation-time core settings of a bundle, scored at every impact position.

Usage (repository root, venv)::

    python campaign/core_experiments.py OUT --variant shipped --variant nosharing --variant spread:0.5 [--model DIR]

Each variant generates one shower per shower of ``g4_photons_val_uniform.h5`` (the same energies,
seed 1) with the bundle's generation settings changed as named, writes OUT/VARIANT.h5, and then one
``caloclouds evaluate --impact all --no-low-level`` scores every variant against the reference
(floor from ``g4_photons_train2.h5``), so that the reference and the floor are projected once.

Variants: ``shipped`` (the bundle as it is), ``nosharing`` (no core sharing), ``spread:S`` (core
sharing with a spread of S mm), ``radius:R`` (sharing radius R mm), ``cog:MODE``, ``refit``
(the calibrations refitted with the settings before it), joined by ``+``.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def variant_bundle(bundle, name: str, data: str):  # noqa: ANN001, ANN201 - a script
    """The bundle with the generation settings of variant ``name`` (parts joined by +; ``refit``
    refits the radial and N calibrations on 2000 training showers with those settings)."""
    if "+" in name:
        for part in name.split("+"):
            bundle = variant_bundle(bundle, part, data)
        return bundle
    gen = bundle.config.generation
    if name == "shipped":
        return bundle
    if name == "refit":
        from caloclouds.generation.calibrate import fit_calibrations
        from caloclouds.io import ShowerFile

        with ShowerFile(f"{data}/g4_photons_train.h5") as f:
            reference = f.read(0, 2000)
        report = fit_calibrations(bundle, reference, model_part="cm", device="cpu", seed=0)
        print(report.text(), flush=True)
        return bundle.with_calibration(report.calibration, report.radial)
    if name == "nosharing":
        gen = dataclasses.replace(gen, core_radius_mm=0.0)
    elif name.startswith("spread:"):
        gen = dataclasses.replace(gen, core_spread_mm=float(name.split(":")[1]))
    elif name.startswith("radius:"):
        gen = dataclasses.replace(gen, core_radius_mm=float(name.split(":")[1]))
    elif name.startswith("cog:"):
        gen = dataclasses.replace(gen, cog=name.split(":")[1])
    else:
        raise SystemExit(f"unknown variant {name!r}")
    return dataclasses.replace(bundle, config=dataclasses.replace(bundle.config, generation=gen))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--variant", action="append", required=True)
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--low-level", action="store_true", help="also the low-level classifier")
    args = parser.parse_args(argv)

    import torch

    from caloclouds.generation.bundle import load_bundle
    from caloclouds.generation.generator import ShowerGenerator
    from caloclouds.io.formats import read_any
    from caloclouds.io.hdf5 import write_showers
    from caloclouds.showers import Showers

    torch.set_num_threads(1)
    reference = f"{args.data}/g4_photons_val_uniform.h5"
    energies = read_any(reference).incident_energy_gev[: args.n]
    args.out.mkdir(parents=True, exist_ok=True)
    files = []
    for name in args.variant:
        path = args.out / f"{name.replace(':', '_')}.h5"
        if not path.is_file():
            gen = ShowerGenerator(variant_bundle(load_bundle(args.model), name, args.data))
            g = torch.Generator().manual_seed(1)
            parts = [gen.generate(energies[i : i + 500], generator=g) for i in range(0, len(energies), 500)]
            write_showers(path, Showers.concatenate(parts))
            print(f"wrote {path}", flush=True)
        files.append(path)
    cmd = [
        str(Path(sys.executable).with_name("caloclouds")),
        "evaluate",
        "--reference",
        reference,
        "--floor-reference",
        f"{args.data}/g4_photons_train2.h5",
        "--max-showers",
        str(args.n),
        "--impact",
        "all",
        "--no-fail-exit",
        "--no-plots",
        "--threads",
        "1",
        "--out",
        str(args.out / "eval"),
    ]
    if not args.low_level:
        cmd.append("--no-low-level")
    for name, path in zip(args.variant, files, strict=True):
        cmd += ["--generated", str(path), "--label", name]
    print(" ".join(cmd), flush=True)
    return subprocess.run(cmd, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
