"""Export a model bundle for use outside Python: TorchScript for DDML (libtorch), or ONNX.

TorchScript (default): one file with the whole single-shower pipeline (Shower Flow, N calibration,
consistency model, per-layer calibration) and DDML's CaloClouds calling convention:
forward(energy_gev, theta_deg, phi_deg), each (1, 1) float32, returns a 1-D float32 tensor with
4*n_layers header entries (points of layer l at 4*l) then x_mm, y_mm, layer, e_MeV per point,
grouped by ascending layer. Its extra files hold the version, layers, energy range, angles and
training provenance. Projection onto cells is left to Geant4.

ONNX (--format onnx, needs `pip install caloclouds[onnx]`): a folder with caloclouds_ddml.onnx,
the same pipeline and convention through torch.export (per-layer model, radial calibration, CoG
shift and core sharing included; without the input checks, with ONNX's own random numbers, and
TopK for the ranking of a depth-based model), plus shower_flow.onnx, point_model.onnx and, for a
per-layer model, point_calibration.onnx with their noise or drawn points as inputs, all checked
with onnxruntime against torch; see docs/user-guide.md for what differs and why.

Examples:
  caloclouds export --model default -o caloclouds_ddml.pt
  caloclouds export --model runs/bundle --format onnx -o onnx_dir/
"""

from __future__ import annotations

import argparse
from pathlib import Path

from caloclouds.cli.options import add_overwrite_argument

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default="default", metavar="DIR", help="model bundle folder, or 'default' (the shipped model)"
    )
    parser.add_argument(
        "--format", choices=["torchscript", "onnx"], default="torchscript", help="torchscript (default) or onnx"
    )
    parser.add_argument(
        "--steps", type=int, default=1, metavar="K", help="consistency-model steps in the export (default 1)"
    )
    parser.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="output .pt file (torchscript) or folder (onnx)"
    )
    add_overwrite_argument(parser, "the output file or folder")


def run(args: argparse.Namespace) -> int:
    from caloclouds.errors import CaloCloudsError
    from caloclouds.generation.bundle import load_bundle

    out = Path(args.output)
    if args.steps < 1:
        raise CaloCloudsError(f"--steps must be >= 1, got {args.steps}")
    bundle = load_bundle(args.model)
    if not bundle.has("cm"):
        raise CaloCloudsError(f"{bundle.path}: the export needs a consistency model (cm.pt) in the bundle")
    if args.format == "onnx" and out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise CaloCloudsError(f"--output {out} exists and is not empty; pass --overwrite to replace it")
    if args.format == "onnx":
        from caloclouds.export.onnx import export_onnx

        report = export_onnx(bundle, out, steps=args.steps)
        print(report.text())
        return 0
    from caloclouds.export.torchscript import export_torchscript
    from caloclouds.io.atomic import check_output_path

    check_output_path(out, suffixes=(".pt", ".pth", ".ts"), option="--output", overwrite=args.overwrite)
    try:
        meta = export_torchscript(bundle, out, steps=args.steps)
    except ValueError as exc:  # a bundle the export cannot express (e.g. a per-layer model)
        raise CaloCloudsError(f"{bundle.path}: {exc}") from None
    lo, hi = meta["energy_range_gev"]
    print(
        f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): TorchScript, {meta['n_layers']} layers, "
        f"energies {lo:.2f}-{hi:.2f} GeV, DDML CaloClouds convention"
    )
    return 0
