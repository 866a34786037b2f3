"""Bad input: unknown names, malformed files, NaN points, layers outside the geometry, layer maps."""

from __future__ import annotations

import numpy as np
import pytest

import projection
from caloclouds.errors import InputFileError
from caloclouds.showers import Showers
from projection.placement import resolve_layer_map


def _showers(layer: float = 3.0, x: float = 1.0) -> Showers:
    pts = np.array([[x, 2.0, layer, 1.0], [0.5, 0.5, 0.0, 2.0]], np.float32)
    return Showers.from_counts(pts, np.array([1, 1]), np.array([10.0, 20.0]))


def test_unknown_geometry_lists_valid_names() -> None:
    with pytest.raises(projection.ProjectionError, match="valid names: ild, ild-real, hgcal, hex:PITCH_MM"):
        projection.get_geometry("cms")


@pytest.mark.parametrize("spec", ["hex:", "hex:-1", "hex:abc", "hex:5:round"])
def test_bad_hex_spec(spec: str) -> None:
    with pytest.raises(projection.ProjectionError, match="hex:PITCH_MM"):
        projection.get_geometry(spec)


def test_malformed_geometry_files(tmp_path) -> None:
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(InputFileError, match="not a readable .npz"):
        projection.get_geometry(junk)
    partial = tmp_path / "partial.npz"
    np.savez(partial, name="x", kind="square_grid")
    with pytest.raises(InputFileError, match="missing arrays"):
        projection.get_geometry(partial)
    with pytest.raises(InputFileError, match="not found"):
        projection.get_geometry(tmp_path / "absent.npz")
    good = tmp_path / "good.npz"
    projection.save_geometry(projection.get_geometry("hex:9"), good)
    content = dict(np.load(good))
    content["kind"] = np.str_("triangles")
    bad_kind = tmp_path / "bad_kind.npz"
    np.savez(bad_kind, **content)
    with pytest.raises(InputFileError, match="unknown geometry kind 'triangles'"):
        projection.get_geometry(bad_kind)
    del content["table/lut"]
    content["kind"] = np.str_("hex_lattice")
    no_table = tmp_path / "no_table.npz"
    np.savez(no_table, **content)
    with pytest.raises(InputFileError, match="needs tables"):
        projection.get_geometry(no_table)


def test_malformed_hgcal_file(tmp_path) -> None:
    path = tmp_path / "hgcal_ce_e_26layers.npz"
    np.savez(path, detid=np.zeros((2, 3), np.uint64), x_cm=np.zeros((2, 3)))
    with pytest.raises(InputFileError, match="missing arrays"):
        projection.get_geometry("hgcal", data_dir=tmp_path)
    with pytest.raises(InputFileError, match="not found"):
        projection.get_geometry("ild-real", data_dir=tmp_path)


def test_nan_points_are_an_error() -> None:
    g = projection.get_geometry("ild")
    with pytest.raises(projection.ProjectionError, match=r"point 0 \(shower 0\) has a NaN"):
        projection.project(_showers(x=np.nan), g)


@pytest.mark.parametrize("layer", [-1.0, 30.0, 2.5])
def test_layers_outside_the_shower_range_are_an_error(layer: float) -> None:
    with pytest.raises(projection.ProjectionError, match="layers must be integers in 0..29"):
        projection.project(_showers(layer=layer), projection.get_geometry("ild"))


def test_torch_path_reports_the_same_errors() -> None:
    torch = pytest.importorskip("torch")
    s = _showers(layer=31.0)
    with pytest.raises(projection.ProjectionError, match="layer 31"):
        projection.project_torch(
            torch.from_numpy(s.points), torch.from_numpy(s.offsets), projection.get_geometry("ild")
        )


def test_layer_maps() -> None:
    np.testing.assert_array_equal(
        resolve_layer_map("identity", n_shower_layers=30, n_detector_layers=26)[24:], [24, 25, -1, -1, -1, -1]
    )
    linear = resolve_layer_map("linear", n_shower_layers=30, n_detector_layers=26)
    assert linear[0] == 0 and linear[-1] == 25 and len(np.unique(linear)) == 26
    assert np.all(np.diff(linear) >= 0)
    with pytest.raises(projection.ProjectionError, match="layer_map 'deep'"):
        resolve_layer_map("deep", n_shower_layers=30, n_detector_layers=26)
    with pytest.raises(projection.ProjectionError, match="30 integers"):
        resolve_layer_map([0, 1], n_shower_layers=30, n_detector_layers=26)
    with pytest.raises(projection.ProjectionError, match=r"\[-1, 25\]"):
        resolve_layer_map(np.full(30, 26), n_shower_layers=30, n_detector_layers=26)


def test_dropped_layers_are_lost_energy() -> None:
    g = projection.get_geometry("hex:5")
    s = _showers(layer=3.0)
    mapping = np.arange(30)
    mapping[3] = -1
    hits = projection.project(s, g, layer_map=mapping)
    np.testing.assert_allclose(hits.lost_mev, [1.0, 0.0])
    np.testing.assert_allclose(hits.energy_mev(), [0.0, 2.0])


def test_threshold_arguments() -> None:
    g = projection.get_geometry("ild")
    with pytest.raises(projection.ProjectionError, match="not both"):
        projection.project(_showers(), g, threshold_mev=0.1, threshold_mip=0.5)
    with pytest.raises(projection.ProjectionError, match=">= 0 MeV"):
        projection.project(_showers(), g, threshold_mev=-1.0)
    hits = projection.project(_showers(), g, threshold_mip=10.0, mip_mev=0.15)  # 1.5 MeV
    np.testing.assert_allclose(hits.below_threshold_mev, [1.0, 0.0])
    np.testing.assert_allclose(hits.e_mev, [2.0])


def test_empty_batch() -> None:
    hits = projection.project(Showers.empty(), projection.get_geometry("ild"))
    assert len(hits) == 0 and len(hits.e_mev) == 0 and hits.offsets.tolist() == [0]


def test_square_spec_with_gaps() -> None:
    g = projection.get_geometry("square:5:6:1.0")
    assert g.n_layers == 30 and g.tables["gap_every"] == 6
    pts = np.array([[6 * 5.0 + 0.5, 2.0, 0.0, 1.0], [6 * 5.0 - 0.5, 2.0, 0.0, 2.0]], np.float32)  # gap, live cell
    hits = projection.project(Showers.from_counts(pts, np.array([2]), np.array([1.0])), g)
    np.testing.assert_allclose(hits.lost_mev, [1.0])
    np.testing.assert_allclose(hits.e_mev, [2.0])
    with pytest.raises(projection.ProjectionError, match="square:PITCH_MM"):
        projection.get_geometry("square:5:6")
