"""`caloclouds convert` and `caloclouds info`, including bad input (one-line errors, exit code != 0)."""

from __future__ import annotations

import re

import h5py
import numpy as np
import pytest
import uproot

from caloclouds.cli import main
from caloclouds.io.hdf5 import write_showers
from caloclouds.showers import Showers


def _visible(out: str) -> float:
    return float(re.search(r"total ([0-9.]+) MeV", out).group(1))


def test_convert_edm4hep_then_info(shared, tmp_path, capsys) -> None:
    out = tmp_path / "x.h5"
    assert main(["convert", str(shared("ild_single_photon.edm4hep.root")), "-o", str(out)]) == 0
    assert "wrote 1 showers" in capsys.readouterr().out
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"^showers +1$", text, re.M)
    assert _visible(text) == pytest.approx(1015.0, rel=2e-3)


def test_convert_to_root_then_info(shared, tmp_path, capsys) -> None:
    out = tmp_path / "x.root"
    args = [
        "convert",
        str(shared("ild_single_photon.edm4hep.root")),
        "-o",
        str(out),
        "--format",
        "edm4hep",
        "--box-mm",
        "300",
        "--collections",
        "ECalBarrelSiHitsEven",
        "ECalBarrelSiHitsOdd",
    ]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "our ROOT output" in text and _visible(text) == pytest.approx(1015.15, rel=1e-4)
    with uproot.open(out) as f:
        assert {"n_points", "points_x_mm", "points_layer", "points_e_mev"} <= set(f["events"].keys())


def test_convert_caloclouds_with_config(shared, tmp_path, capsys) -> None:
    config = tmp_path / "cfg.yaml"
    config.write_text("detector:\n  name: test\n")
    out = tmp_path / "cc.h5"
    src = str(shared("ild_caloclouds_mini_sample.hdf5"))
    assert main(["convert", src, "-o", str(out), "--format", "caloclouds", "--config", str(config)]) == 0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"^showers +2$", text, re.M) and "min 163, max 236" in text and "15.62 - 41.93 GeV" in text


def _bad_h5(tmp_path, name, *, points=None, offsets=None, energy=None, drop=None):
    path = tmp_path / name
    pts = np.array([[0, 0, 1, 0.5], [1, 1, 2, 0.25], [2, 2, 3, 1.0]], np.float32) if points is None else points
    data = {
        "points": pts,
        "offsets": np.array([0, 2, 3]) if offsets is None else offsets,
        "incident_energy_gev": np.array([10.0, 20.0], np.float32) if energy is None else energy,
    }
    with h5py.File(path, "w") as f:
        for k, v in data.items():
            if k != drop:
                f[k] = v
    return path


def _truncated(tmp_path):
    full = tmp_path / "full.h5"
    write_showers(full, Showers.from_counts(np.ones((50, 4), np.float32), np.array([20, 30]), np.array([1.0, 2.0])))
    cut = tmp_path / "cut.h5"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    return cut


def _non_root(tmp_path):
    path = tmp_path / "text.root"
    path.write_text("this is not a ROOT file\n")
    return path


def _foreign_root(tmp_path):
    path = tmp_path / "foreign.root"
    with uproot.recreate(path) as f:
        f["events"] = {"incident_energy_gev": np.ones(2, np.float32)}
    return path


CASES = {
    "missing file": (lambda p: p / "nope.h5", "nope.h5: file not found"),
    "missing dataset": (lambda p: _bad_h5(p, "nooff.h5", drop="offsets"), r"nooff.h5: .*(missing|no known layout)"),
    "inconsistent offsets": (
        lambda p: _bad_h5(p, "off.h5", offsets=np.array([0, 2, 5])),
        r"off.h5\[offsets\]: offsets run from 0 to 5",
    ),
    "empty shower is valid": (lambda p: _bad_h5(p, "empty.h5", offsets=np.array([0, 3, 3])), None),
    "decreasing offsets": (
        lambda p: _bad_h5(p, "dec.h5", offsets=np.array([0, 3, 1, 3]), energy=np.ones(3, np.float32)),
        r"dec.h5\[offsets\]: offsets decrease at shower 1",
    ),
    "nan": (
        lambda p: _bad_h5(p, "nan.h5", points=np.array([[0, np.nan, 1, 1]] * 3, np.float32)),
        r"nan.h5\[points\]: point 0 \(shower 0\) has a NaN",
    ),
    "inf energy": (
        lambda p: _bad_h5(p, "inf.h5", energy=np.array([np.inf, 1], np.float32)),
        r"inf.h5\[incident_energy_gev\]: NaN or inf",
    ),
    "negative energy": (
        lambda p: _bad_h5(p, "neg.h5", points=np.array([[0, 0, 1, -1.0]] * 3, np.float32)),
        r"neg.h5\[points\]: .*negative energy -1 MeV",
    ),
    "truncated hdf5": (_truncated, r"cut.h5: .*truncated"),
    "non-root .root": (_non_root, r"text.root: not an HDF5 or ROOT file \(the .root extension but no ROOT header\)"),
    "wrong branches": (_foreign_root, r"foreign.root: ROOT file with neither our 'events' layout nor EDM4hep"),
}


