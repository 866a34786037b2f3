"""TorchScript export of a model bundle for DDML, its metadata (extra files), and reading it back.

``export_torchscript(bundle, path)`` scripts :class:`~caloclouds.export.pipeline.ScriptShowerPipeline`
and saves it with these extra files (``torch.jit.load(path, _extra_files=...)`` in Python,
``torch::jit::load(path, device, extra_files)`` in C++), each a UTF-8 JSON value:

==========================  ============================================================================
``version``                 export format version, caloclouds and torch versions
``n_layers``                number of layers L
``layer_positions_mm``      front face of each silicon layer, thickness, cell pitch (the training detector)
``energy_range_gev``        incident energies the Shower Flow was trained on [lo, hi]
``angles``                  the angle convention (DDML's), the trained theta range and what the model does
                            with theta, phi (used by a direction-aware bundle, ignored otherwise)
``training``                bundle provenance, training steps and SHA-256 of each checkpoint
``calling_convention``      inputs, output layout and units
``metadata.json``           all of the above in one object
==========================  ============================================================================
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "EXPORT_FORMAT_VERSION",
    "EXTRA_FILES",
    "angles_metadata",
    "decode_output",
    "export_metadata",
    "export_torchscript",
    "load_export",
    "script_pipeline",
]

EXPORT_FORMAT_VERSION = 1
EXTRA_FILES = (
    "version",
    "n_layers",
    "layer_positions_mm",
    "energy_range_gev",
    "angles",
    "training",
    "calling_convention",
    "metadata.json",
)

# key4hep DDML's CaloCloudsTwoAngleModel computes the angles this way from the local direction
ANGLE_CONVENTION = (
    "theta_deg = acos(d_z) in [0, 180], phi_deg = atan2(d_y, d_x) in (-180, 180], in degrees, d the photon's "
    "direction in the layers' local frame with z into the calorimeter (key4hep DDML CaloCloudsTwoAngleModel): "
    "theta_deg = 0 is normal incidence"
)

CALLING_CONVENTION = {
    "inputs": "forward(energy_gev, theta_deg, phi_deg): each a (1, 1) float32 tensor; angles as in angles.convention",
    "output": (
        "1-D float32 tensor: 4*n_layers header entries (points of layer l at index 4*l, zeros between), "
        "then x_mm, y_mm, layer, e_MeV per point, grouped by ascending layer"
    ),
    "frame": (
        "the layers' local frame: x, y transverse in mm, x = y = 0 where the photon enters the front face (the "
        "shower axis at normal incidence; at theta > 0 the axis is z_l tan(theta) from it along phi in layer l, "
        "z_l the depth of the layer's silicon middle), layer = index of the silicon layer"
    ),
    "random": "each call draws a new shower from torch's global generator; torch.manual_seed makes it reproducible",
}


def angles_metadata(bundle: Any) -> dict[str, Any]:
    """The ``angles`` entry: the convention, the trained range and what the export does with the angles."""
    from caloclouds.export.pipeline import is_direction_aware, trained_theta_range_deg

    lo, hi, source = trained_theta_range_deg(bundle)
    common = {"convention": ANGLE_CONVENTION, "direction_aware": is_direction_aware(bundle)}
    energies = "energy_gev outside energy_range_gev is not clamped: the Shower Flow extrapolates"
    if not common["direction_aware"]:
        return {
            **common,
            "trained_on": "normal incidence only (photons along the calorimeter normal, no angle conditioning)",
            "theta_range_deg": [lo, hi],
            "theta_deg_phi_deg": (
                "accepted for the DDML convention and ignored: every call returns a "
                "normal-incidence shower in its local frame, whatever the angles; off "
                "normal incidence the longitudinal and lateral shapes are not corrected"
            ),
            "outside_training_range": energies,
        }
    return {
        **common,
        "trained_on": "normal incidence (theta = 0) and oblique incidence, one model conditioned on theta",
        "theta_range_deg": [lo, hi],
        "theta_range_source": source,
        "theta_deg_phi_deg": (
            "used as caloclouds' ShowerGenerator does: the Shower Flow is conditioned on theta_deg, the PointWise "
            "Net on tan(theta); the shower is drawn and calibrated in the frame of its inclined axis, then put into "
            "the layers' frame (the axis z_l tan(theta) added along x, the shower turned by phi)"
        ),
        "phi_deg": "any finite value, wrapped into (-180, 180]; the model's shower turns with phi",
        "outside_training_range": (
            f"theta_deg is clamped into [{lo:g}, {hi:g}] (a track cannot be refused inside Geant4): beyond it the "
            f"shower of the nearest trained angle; {energies}; a non-finite angle raises (TorchScript)"
        ),
    }


def _part_step(path: Path) -> int | None:
    """Training step stored in a checkpoint (flow: ``training.step``; PointWise Net: ``step``)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    step = ckpt.get("step", (ckpt.get("training") or {}).get("step"))
    return None if step is None else int(step)


