"""ONNX export of a bundle: the whole DDML pipeline, plus its two networks alone, checked with onnxruntime.

``caloclouds_ddml.onnx`` is the single-shower pipeline of
:class:`~caloclouds.export.pipeline.ScriptShowerPipeline` with the same calling convention
(inputs ``energy_gev``, ``theta_deg``, ``phi_deg`` (1, 1); output ``shower``, the 1-D header +
points tensor), exported through ``torch.export`` (the number of points, drawn by the flow, is a
data-dependent size that ONNX carries; the noise is drawn by ONNX ``RandomNormal`` ops inside the
graph). Three things of the TorchScript export cannot be expressed and differ:

* **No input checks.** ONNX graphs raise no exceptions, so a non-positive or NaN energy is not
  refused (the caller must check); the TorchScript export raises.
* **Random numbers.** ONNX random ops draw from onnxruntime's generator, seeded when a session is
  created (``onnxruntime.set_seed`` before ``InferenceSession``), not torch's, so a seed never
  gives the same shower as torch; the distribution is the same.
* **Sort order of ties.** ONNX has no stable sort, so the depth ranking uses TopK; points whose
  depths tie (clamped to the first or last layer) may swap layers relative to torch.

``shower_flow.onnx`` and ``point_model.onnx`` are the deterministic networks with their noise as an
input (the Shower Flow with its decoding; the one-step consistency model with its inverse
preprocessing, N dynamic); they reproduce torch to float32 rounding for the same noise, which
checks the exported maths where the whole pipeline cannot be compared number by number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["OnnxReport", "export_onnx", "onnx_ddml_call", "onnx_sampling_fractions", "require_onnx"]

OPSET = 18


def require_onnx() -> tuple[Any, Any]:
    """(onnx, onnxruntime), or a one-line error with the install command."""
    from caloclouds.errors import CaloCloudsError

    try:
        import onnx
        import onnxruntime
    except ModuleNotFoundError as exc:
        msg = f"--format onnx needs {exc.name}: pip install 'caloclouds[onnx]' (onnx, onnxruntime, onnxscript)"
        raise CaloCloudsError(msg) from None
    return onnx, onnxruntime


class _FlowGraph(nn.Module):
    def __init__(self, flow: nn.Module) -> None:
        super().__init__()
        self.flow = flow

    def forward(self, incident_energy_gev: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        return self.flow(incident_energy_gev, noise)


class _PointGraph(nn.Module):
    """One consistency step of the depth model plus the inverse preprocessing (noise is an input)."""

    def __init__(self, stage: nn.Module) -> None:
        super().__init__()
        self.stage = stage

    def forward(self, noise: Tensor, incident_energy_gev: Tensor, n_points: Tensor) -> Tensor:
        s = self.stage
        e = (incident_energy_gev.reshape(1) - s.energy_mean_gev) / s.energy_std_gev
        n = (n_points.reshape(1).to(torch.float32) - s.n_points_mean) / s.n_points_std
        x = s.denoise(noise * s.sigmas[0], 0, torch.stack([e, n], dim=-1))
        depth = (x[:, 2] * s.depth_scale + s.depth_mean).clamp(0.0, s.max_depth)
        px = torch.sinh(x[:, 0] * s.xy_scale) * s.xy_scale_mm
        py = torch.sinh(x[:, 1] * s.xy_scale) * s.xy_scale_mm
        pe = torch.exp((x[:, 3] * s.log_e_scale + s.log_e_mean).clamp(max=s.max_log_e)).clamp_min(s.min_energy_mev)
        return torch.stack([px, py, depth, pe], dim=-1)


@dataclass
class OnnxReport:
    """What was exported, how well onnxruntime reproduces torch, and why the whole pipeline was not."""

    files: dict[str, str]
    max_abs_diff: dict[str, float]
    sampling_fraction: dict[float, float] = field(default_factory=dict)  # onnxruntime, per energy (GeV)

    def text(self) -> str:
        lines = [
            f"wrote {self.files['caloclouds_ddml.onnx']}: the whole pipeline, DDML convention; onnxruntime "
            + ", ".join(f"{e:g} GeV sampling fraction {f * 100:.3f} %" for e, f in self.sampling_fraction.items())
        ]
        lines += [
            f"wrote {self.files[name]}: onnxruntime vs torch for the same noise, max |diff| {self.max_abs_diff[name]:.3g}"
            for name in ("shower_flow.onnx", "point_model.onnx")
        ]
        return "\n".join(lines)


def _export(
    module: nn.Module,
    args: tuple[Tensor, ...],
    path: Path,
    *,
    input_names: list[str],
    output_names: list[str],
    dynamic_shapes: Any,
) -> None:
    import contextlib
    import io
    import warnings

    from caloclouds.io.atomic import atomic_path

    with (
        atomic_path(path) as tmp,
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            args,
            dynamo=True,
            opset_version=OPSET,
            input_names=input_names,
            output_names=output_names,
            dynamic_shapes=dynamic_shapes,
        )
        program.save(str(tmp))


def _session(path: Path) -> Any:
    _, ort = require_onnx()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def export_onnx(bundle: Any, out_dir: str | Path, *, steps: int = 1) -> OnnxReport:
    """Export the Shower Flow and the consistency model of ``bundle`` to ``out_dir`` and check them.

    Raises:
        CaloCloudsError: onnx/onnxruntime missing, or ``steps`` != 1.
    """
    from caloclouds.errors import CaloCloudsError
    from caloclouds.export.pipeline import ScriptShowerPipeline
    from caloclouds.export.torchscript import export_metadata

    import logging

    require_onnx()
    for name in ("torch.onnx", "torch.fx", "torch.export", "onnx_ir", "onnxscript"):  # exporter chatter
        logging.getLogger(name).setLevel(logging.ERROR)
    if steps != 1:
        raise CaloCloudsError(f"the ONNX export has the one-step consistency model only, got --steps {steps}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from caloclouds.export.points import DepthPointStage

    pipeline = ScriptShowerPipeline(bundle, steps=1).eval()
    if not isinstance(pipeline.points, DepthPointStage):
        raise CaloCloudsError(
            f"{bundle.path}: the ONNX export has the depth-based consistency model only; "
            "export a per-layer model with --format torchscript"
        )
    pipeline.check_inputs = False  # no exceptions in ONNX
    pipeline.points.stable_sort = False  # TopK: ONNX has no stable sort
    report = OnnxReport({}, {})
    ddml_args = tuple(torch.full((1, 1), v) for v in (50.0, 90.0, 0.0))
    _export(
        pipeline,
        ddml_args,
        out / "caloclouds_ddml.onnx",
        input_names=["energy_gev", "theta_deg", "phi_deg"],
        output_names=["shower"],
        dynamic_shapes=None,
    )
    report.files["caloclouds_ddml.onnx"] = str(out / "caloclouds_ddml.onnx")
    report.sampling_fraction = onnx_sampling_fractions(_session(out / "caloclouds_ddml.onnx"), pipeline.n_layers)
    gen = torch.Generator().manual_seed(0)
    batch = torch.export.Dim("batch")
    energy = torch.tensor([10.0, 50.0, 90.0])
    noise = torch.randn(3, pipeline.flow.dim, generator=gen)
    flow = _FlowGraph(pipeline.flow).eval()
    _export(
        flow,
        (energy, noise),
        out / "shower_flow.onnx",
        input_names=["incident_energy_gev", "noise"],
        output_names=["points_per_layer", "energy_per_layer_mev"],
        dynamic_shapes={"incident_energy_gev": {0: batch}, "noise": {0: batch}},
    )
    n = torch.export.Dim("n_points", min=2)
    point_args = (torch.randn(1000, 4, generator=gen), torch.tensor([50.0]), torch.tensor([1000]))
    points = _PointGraph(pipeline.points).eval()
    _export(
        points,
        point_args,
        out / "point_model.onnx",
        input_names=["noise", "incident_energy_gev", "n_points"],
        output_names=["points"],
        dynamic_shapes={"noise": {0: n}, "incident_energy_gev": None, "n_points": None},
    )
    with torch.no_grad():
        checks = {
            "shower_flow.onnx": (flow, (energy, noise)),
            "point_model.onnx": (
                points,
                (torch.randn(2345, 4, generator=gen), torch.tensor([70.0]), torch.tensor([2345])),
            ),
        }
        for name, (module, args) in checks.items():
            sess = _session(out / name)
            feeds = {i.name: a.numpy() for i, a in zip(sess.get_inputs(), args)}
            expected = module(*args)
            expected = expected if isinstance(expected, tuple) else (expected,)
            got = sess.run(None, feeds)
            report.files[name] = str(out / name)
            report.max_abs_diff[name] = max(
                float(np.max(np.abs(g - e.numpy().astype(g.dtype)))) for g, e in zip(got, expected)
            )
    meta = export_metadata(bundle, steps=1)
    meta["onnx"] = {
        "files": sorted(report.files),
        "opset": OPSET,
        "differences_from_torchscript": [
            "no input checks (ONNX has no exceptions): the caller must pass a finite energy > 0",
            "random numbers from onnxruntime's generator (onnxruntime.set_seed before creating the session), not torch's",
            "TopK instead of a stable sort: points with tied depths may swap layers relative to torch",
        ],
    }
    from caloclouds.io.atomic import atomic_path

    with atomic_path(out / "metadata.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
    return report


def onnx_ddml_call(session: Any, energy_gev: float, theta_deg: float = 90.0, phi_deg: float = 0.0) -> np.ndarray:
    """One call of ``caloclouds_ddml.onnx`` in onnxruntime: the 1-D header + points array."""
    feeds = {
        name: np.full((1, 1), v, dtype=np.float32)
        for name, v in (("energy_gev", energy_gev), ("theta_deg", theta_deg), ("phi_deg", phi_deg))
    }
    return session.run(None, feeds)[0]


def onnx_sampling_fractions(
    session: Any, n_layers: int, *, energies_gev: tuple[float, ...] = (10.0, 50.0, 90.0), n: int = 20
) -> dict[float, float]:
    """Mean sampling fraction of ``n`` onnxruntime showers per energy (each output checked for layout)."""
    from caloclouds.export.torchscript import decode_output

    out = {}
    for energy in energies_gev:
        sums = [decode_output(onnx_ddml_call(session, energy), n_layers)[1][:, 3].sum() for _ in range(n)]
        out[energy] = float(np.mean(sums) / (1000.0 * energy))
    return out