@pytest.mark.parametrize("verb", ["info", "convert"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_one_line_error(tmp_path, capsys, case, verb) -> None:
    make, pattern = CASES[case]
    path = make(tmp_path)
    argv = ["info", str(path)] if verb == "info" else ["convert", str(path), "-o", str(tmp_path / "out.h5")]
    code = main(argv)
    err = capsys.readouterr().err
    if pattern is None:  # valid file (an empty shower is fine): must not fail
        assert code == 0, err
        return
    assert code != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"caloclouds {verb}: error: ")
    assert re.search(pattern, lines[0]), lines[0]
    assert not (tmp_path / "out.h5").exists()


def test_convert_edm4hep_wrong_collection_and_box(shared, tmp_path, capsys) -> None:
    src = str(shared("ild_single_photon.edm4hep.root"))
    assert main(["convert", src, "-o", str(tmp_path / "o.h5"), "--collections", "Nope"]) == 2
    assert "collection 'Nope' lacks branches" in capsys.readouterr().err
    assert main(["convert", src, "-o", str(tmp_path / "o.h5"), "--box-mm", "0"]) == 2
    assert "--box-mm must be a finite number > 0" in capsys.readouterr().err
    assert main(["convert", src, "-o", str(tmp_path / "o.csv")]) == 2
    assert "unknown extension '.csv'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def _small_file(path) -> None:  # noqa: ANN001
    rng = np.random.default_rng(0)
    counts = np.array([5, 7])
    pts = np.c_[rng.normal(size=(12, 2)), rng.integers(0, 30, 12), rng.uniform(0.1, 1, 12)].astype(np.float32)
    write_showers(path, Showers.from_counts(pts, counts, np.array([20.0, 40.0])))


@pytest.mark.parametrize(
    "verb",
    [
        ["convert", "{src}"],
        ["project", "--geometry", "ild", "--in", "{src}"],
        ["generate", "--energies", "50", "-n", "2"],
        ["plot-shower", "{src}", "--geometry", "ild"],
    ],
)
def test_an_existing_output_is_replaced_only_with_overwrite(tmp_path, capsys, verb) -> None:  # noqa: ANN001
    src = tmp_path / "src.h5"
    _small_file(src)
    out = tmp_path / ("out.png" if verb[0] == "plot-shower" else "out.h5")
    out.write_bytes(b"a physicist's earlier result")
    argv = [a.format(src=src) for a in verb] + ["-o", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "exists; pass --overwrite" in err and str(out) in err and "Traceback" not in err
    assert out.read_bytes() == b"a physicist's earlier result"
    assert main([*argv, "--overwrite"]) == 0
    assert out.read_bytes() != b"a physicist's earlier result"


@pytest.mark.parametrize("suffix", [".h5", ".root"])
def test_info_reports_the_cell_hits_of_a_generated_file(tmp_path, capsys, suffix) -> None:  # noqa: ANN001
    out = tmp_path / f"g{suffix}"
    assert main(["generate", "--energies", "50", "-n", "3", "--cells", "ild", "-o", str(out)]) == 0
    mean_cells = float(re.search(r"mean cells above threshold: ([0-9.]+)", capsys.readouterr().out).group(1))
    assert main(["info", str(out)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("cell hits"))
    assert "on ild cells, threshold 0.5 MIP" in line
    assert float(re.search(r"per shower mean ([0-9.]+)", line).group(1)) == pytest.approx(mean_cells, abs=0.06)


def test_plots_of_generated_showers_say_they_are_generated(tmp_path, monkeypatch, capsys) -> None:  # noqa: ANN001
    import projection.plot

    notes = []
    real = projection.plot.plot_shower
    monkeypatch.setattr(projection.plot, "plot_shower", lambda *a, **k: notes.append(k["note"]) or real(*a, **k))
    gen = tmp_path / "g.h5"
    assert main(["generate", "--energies", "50", "-n", "1", "-o", str(gen)]) == 0
    src = tmp_path / "src.h5"
    _small_file(src)
    for path in (gen, src):
        assert main(["plot-shower", str(path), "--geometry", "ild", "-o", str(tmp_path / "p.png"), "--overwrite"]) == 0
    capsys.readouterr()
    assert notes[0].startswith("generated by a CaloClouds model trained on Geant4 deposits") and "ild cells" in notes[0]
    assert notes[1].startswith("Geant4 energy deposits")