def export_metadata(bundle: Any, *, steps: int = 1) -> dict[str, Any]:
    """The metadata of an export of ``bundle`` (an opened ``ModelBundle``); see the module doc."""
    import caloclouds
    from caloclouds.generation.bundle import file_sha256

    det = bundle.config.detector
    flow = bundle.flow(device="cpu")
    lo, hi = flow.energy_range_gev
    parts = {}
    for part in ("flow", "cm"):
        path = bundle.path / bundle.files[part]
        parts[part] = {"file": bundle.files[part], "sha256": file_sha256(path), "training_step": _part_step(path)}
    return {
        "version": {
            "export_format": EXPORT_FORMAT_VERSION,
            "caloclouds": caloclouds.__version__,
            "torch": torch.__version__,
        },
        "n_layers": int(det.n_layers),
        "layer_positions_mm": {
            "detector": det.name,
            "silicon_front_mm": [float(z) for z in det.silicon_front_mm],
            "silicon_thickness_mm": float(det.silicon_thickness_mm),
            "cell_pitch_mm": float(det.cell_pitch_mm),
        },
        "energy_range_gev": [float(lo), float(hi)],
        "angles": angles_metadata(bundle),
        "training": {
            "bundle": str(bundle.path),
            "provenance": bundle.manifest.get("provenance", {}),
            "parts": parts,
            "cm_steps": int(steps),
            "n_calibration": bundle.calibration.to_dict(),
        },
        "calling_convention": CALLING_CONVENTION,
    }


def script_pipeline(bundle: Any, *, steps: int = 1) -> torch.jit.ScriptModule:
    """The bundle's single-shower pipeline as a TorchScript module (not yet saved)."""
    from caloclouds.export.pipeline import ScriptShowerPipeline

    return torch.jit.script(ScriptShowerPipeline(bundle, steps=steps).eval())


def export_torchscript(bundle: Any, path: str | Path, *, steps: int = 1) -> dict[str, Any]:
    """Script ``bundle`` and save it atomically to ``path`` with the extra files; returns the metadata."""
    from caloclouds.io.atomic import atomic_path

    module = script_pipeline(bundle, steps=steps)
    meta = export_metadata(bundle, steps=steps)
    extra = {k: json.dumps(v) for k, v in meta.items()}
    extra["metadata.json"] = json.dumps(meta, indent=2)
    with atomic_path(path) as tmp:
        torch.jit.save(module, str(tmp), _extra_files=extra)
    return meta


def load_export(path: str | Path) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """Load an exported file: (module, metadata dict)."""
    from caloclouds.errors import InputFileError

    extra = {"metadata.json": ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except (RuntimeError, ValueError) as exc:
        raise InputFileError(path, f"not a TorchScript file ({str(exc).splitlines()[0]})") from None
    if not extra["metadata.json"]:
        raise InputFileError(path, "a TorchScript file without caloclouds metadata (metadata.json extra file)")
    return module, json.loads(extra["metadata.json"])


def decode_output(flat: np.ndarray | torch.Tensor, n_layers: int) -> tuple[np.ndarray, np.ndarray]:
    """Split one DDML output tensor into (counts (L,) int64, points (P, 4) float32).

    Raises:
        ValueError: the header is not of the convention's form or disagrees with the points.
    """
    flat = np.asarray(flat.detach().cpu() if isinstance(flat, torch.Tensor) else flat, dtype=np.float32)
    if flat.ndim != 1 or len(flat) < 4 * n_layers or (len(flat) - 4 * n_layers) % 4:
        raise ValueError(f"output of length {flat.shape} is not 4*{n_layers} header entries plus 4 per point")
    header = flat[: 4 * n_layers].reshape(n_layers, 4)
    if np.any(header[:, 1:] != 0):
        raise ValueError("header entries between the layer counts must be zero")
    counts = header[:, 0].astype(np.int64)
    points = flat[4 * n_layers :].reshape(-1, 4)
    if counts.sum() != len(points):
        raise ValueError(f"the header counts {counts.sum()} points but {len(points)} follow")
    expected = np.repeat(np.arange(n_layers), counts)
    if not np.array_equal(points[:, 2].astype(np.int64), expected):
        raise ValueError("points are not grouped by ascending layer as the header says")
    return counts, points
