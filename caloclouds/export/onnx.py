"""ONNX export of a bundle: the whole DDML pipeline, plus its deterministic parts alone, checked with onnxruntime.

``caloclouds_ddml.onnx`` is the single-shower pipeline of
:class:`~caloclouds.export.pipeline.ScriptShowerPipeline` with the same calling convention
(inputs ``energy_gev``, ``theta_deg``, ``phi_deg`` (1, 1); output ``shower``, the 1-D header +
points tensor), exported through ``torch.export``: the Shower Flow, the N calibration, the point
stage (per-layer or depth-based consistency model) and, for a per-layer bundle, the radial
calibration, the CoG shift and the core sharing. The number of points, drawn by the flow, and the
number of core copies are data-dependent sizes that ONNX carries; the noise is drawn by ONNX
``RandomNormal`` ops inside the graph. Two of torch's ops have no ONNX translation in the exporter
and are written here in ONNX ops: ``hypot`` (as sqrt(x^2 + y^2)) and ``searchsorted`` (as the
number of nodes below each value). What differs from the TorchScript export:

* **No input checks.** ONNX graphs raise no exceptions, so a non-positive or NaN energy (or, for
  a direction-aware bundle, a NaN angle) is not refused (the caller must check); the TorchScript
  export raises. θ is clamped into the trained range and φ wrapped in both.
* **Random numbers.** ONNX random ops draw from onnxruntime's generator, seeded when a session is
  created (``onnxruntime.set_seed`` before ``InferenceSession``), not torch's, so a seed never
  gives the same shower as torch; the distribution is the same.
* **Sort order of ties** (depth-based model only). ONNX has no stable sort, so the depth ranking
  uses TopK; points whose depths tie may swap layers relative to torch.

The deterministic parts are exported alone too, with their noise or drawn points as inputs, and
reproduce torch to float32 rounding, which checks the exported maths where the whole pipeline
cannot be compared number by number: ``shower_flow.onnx`` (the Shower Flow with its decoding),
``point_model.onnx`` (the one-step consistency model with its inverse preprocessing, the number of
points dynamic) and, for a per-layer model, ``point_calibration.onnx`` (the layer energies, radial
calibration, CoG shift and core sharing of one shower's drawn points). For a direction-aware
bundle the flow part takes ``theta_deg`` (B, 1) and the per-layer point part ``tan_theta`` (1,) as
inputs too; the calibration part works in the frame of the inclined axis, as the pipeline does
before :func:`caloclouds.direction.from_axis_frame`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "OnnxReport",
    "SamplingFraction",
    "export_onnx",
    "onnx_ddml_call",
    "onnx_sampling_fractions",
    "require_onnx",
]

OPSET = 18
CHECK_SHOWERS = 200  # onnxruntime showers per energy in the export's check of the sampling fraction


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
    """The Shower Flow; a direction-aware one also takes θ in degrees (B, 1)."""

    def __init__(self, flow: nn.Module) -> None:
        super().__init__()
        self.flow = flow

    def forward(
        self, incident_energy_gev: Tensor, noise: Tensor, theta_deg: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        return self.flow(incident_energy_gev, noise, theta_deg)


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
        px, py, pe = s.physical_xy_e(x[:, 0], x[:, 1], x[:, 3])
        return torch.stack([px, py, depth, pe], dim=-1)


class _LayerPointGraph(nn.Module):
    """One consistency step of the per-layer model plus the inverse preprocessing (noise is an input);
    a direction-aware model also takes tan θ (1,) (its points are in the frame of the inclined axis)."""

    def __init__(self, stage: nn.Module) -> None:
        super().__init__()
        self.stage = stage

    def forward(
        self,
        noise: Tensor,
        points_per_layer: Tensor,
        condition_points_per_layer: Tensor,
        energy_per_layer_mev: Tensor,
        incident_energy_gev: Tensor,
        tan_theta: Tensor | None = None,
    ) -> Tensor:
        s = self.stage
        features = s.layer_features(condition_points_per_layer, energy_per_layer_mev, incident_energy_gev, tan_theta)
        index = torch.repeat_interleave(torch.arange(s.n_layers), points_per_layer)
        return s.from_noise(noise, features, index)


class _CalibrationGraph(nn.Module):
    """The pipeline's step 4 (no random numbers): one shower's drawn points -> its calibrated points."""

    def __init__(self, pipeline: nn.Module) -> None:
        super().__init__()
        self.pipeline = pipeline

    def forward(
        self,
        raw_points: Tensor,
        energy_per_layer_mev: Tensor,
        cog_mm: Tensor,
        incident_energy_gev: Tensor,
        angle_rad: Tensor,
    ) -> Tensor:
        return self.pipeline.calibrate_points(raw_points, energy_per_layer_mev, cog_mm, incident_energy_gev, angle_rad)


def _translations() -> dict[Any, Any]:
    """ONNX translations of the torch ops that the exporter has none for (opset 18 ops only)."""
    from onnxscript import INT64
    from onnxscript import opset18 as op

    def hypot(x, y):  # noqa: ANN001, ANN202
        return op.Sqrt(op.Add(op.Mul(x, x), op.Mul(y, y)))

    def searchsorted(sorted_sequence, values, out_int32: bool = False, right: bool = False, side=None, sorter=None):  # noqa: ANN001, ANN202, ARG001
        # side "left" (the only one the pipeline uses): how many nodes lie below each value
        below = op.Greater(op.Unsqueeze(values, [-1]), sorted_sequence)
        return op.ReduceSum(op.Cast(below, to=INT64.dtype), [-1], keepdims=0)

    return {torch.ops.prims.hypot.default: hypot, torch.ops.aten.searchsorted.Tensor: searchsorted}


@dataclass(frozen=True)
class SamplingFraction:
    """Mean visible-energy fraction E_vis / E_inc of ``n_showers`` showers and its standard error."""

    mean: float
    standard_error: float
    n_showers: int

    def text(self) -> str:
        """``2.819 ± 0.014 %``."""
        return f"{self.mean * 100:.3f} ± {self.standard_error * 100:.3f} %"


@dataclass
class OnnxReport:
    """What was exported and how well onnxruntime reproduces torch."""

    files: dict[str, str]
    max_abs_diff: dict[str, float]
    sampling_fraction: dict[float, SamplingFraction] = field(default_factory=dict)  # onnxruntime, per energy (GeV)

    def text(self) -> str:
        n = max((f.n_showers for f in self.sampling_fraction.values()), default=0)
        lines = [
            f"wrote {self.files['caloclouds_ddml.onnx']}: the whole pipeline, DDML convention; onnxruntime "
            f"sampling fraction (mean ± standard error of {n} showers each) "
            + ", ".join(f"{e:g} GeV {f.text()}" for e, f in self.sampling_fraction.items())
        ]
        lines += [
            f"wrote {self.files[name]}: onnxruntime vs torch for the same input, max |diff| {diff:.3g}"
            for name, diff in self.max_abs_diff.items()
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
            custom_translation_table=_translations(),
        )
        program.save(str(tmp))


def _session(path: Path) -> Any:
    _, ort = require_onnx()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _part_graphs(
    pipeline: Any, gen: torch.Generator
) -> dict[str, tuple[nn.Module, dict[str, Any], tuple[Tensor, ...]]]:
    """The deterministic parts: file name -> (module, export settings, check input different from the
    export's example)."""
    from caloclouds.export.points import DepthPointStage

    batch = torch.export.Dim("batch")
    n = torch.export.Dim("n_points", min=2)
    energy = torch.tensor([10.0, 50.0, 90.0])
    direction = bool(pipeline.direction_aware)
    parts: dict[str, tuple[nn.Module, dict[str, Any], tuple[Tensor, ...]]] = {}
    flow_settings: dict[str, Any] = {
        "args": (energy, torch.randn(3, pipeline.flow.dim, generator=gen)),
        "input_names": ["incident_energy_gev", "noise"],
        "output_names": ["points_per_layer", "energy_per_layer_mev"],
        "dynamic_shapes": {"incident_energy_gev": {0: batch}, "noise": {0: batch}},
    }
    flow_check: tuple[Tensor, ...] = (
        torch.tensor([12.0, 47.0, 88.0, 60.0]),
        torch.randn(4, pipeline.flow.dim, generator=gen),
    )
    if direction:  # theta_deg (B, 1), as ShowerFlow.sample's extra_conditions
        flow_settings["args"] += (torch.tensor([[0.0], [20.0], [40.0]]),)
        flow_settings["input_names"].append("theta_deg")
        flow_settings["dynamic_shapes"]["theta_deg"] = {0: batch}
        flow_check += (torch.tensor([[5.0], [0.0], [33.0], [17.5]]),)
    parts["shower_flow.onnx"] = (
        _FlowGraph(pipeline.flow).eval(),
        flow_settings,
        flow_check,
    )
    if isinstance(pipeline.points, DepthPointStage):
        parts["point_model.onnx"] = (
            _PointGraph(pipeline.points).eval(),
            {
                "args": (torch.randn(1000, 4, generator=gen), torch.tensor([50.0]), torch.tensor([1000])),
                "input_names": ["noise", "incident_energy_gev", "n_points"],
                "output_names": ["points"],
                "dynamic_shapes": {"noise": {0: n}, "incident_energy_gev": None, "n_points": None},
            },
            (torch.randn(2345, 4, generator=gen), torch.tensor([70.0]), torch.tensor([2345])),
        )
        return parts
    # a per-layer model: targets and drawn points of real showers of the pipeline
    example = _drawn_shower(pipeline, 50.0, gen, theta_deg=20.0)
    check = _drawn_shower(pipeline, 80.0, gen, theta_deg=35.0)
    point_inputs = ["noise", "points_per_layer", "condition_points_per_layer", "energy_per_layer_mev"]
    point_inputs += ["incident_energy_gev"] + (["tan_theta"] if direction else [])
    parts["point_model.onnx"] = (
        _LayerPointGraph(pipeline.points).eval(),
        {
            "args": example["points"],
            "input_names": point_inputs,
            "output_names": ["points"],
            "dynamic_shapes": {name: {0: n} if name == "noise" else None for name in point_inputs},
        },
        check["points"],
    )
    parts["point_calibration.onnx"] = (
        _CalibrationGraph(pipeline).eval(),
        {
            "args": example["calibration"],
            "input_names": ["raw_points", "energy_per_layer_mev", "cog_mm", "incident_energy_gev", "angle_rad"],
            "output_names": ["points"],
            "dynamic_shapes": {
                "raw_points": {0: n},
                "energy_per_layer_mev": None,
                "cog_mm": None,
                "incident_energy_gev": None,
                "angle_rad": None,
            },
        },
        check["calibration"],
    )
    return parts


def _drawn_shower(
    pipeline: Any, energy_gev: float, gen: torch.Generator, *, theta_deg: float = 0.0
) -> dict[str, tuple[Tensor, ...]]:
    """The inputs of the per-layer point and calibration graphs for one shower drawn with ``gen``
    (at ``theta_deg`` for a direction-aware pipeline, whose point graph then takes tan θ too)."""
    incident = torch.tensor([energy_gev])
    direction = bool(pipeline.direction_aware)
    theta = torch.deg2rad(torch.tensor([theta_deg], dtype=torch.float64)).float()
    with torch.no_grad():
        n_layer, e_layer, cog = pipeline.flow.sample_with_cog(
            incident,
            torch.randn(1, pipeline.flow.dim, generator=gen),
            torch.rad2deg(theta).unsqueeze(1) if direction else None,
        )
        noise = torch.randn(int(n_layer.sum()), 3, generator=gen)
        points = (noise, n_layer[0], n_layer[0], e_layer[0], incident) + ((torch.tan(theta),) if direction else ())
        raw = _LayerPointGraph(pipeline.points)(*points)
    calibration = (raw, e_layer[0], cog[0], incident, torch.rand(1, generator=gen) * math.tau)
    return {"points": points, "calibration": calibration}


def export_onnx(bundle: Any, out_dir: str | Path, *, steps: int = 1, check_showers: int = CHECK_SHOWERS) -> OnnxReport:
    """Export the whole pipeline of ``bundle`` and its deterministic parts to ``out_dir``, and check them
    (``check_showers`` onnxruntime showers per energy for the sampling fraction, >= 2).

    Raises:
        CaloCloudsError: onnx/onnxruntime/onnxscript missing, or ``steps`` != 1.
    """
    import logging

    from caloclouds.errors import CaloCloudsError
    from caloclouds.export.pipeline import ScriptShowerPipeline
    from caloclouds.export.points import DepthPointStage
    from caloclouds.export.torchscript import export_metadata
    from caloclouds.io.atomic import atomic_path

    require_onnx()
    for name in ("torch.onnx", "torch.fx", "torch.export", "onnx_ir", "onnxscript"):  # exporter chatter
        logging.getLogger(name).setLevel(logging.ERROR)
    if steps != 1:
        raise CaloCloudsError(f"the ONNX export has the one-step consistency model only, got --steps {steps}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CaloCloudsError(f"-o {out} is a file: --format onnx writes a folder of .onnx files; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    pipeline = ScriptShowerPipeline(bundle, steps=1).eval()
    depth_model = isinstance(pipeline.points, DepthPointStage)
    pipeline.check_inputs = False  # no exceptions in ONNX
    pipeline.points.net.chunked = False  # the number of points is not known in the graph
    if depth_model:
        pipeline.points.stable_sort = False  # TopK: ONNX has no stable sort
    report = OnnxReport({}, {})
    example = (50.0, 20.0, 30.0) if pipeline.direction_aware else (50.0, 90.0, 0.0)  # angles unused without direction
    _export(
        pipeline,
        tuple(torch.full((1, 1), v) for v in example),
        out / "caloclouds_ddml.onnx",
        input_names=["energy_gev", "theta_deg", "phi_deg"],
        output_names=["shower"],
        dynamic_shapes=None,
    )
    report.files["caloclouds_ddml.onnx"] = str(out / "caloclouds_ddml.onnx")
    report.sampling_fraction = onnx_sampling_fractions(
        _session(out / "caloclouds_ddml.onnx"), pipeline.n_layers, n=check_showers
    )
    for name, (module, settings, check) in _part_graphs(pipeline, torch.Generator().manual_seed(0)).items():
        args = settings.pop("args")
        _export(module, args, out / name, **settings)
        sess = _session(out / name)
        with torch.no_grad():
            expected = module(*check)
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = sess.run(None, {i.name: a.numpy() for i, a in zip(sess.get_inputs(), check, strict=True)})
        report.files[name] = str(out / name)
        report.max_abs_diff[name] = max(
            float(np.max(np.abs(g - e.numpy().astype(g.dtype)), initial=0.0)) if g.shape == e.shape else float("inf")
            for g, e in zip(got, expected, strict=True)
        )
    differences = [
        "no input checks (ONNX has no exceptions): the caller must pass a finite energy > 0"
        + (" and finite angles" if pipeline.direction_aware else ""),
        "random numbers from onnxruntime's generator (onnxruntime.set_seed before creating the session), not torch's",
    ]
    if depth_model:
        differences.append("TopK instead of a stable sort: points with tied depths may swap layers relative to torch")
    meta = export_metadata(bundle, steps=1)
    meta["onnx"] = {
        "files": sorted(report.files),
        "opset": OPSET,
        "differences_from_torchscript": differences,
        "written_in_onnx_ops": ["hypot as sqrt(x^2 + y^2)", "searchsorted as the number of nodes below each value"],
        "max_abs_diff_vs_torch": report.max_abs_diff,
    }
    with atomic_path(out / "metadata.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
    return report


def onnx_ddml_call(session: Any, energy_gev: float, theta_deg: float = 0.0, phi_deg: float = 0.0) -> np.ndarray:
    """One call of ``caloclouds_ddml.onnx`` in onnxruntime: the 1-D header + points array.

    The angles follow DDML's convention (θ = acos(d_z), z into the calorimeter): the default θ = 0 is
    normal incidence (it was 90 before the export used the angles, which a normal-incidence model ignores).
    """
    feeds = {
        name: np.full((1, 1), v, dtype=np.float32)
        for name, v in (("energy_gev", energy_gev), ("theta_deg", theta_deg), ("phi_deg", phi_deg))
    }
    return session.run(None, feeds)[0]


def onnx_sampling_fractions(
    session: Any,
    n_layers: int,
    *,
    energies_gev: tuple[float, ...] = (10.0, 50.0, 90.0),
    n: int = CHECK_SHOWERS,
    theta_deg: float = 0.0,
    phi_deg: float = 0.0,
) -> dict[float, SamplingFraction]:
    """Sampling fraction of ``n`` >= 2 onnxruntime showers per energy (at θ, φ in degrees), with its
    standard error (each output checked for layout)."""
    from caloclouds.export.torchscript import decode_output

    if n < 2:
        raise ValueError(f"the standard error needs n >= 2 showers, got {n}")
    out = {}
    for energy in energies_gev:
        sums = [
            decode_output(onnx_ddml_call(session, energy, theta_deg, phi_deg), n_layers)[1][:, 3].sum()
            for _ in range(n)
        ]
        fractions = np.asarray(sums, dtype=np.float64) / (1000.0 * energy)
        out[energy] = SamplingFraction(float(fractions.mean()), float(fractions.std(ddof=1) / math.sqrt(n)), n)
    return out
