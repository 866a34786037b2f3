"""The fault battery: bad files and bad values, run through every verb that reads or writes showers.

Each :class:`Case` is one command line. It expects either a clear error (exit code 2 and one line on
stderr naming ``must_name``, the file or option at fault) or correct behaviour (exit code 0 and a
check of the output). Every case is also checked for: no traceback (an exception escaping
``caloclouds.cli.main``), no temporary file left in the work folder, and no damaged output (an
existing output file keeps its content when the run fails; a failed run creates no output).

Everything is generated here, in a temporary folder, in about a second: no shared data is needed.
"""

from __future__ import annotations

import contextlib
import io
import os
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from caloclouds.cli import main
from caloclouds.io import write_showers
from caloclouds.io.root import write_root
from caloclouds.showers import Showers

__all__ = ["Case", "Outcome", "make_files", "cases", "run_case", "run_battery"]

SENTINEL = b"existing output: must survive a failed run\n"


@dataclass
class Case:
    name: str
    argv: list[str]
    expect: str  # "error" or "ok"
    must_name: str = ""  # text the error line must contain (file or option)
    output: str | None = None  # the output file of the command, if any
    check: Callable[[Path], None] | None = None  # for "ok": checks the output
    preexisting: bool = True  # an existing output file is put in place first (error cases)
    must_say: str = ""  # and the problem, in words (where it is predictable)


@dataclass
class Outcome:
    case: Case
    code: int | None
    stderr: str
    traceback: str = ""
    leftovers: list[str] = field(default_factory=list)
    damaged: str = ""
    problem: str = ""

    @property
    def passed(self) -> bool:
        return not (self.traceback or self.leftovers or self.damaged or self.problem)


# -- files --------------------------------------------------------------------------------------


def good_showers(n: int = 12, seed: int = 0) -> Showers:
    rng = np.random.default_rng(seed)
    counts = rng.integers(20, 60, n)
    p = int(counts.sum())
    points = np.c_[rng.normal(0, 8, (p, 2)), rng.integers(0, 30, p), rng.exponential(0.3, p)].astype(np.float32)
    return Showers.from_counts(
        points,
        counts,
        rng.uniform(10, 90, n).astype(np.float32),
        {"raw_visible_mev": rng.uniform(100, 2000, n).astype(np.float32)},
    )


def _raw_h5(path: Path, points, offsets, energies, *, chunked_points: tuple[int, ...] | None = None, **extra) -> Path:
    with h5py.File(path, "w") as f:
        if chunked_points:
            f.create_dataset("points", shape=chunked_points, dtype="f4", chunks=(65536, 4), compression="gzip")
        else:
            f["points"] = points
        f["offsets"] = offsets
        f["incident_energy_gev"] = energies
        for k, v in extra.items():
            f[k] = v
    return path


def make_files(folder: Path) -> dict[str, Path]:
    """Good and bad input files, by name."""
    folder.mkdir(parents=True, exist_ok=True)
    s = good_showers()
    files: dict[str, Path] = {}
    files["good.h5"] = folder / "good.h5"
    write_showers(files["good.h5"], s)
    files["good.root"] = folder / "good.root"
    write_root(files["good.root"], s)
    pts, off, e = s.points.copy(), s.offsets.copy(), s.incident_energy_gev.copy()

    def variant(name: str, points=pts, offsets=off, energies=e, **kw) -> None:
        files[name] = _raw_h5(folder / name, points, offsets, energies, **kw)

    def with_point(col: int, value: float) -> np.ndarray:
        p = pts.copy()
        p[5, col] = value
        return p

    variant("nan_point.h5", points=with_point(0, np.nan))
    variant("inf_point.h5", points=with_point(1, np.inf))
    variant("negative_point_energy.h5", points=with_point(3, -1.0))
    variant("layer_45.h5", points=with_point(2, 45))
    variant("layer_2.5.h5", points=with_point(2, 2.5))
    variant("layer_-1.h5", points=with_point(2, -1))
    variant("zero_incident.h5", energies=np.where(np.arange(len(e)) == 3, 0.0, e).astype(np.float32))
    variant("negative_incident.h5", energies=np.where(np.arange(len(e)) == 3, -50.0, e).astype(np.float32))
    variant("nan_incident.h5", energies=np.where(np.arange(len(e)) == 3, np.nan, e).astype(np.float32))
    variant("text_incident.h5", energies=np.array([b"fifty"] * len(e)))
    variant("text_points.h5", points=np.array([[b"a", b"b", b"c", b"d"]] * len(pts)))
    variant("fractional_offsets.h5", offsets=np.where(np.arange(len(off)) == 4, off + 0.5, off).astype(np.float64))
    variant("decreasing_offsets.h5", offsets=np.where(np.arange(len(off)) == 4, off[6], off))
    variant("offsets_wrong_length.h5", offsets=off[:-2])
    variant("offsets_wrong_end.h5", offsets=np.r_[off[:-1], off[-1] + 7])
    variant("points_3_columns.h5", points=pts[:, :3])
    huge = 10**9
    variant(
        "declares_1e9_points.h5",
        offsets=np.array([0, huge], np.int64),
        energies=np.array([50.0], np.float32),
        chunked_points=(huge, 4),
    )
    files["missing_dataset.h5"] = folder / "missing_dataset.h5"
    with h5py.File(files["missing_dataset.h5"], "w") as f:
        f["points"] = pts
    data = files["good.h5"].read_bytes()
    files["truncated.h5"] = folder / "truncated.h5"
    files["truncated.h5"].write_bytes(data[: len(data) // 2])
    files["empty.h5"] = folder / "empty.h5"
    files["empty.h5"].write_bytes(b"")
    files["text_as.h5"] = folder / "text_as.h5"
    files["text_as.h5"].write_text("x_mm,y_mm,layer,e_mev\n1,2,3,4\n")
    rdata = files["good.root"].read_bytes()
    files["truncated.root"] = folder / "truncated.root"
    files["truncated.root"].write_bytes(rdata[: len(rdata) // 2])
    files["garbage.root"] = folder / "garbage.root"
    files["garbage.root"].write_bytes(b"root" + bytes(range(256)) * 8)
    bad_layer = Showers(with_point(2, 45), off, e)
    files["layer_45.root"] = folder / "layer_45.root"
    write_root(files["layer_45.root"], bad_layer)
    files["zero_incident.root"] = folder / "zero_incident.root"
    write_root(files["zero_incident.root"], Showers(pts, off, np.where(np.arange(len(e)) == 3, 0.0, e)))
    files["folder"] = folder / "a_folder.h5"
    files["folder"].mkdir(exist_ok=True)
    files["pipe"] = folder / "pipe.h5"
    if not files["pipe"].exists():
        os.mkfifo(files["pipe"])
    files["missing"] = folder / "does_not_exist.h5"
    files["energies_text"] = folder / "energies.txt"
    files["energies_text"].write_text("# GeV\n20\n50\n")
    files["energies_bad"] = folder / "energies_bad.txt"
    files["energies_bad"].write_text("20\nfifty\n")
    files["energies_zero"] = folder / "energies_zero.txt"
    files["energies_zero"].write_text("20\n0\n")
    # a cells file, as `project` writes it
    files["cells.h5"] = folder / "cells.h5"
    assert main(["project", "--geometry", "ild", "--in", str(files["good.h5"]), "-o", str(files["cells.h5"])]) == 0
    # a model bundle whose manifest points outside its folder
    from caloclouds.generation.bundle import default_bundle_path

    bundle = folder / "escaping_bundle"
    bundle.mkdir(exist_ok=True)
    manifest = (default_bundle_path() / "bundle.json").read_text()
    manifest = manifest.replace('"flow.pt"', f'"../{default_bundle_path().name}/flow.pt"', 1)
    (bundle / "bundle.json").write_text(manifest)
    files["escaping_bundle"] = bundle
    # tiny training settings (two steps of a few-hundred-parameter flow and per-layer network) and a teacher
    files["tiny.yaml"] = folder / "tiny.yaml"
    files["tiny.yaml"].write_text(TINY_TRAINING_YAML)
    files["teacher"] = folder / "teacher"
    assert (
        main(
            [
                "train-diffusion",
                "--config",
                str(files["tiny.yaml"]),
                "--data",
                str(files["good.h5"]),
                "--out",
                str(files["teacher"]),
                "--no-progress",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    return files


TINY_TRAINING_YAML = """\
flow: {n_blocks: 1, couplings_per_block: 1, coupling_hidden: [8], spline_hidden: [8], spline_bins: 4,
       batch_size: 8, eval_every: 2, steps: 2, calibration_samples: 1}
diffusion: {hidden: [8, 8], fourier_features: 8, time_features: 8, batch_size: 4, steps: 2,
            checkpoint_every: 1, per_layer: true, points_per_shower: 16, val_showers: 4}
distillation: {batch_size: 4, steps: 2, checkpoint_every: 1, num_steps: 4}
"""


# -- checks of correct behaviour ------------------------------------------------------------------


def _reads_back(n: int | None = None, *, cells: bool = False) -> Callable[[Path], None]:
    def check(path: Path) -> None:
        from caloclouds.io.formats import iter_with_cells

        pairs = list(iter_with_cells(path))
        total = sum(len(s) for s, _ in pairs)
        assert n is None or total == n, f"{total} showers, expected {n}"
        for s, c in pairs:
            assert s.check_values(n_layers=30) is None
            assert np.all(np.isfinite(s.points))
            assert (c is not None) == cells, "cell hits missing" if cells else "unexpected cell hits"

    return check


def _nothing(path: Path) -> None:
    return None


# -- cases ----------------------------------------------------------------------------------------

BAD_INPUTS = {
    "nan_point.h5": "NaN",
    "inf_point.h5": "NaN or inf",
    "negative_point_energy.h5": "negative energy",
    "layer_45.h5": "layer 45",
    "layer_2.5.h5": "layer 2.5",
    "layer_-1.h5": "layer -1",
    "zero_incident.h5": "incident energy 0",
    "negative_incident.h5": "incident energy -50",
    "nan_incident.h5": "NaN",
    "text_incident.h5": "text",
    "text_points.h5": "text",
    "fractional_offsets.h5": "expected an integer",
    "decreasing_offsets.h5": "decrease",
    "offsets_wrong_length.h5": "offsets",
    "offsets_wrong_end.h5": "offsets",
    "points_3_columns.h5": "shape",
    "declares_1e9_points.h5": "stores only",
    "missing_dataset.h5": "no known layout",
    "truncated.h5": "",
    "empty.h5": "",
    "text_as.h5": "not an HDF5 or ROOT file",
    "truncated.root": "truncated",
    "garbage.root": "",
    "layer_45.root": "layer 45",
    "zero_incident.root": "incident energy 0",
    "folder": "folder",
    "pipe": "not a regular file",
    "missing": "not found",
}


def cases(files: dict[str, Path], out: Path) -> list[Case]:
    """Every case of the battery."""
    f = {k: str(v) for k, v in files.items()}
    o = lambda name: str(out / name)  # noqa: E731
    result: list[Case] = []
    for name, text in BAD_INPUTS.items():
        path = f[name]
        result += [
            Case(f"info {name}", ["info", path], "error", files[name].name),
            Case(
                f"convert {name} -> h5", ["convert", path, "-o", o("conv.h5")], "error", files[name].name, o("conv.h5")
            ),
            Case(
                f"convert {name} -> root",
                ["convert", path, "-o", o("conv.root")],
                "error",
                files[name].name,
                o("conv.root"),
            ),
            Case(
                f"project {name}",
                ["project", "--geometry", "ild", "--in", path, "-o", o("proj.h5")],
                "error",
                files[name].name,
                o("proj.h5"),
            ),
            Case(
                f"plot-shower {name}",
                ["plot-shower", path, "--geometry", "ild", "-o", o("plot.png")],
                "error",
                files[name].name,
                o("plot.png"),
            ),
            Case(
                f"evaluate --generated {name}",
                ["evaluate", "--reference", f["good.h5"], "--generated", path, "--out", o("eval"), "--no-plots"],
                "error",
                files[name].name,
            ),
            Case(
                f"calibrate --reference {name}",
                ["calibrate", "--model", "default", "--reference", path, "--dry-run"],
                "error",
                files[name].name,
            ),
        ]
        for case in result[-7:]:
            # calibrate reads only our HDF5: other files fail as "not a readable HDF5 file"
            case.must_say = "" if case.argv[0] == "calibrate" and not name.endswith(".h5") else text
        if name == "text_as.h5":
            result[-1].must_say = "not a readable HDF5 file"
        if name == "missing_dataset.h5":
            result[-1].must_say = "missing dataset"
    result += _training_cases(f, out)
    good, cells = f["good.h5"], f["cells.h5"]
    gen = ["generate", "--energies", "50", "-n", "2"]
    result += [
        # generate: energies, seeds, files, outputs
        Case(
            "generate --energies 1e9",
            ["generate", "--energies", "1e9", "-n", "3", "-o", o("g.h5")],
            "error",
            "1e+09 GeV",
            o("g.h5"),
        ),
        Case(
            "generate --energy-range 1e8 1e9",
            ["generate", "--energy-range", "1e8", "1e9", "-n", "3", "-o", o("g.h5")],
            "error",
            "training range",
            o("g.h5"),
        ),
        Case(
            "generate --energies 0.001",
            ["generate", "--energies", "0.001", "-n", "3", "-o", o("g.h5")],
            "error",
            "0.001 GeV",
            o("g.h5"),
        ),
        Case(
            "generate --energies 0",
            ["generate", "--energies", "0", "-n", "3", "-o", o("g.h5")],
            "error",
            "--energies",
            o("g.h5"),
        ),
        Case(
            "generate --energies nan",
            ["generate", "--energies", "nan", "-n", "3", "-o", o("g.h5")],
            "error",
            "--energies",
            o("g.h5"),
        ),
        Case(
            "generate 1e9 --allow-extrapolation",
            ["generate", "--energies", "1e9", "-n", "2", "--allow-extrapolation", "-o", o("gx.h5")],
            "any",
            "GeV",
            o("gx.h5"),
            _reads_back(2),
        ),
        Case("generate --seed 2^70", [*gen, "--seed", str(2**70), "-o", o("g.h5")], "error", "--seed", o("g.h5")),
        Case("generate --seed -1", [*gen, "--seed", "-1", "-o", o("g.h5")], "error", "--seed", o("g.h5")),
        Case("generate -n 0", ["generate", "--energies", "50", "-n", "0", "-o", o("g.h5")], "error", "-n", o("g.h5")),
        Case(
            "generate -n 1e12",
            ["generate", "--energies", "50", "-n", str(10**12), "-o", o("g.h5")],
            "error",
            "-n",
            o("g.h5"),
        ),
        Case(
            "generate --batch-size 0", [*gen, "--batch-size", "0", "-o", o("g.h5")], "error", "--batch-size", o("g.h5")
        ),
        Case(
            "generate --energies-from HDF5",  # --energies-from reads text and shower files alike
            ["generate", "--energies-from", good, "-n", "2", "-o", o("gs.h5")],
            "ok",
            output=o("gs.h5"),
            check=_reads_back(2),
            preexisting=False,
        ),
        Case(
            "generate --energies-file bad line",
            ["generate", "--energies-file", f["energies_bad"], "-o", o("g.h5")],
            "error",
            "energies_bad.txt",
            o("g.h5"),
        ),
        Case(
            "generate --energies-file zero",
            ["generate", "--energies-file", f["energies_zero"], "-o", o("g.h5")],
            "error",
            "energies_zero.txt",
            o("g.h5"),
        ),
        Case(
            "generate --energies-file pipe",
            ["generate", "--energies-file", f["pipe"], "-o", o("g.h5")],
            "error",
            "pipe.h5",
            o("g.h5"),
        ),
        Case(
            "generate --energies-file missing",
            ["generate", "--energies-file", f["missing"], "-o", o("g.h5")],
            "error",
            "does_not_exist",
            o("g.h5"),
        ),
        Case("generate -o folder", [*gen, "-o", f["folder"]], "error", "a_folder.h5"),
        Case("generate -o x.txt", [*gen, "-o", o("g.txt")], "error", "g.txt", o("g.txt")),
        Case("generate -o under a file", [*gen, "-o", str(files["good.h5"] / "x.h5")], "error", "good.h5"),
        Case(
            "generate --model escaping bundle",
            [*gen, "--model", f["escaping_bundle"], "-o", o("g.h5")],
            "error",
            "bundle.json",
            o("g.h5"),
        ),
        Case(
            "generate --cells ild -o x.h5",
            [*gen, "--cells", "ild", "-o", o("gc.h5")],
            "ok",
            output=o("gc.h5"),
            check=_reads_back(2, cells=True),
            preexisting=False,
        ),
        Case(
            "generate --batch-size 1",
            [*gen, "--batch-size", "1", "-o", o("g1.root")],
            "ok",
            output=o("g1.root"),
            check=_reads_back(2),
            preexisting=False,
        ),
        Case(
            "generate --energies-file text",
            ["generate", "--energies-file", f["energies_text"], "-o", o("gt.h5")],
            "ok",
            output=o("gt.h5"),
            check=_reads_back(2),
            preexisting=False,
        ),
        # project: options
        Case(
            "project --chunk -5",
            ["project", "--geometry", "ild", "--in", good, "-o", o("p.h5"), "--chunk", "-5"],
            "error",
            "--chunk",
            o("p.h5"),
        ),
        Case(
            "project --chunk 0",
            ["project", "--geometry", "ild", "--in", good, "-o", o("p.h5"), "--chunk", "0"],
            "error",
            "--chunk",
            o("p.h5"),
        ),
        Case(
            "project --impact nan 0",
            ["project", "--geometry", "ild", "--in", good, "-o", o("p.h5"), "--impact", "nan", "0"],
            "error",
            "--impact",
            o("p.h5"),
        ),
        Case(
            "project --rotation-deg nan",
            ["project", "--geometry", "ild", "--in", good, "-o", o("p.h5"), "--rotation-deg", "nan"],
            "error",
            "--rotation-deg",
            o("p.h5"),
        ),
        Case(
            "project --threshold-mev nan",
            ["project", "--geometry", "ild", "--in", good, "-o", o("p.h5"), "--threshold-mev", "nan"],
            "error",
            "--threshold-mev",
            o("p.h5"),
        ),
        Case(
            "project --threshold-mip -1",
            ["project", "--geometry", "ild", "--in", good, "-o", o("p.h5"), "--threshold-mip", "-1"],
            "error",
            "--threshold-mip",
            o("p.h5"),
        ),
        Case(
            "project --mip-mev 0",
            ["project", "--geometry", "ild", "--in", good, "-o", o("p.h5"), "--threshold-mip", "0.5", "--mip-mev", "0"],
            "error",
            "--mip-mev",
            o("p.h5"),
        ),
        Case(
            "project --geometry square:5:0:1",
            ["project", "--geometry", "square:5:0:1", "--in", good, "-o", o("p.h5")],
            "error",
            "square:5:0:1",
            o("p.h5"),
        ),
        Case(
            "project --geometry square:0.001",
            ["project", "--geometry", "square:0.001", "--in", good, "-o", o("p.h5")],
            "error",
            "square:0.001",
            o("p.h5"),
        ),
        Case(
            "project --geometry hex:0",
            ["project", "--geometry", "hex:0", "--in", good, "-o", o("p.h5")],
            "error",
            "hex:0",
            o("p.h5"),
        ),
        Case(
            "project --geometry hex:inf",
            ["project", "--geometry", "hex:inf", "--in", good, "-o", o("p.h5")],
            "error",
            "hex:inf",
            o("p.h5"),
        ),
        Case(
            "project --geometry bogus",
            ["project", "--geometry", "bogus", "--in", good, "-o", o("p.h5")],
            "error",
            "bogus",
            o("p.h5"),
        ),
        Case(
            "project --layer-map 1,2",
            ["project", "--geometry", "ild", "--in", good, "-o", o("p.h5"), "--layer-map", "1,2"],
            "error",
            "layer_map",
            o("p.h5"),
        ),
        Case(
            "project -o x.txt",
            ["project", "--geometry", "ild", "--in", good, "-o", o("p.txt")],
            "error",
            "p.txt",
            o("p.txt"),
        ),
        Case(
            "project -o folder",
            ["project", "--geometry", "ild", "--in", good, "-o", f["folder"]],
            "error",
            "a_folder.h5",
        ),
        Case(
            "project --in cells file",
            ["project", "--geometry", "ild", "--in", cells, "-o", o("pc.h5")],
            "ok",
            output=o("pc.h5"),
            check=_nothing,
            preexisting=False,
        ),
        Case(
            "project --threshold-mip 0.5 records numbers",
            ["project", "--geometry", "ild", "--in", good, "-o", o("pm.h5"), "--threshold-mip", "0.5"],
            "ok",
            output=o("pm.h5"),
            check=_threshold_recorded,
            preexisting=False,
        ),
        # convert: options and round trips
        Case(
            "convert --box-mm nan",
            ["convert", good, "-o", o("c.h5"), "--box-mm", "nan"],
            "error",
            "--box-mm",
            o("c.h5"),
        ),
        Case(
            "convert --box-mm -3", ["convert", good, "-o", o("c.h5"), "--box-mm", "-3"], "error", "--box-mm", o("c.h5")
        ),
        Case("convert onto its input", ["convert", good, "-o", good], "error", "good.h5", preexisting=False),
        Case("convert -o x.csv", ["convert", good, "-o", o("c.csv")], "error", "c.csv", o("c.csv")),
        Case(
            "convert root with cells -> root keeps cells",
            ["convert", o("gcr.root"), "-o", o("gcr2.root")],
            "ok",
            output=o("gcr2.root"),
            check=_reads_back(2, cells=True),
            preexisting=False,
        ),
        Case(
            "convert cells file -> h5",
            ["convert", cells, "-o", o("cc.h5")],
            "ok",
            output=o("cc.h5"),
            check=_reads_back(12),
            preexisting=False,
        ),
        Case("info cells file", ["info", cells], "ok"),
        Case("info good.root", ["info", f["good.root"]], "ok"),
        # plot-shower: options
        Case(
            "plot-shower --layers 0-29:3",
            ["plot-shower", good, "--geometry", "ild", "-o", o("s.png"), "--layers", "0-29:3"],
            "error",
            "--layers",
            o("s.png"),
        ),
        Case(
            "plot-shower --layers 40",
            ["plot-shower", good, "--geometry", "ild", "-o", o("s.png"), "--layers", "40"],
            "error",
            "--layers",
            o("s.png"),
        ),
        Case(
            "plot-shower --index 999",
            ["plot-shower", good, "--geometry", "ild", "-o", o("s.png"), "--index", "999"],
            "error",
            "--index",
            o("s.png"),
        ),
        Case(
            "plot-shower --half-width-mm 0",
            ["plot-shower", good, "--geometry", "ild", "-o", o("s.png"), "--half-width-mm", "0"],
            "error",
            "--half-width-mm",
            o("s.png"),
        ),
        Case(
            "plot-shower -o x.txt",
            ["plot-shower", good, "--geometry", "ild", "-o", o("s.txt")],
            "error",
            "s.txt",
            o("s.txt"),
        ),
        # calibrate: too few showers for a trustworthy fit
        Case(
            "calibrate --max-showers 200",
            ["calibrate", "--model", "default", "--reference", good, "--max-showers", "200"],
            "error",
            "--max-showers",
        ),
        Case(
            "calibrate --reference with 12 showers",
            ["calibrate", "--model", "default", "--reference", good, "--into-package", "--overwrite"],
            "error",
            "good.h5",
        ),
    ]
    return result


def _training_cases(f: dict[str, str], out: Path) -> list[Case]:
    """The training verbs: every bad input file, bad settings, and training from ROOT."""
    tiny = ["--config", f["tiny.yaml"], "--no-progress", "--threads", "1"]
    verbs = {
        "train-flow": lambda data, run: ["train-flow", *tiny, "--data", data, "--out", run],
        "train-diffusion": lambda data, run: ["train-diffusion", *tiny, "--data", data, "--out", run],
        "distill": lambda data, run: ["distill", "--teacher", f["teacher"], *tiny, "--data", data, "--out", run],
    }
    result = []
    for verb, argv in verbs.items():
        for name, text in BAD_INPUTS.items():
            if name in ("good.root",):
                continue
            result.append(
                Case(
                    f"{verb} --data {name}",
                    argv(f[name], str(out / f"run-{verb}")),
                    "error",
                    Path(f[name]).name,
                    must_say=text,
                )
            )
        result.append(Case(f"{verb} --data good.root", argv(f["good.root"], str(out / f"ok-{verb}")), "ok"))
        run = str(out / f"bad-{verb}")
        result += [
            Case(f"{verb} --steps 0", [*argv(f["good.h5"], run), "--steps", "0"], "error", "steps"),
            Case(f"{verb} --time-budget soon", [*argv(f["good.h5"], run), "--time-budget", "soon"], "error", "soon"),
            Case(
                f"{verb} --resume without a run",
                [*argv(f["good.h5"], str(out / "no-run")), "--resume"],
                "error",
                "no-run",
                output=str(out / "no-run"),
                preexisting=False,
            ),
        ]
        if verb != "train-flow":
            result += [
                Case(f"{verb} --lr {lr}", [*argv(f["good.h5"], run), "--lr", lr], "error", "learning_rate")
                for lr in ("-1", "0", "nan")
            ]
            result.append(
                Case(f"{verb} --batch-size 0", [*argv(f["good.h5"], run), "--batch-size", "0"], "error", "batch_size")
            )
    result += [
        Case(
            "distill --teacher missing",
            ["distill", "--teacher", f["missing"], *tiny, "--data", f["good.h5"], "--out", str(out / "d")],
            "error",
            "does_not_exist",
        ),
        Case(
            "distill --teacher a shower file",
            ["distill", "--teacher", f["good.h5"], *tiny, "--data", f["good.h5"], "--out", str(out / "d")],
            "error",
            "good.h5",
        ),
        Case(
            "train-diffusion --config missing",
            ["train-diffusion", "--config", f["missing"], "--data", f["good.h5"], "--out", str(out / "d")],
            "error",
            "does_not_exist",
        ),
    ]
    return result


def _threshold_recorded(path: Path) -> None:
    with h5py.File(path, "r") as f:
        attrs = dict(f.attrs)
    assert attrs["threshold_mip"] == 0.5 and abs(attrs["threshold_mev"] - 0.5 * attrs["mip_mev_500um"]) < 1e-12, attrs
    assert not isinstance(attrs["threshold_mev"], (str, bytes)) and attrs["schema_version"] == 2


# -- running --------------------------------------------------------------------------------------


def _temp_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*tmp"))


OVERWRITING_VERBS = ("generate", "convert", "project", "plot-shower", "export", "voxelize", "bench", "check-flow")


def run_case(case: Case, work: Path) -> Outcome:
    """Run one case in-process; record exit code, stderr, traceback, leftovers and damage."""
    output = Path(case.output) if case.output else None
    if output is not None and output.is_file():
        output.unlink()
    argv = case.argv
    if output is not None and case.expect in ("error", "any") and case.preexisting and not output.exists():
        output.write_bytes(SENTINEL)
        # the user asked to replace the file, so the bad input, not the existing output, must stop it
        argv = [*argv, "--overwrite"] if argv[0] in OVERWRITING_VERBS else argv
    stderr, stdout = io.StringIO(), io.StringIO()
    code: int | None = None
    tb = ""
    # Python's default warning filters, as in a shell (pytest's turn warnings into errors): a command's
    # warning is a line on stderr, e.g. generate --allow-extrapolation's one note on the energy range
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout), warnings.catch_warnings():
        warnings.simplefilter("default")
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = int(exc.code or 0)
        except BaseException:  # noqa: BLE001 - a traceback is what the battery looks for
            tb = traceback.format_exc()
    outcome = Outcome(case, code, stderr.getvalue(), tb, _temp_files(work))
    lines = [
        line for line in outcome.stderr.splitlines() if line.strip() and "Warning" not in line and "warn" not in line
    ]
    expect = case.expect
    if expect == "any":  # allowed to fail cleanly or succeed correctly
        expect = "ok" if code == 0 else "error"
        outcome.case = Case(**{**vars(case), "expect": expect})
    if tb:
        return outcome
    if expect == "error":
        errors = [line for line in lines if "error" in line]
        if code != 2:
            outcome.problem = f"exit code {code}, expected 2"
        elif len(errors) != 1:
            outcome.problem = f"expected one error line, got {lines}"
        elif case.must_name and case.must_name not in errors[0]:
            outcome.problem = f"the error does not name {case.must_name!r}: {errors[0]}"
        elif case.must_say and case.must_say not in errors[0]:
            outcome.problem = f"the error does not say {case.must_say!r}: {errors[0]}"
        if output is not None:
            if case.preexisting:
                if not output.is_file() or output.read_bytes() != SENTINEL:
                    outcome.damaged = f"{output.name} was changed by a failed run"
                output.unlink(missing_ok=True)
            elif output.exists() and case.name != "convert onto its input":
                outcome.damaged = f"{output.name} was created by a failed run"
    else:
        if code != 0:
            outcome.problem = f"exit code {code}, expected 0: {lines[-1:]}"
        elif case.check is not None and output is not None:
            try:
                case.check(output)
            except AssertionError as exc:
                outcome.problem = f"wrong output: {exc}"
    return outcome


def run_battery(folder: Path) -> tuple[list[Outcome], dict[str, int]]:
    """Make the files, run every case; returns the outcomes and the counts for the README."""
    files = make_files(folder / "inputs")
    out = folder / "outputs"
    out.mkdir(exist_ok=True)
    # a ROOT file with cells, for the convert round trip
    assert main(["generate", "--energies", "50", "-n", "2", "--cells", "ild", "-o", str(out / "gcr.root")]) == 0
    outcomes = [run_case(case, folder) for case in cases(files, out)]
    counts = {
        "cases": len(outcomes),
        "clear_errors": sum(o.passed and o.case.expect == "error" for o in outcomes),
        "correct_behaviours": sum(o.passed and o.case.expect == "ok" for o in outcomes),
        "tracebacks": sum(bool(o.traceback) for o in outcomes),
        "leftover_files": len({name for o in outcomes for name in o.leftovers}),
        "damaged_outputs": sum(bool(o.damaged) for o in outcomes),
        "other_failures": sum(bool(o.problem) for o in outcomes),
    }
    return outcomes, counts
