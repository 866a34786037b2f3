"""EDM4hep reader: CellID decoding, local frame, box cut and clustering of the ILD photon event."""

from __future__ import annotations

import numpy as np
import pytest

from caloclouds.config import DetectorConfig
from caloclouds.errors import InputFileError
from caloclouds.io.edm4hep import (
    _local_frame,
    decode_cellid,
    is_edm4hep_root,
    parse_cellid_encoding,
    read_edm4hep,
)

ILD_ENCODING = "system:0:5,module:5:3,stave:8:4,tower:12:4,layer:16:6,wafer:22:6,slice:28:4,cellX:32:-16,cellY:48:-16"


def test_parse_and_decode_cellid() -> None:
    fields = parse_cellid_encoding(ILD_ENCODING)
    assert fields["layer"] == (16, 6, False) and fields["cellX"] == (32, 16, True)
    cell = (
        np.uint64(20)
        | (np.uint64(7) << np.uint64(16))
        | (np.uint64(0xFFFD) << np.uint64(32))
        | (np.uint64(5) << np.uint64(48))
    )
    ids = np.array([cell], np.uint64)
    assert decode_cellid(ids, fields["system"]).tolist() == [20]
    assert decode_cellid(ids, fields["layer"]).tolist() == [7]
    assert decode_cellid(ids, fields["cellX"]).tolist() == [-3]
    assert decode_cellid(ids, fields["cellY"]).tolist() == [5]
    # "name:width" continues after the previous field
    assert parse_cellid_encoding("a:4,b:3,c:-2") == {"a": (0, 4, False), "b": (4, 3, False), "c": (7, 2, True)}
    with pytest.raises(ValueError, match="bad CellID field"):
        parse_cellid_encoding("a:1:2:3")


def test_local_frame_is_right_handed() -> None:
    d = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.6, 0.0, 0.8], [0.3, 0.9, 0.1]])
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    x, y = _local_frame(d)
    for i in range(len(d)):
        frame = np.stack([x[i], y[i], d[i]])
        np.testing.assert_allclose(frame @ frame.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(frame) == pytest.approx(1.0)
    # ILD barrel photon along +y: local x = global z (beam), local y = global x
    np.testing.assert_allclose(x[0], [0, 0, 1])
    np.testing.assert_allclose(y[0], [1, 0, 0])


def test_single_photon_event(shared) -> None:
    path = shared("ild_single_photon.edm4hep.root")
    assert is_edm4hep_root(path)
    showers = read_edm4hep(path)
    assert len(showers) == 1
    assert showers.incident_energy_gev[0] == pytest.approx(43.7, abs=0.05)
    raw = float(showers.conditions["raw_visible_mev"][0])
    outside = float(showers.conditions["outside_box_mev"][0])
    assert int(showers.conditions["raw_steps"][0]) == 15973 - 32
    assert outside == pytest.approx(1.16, abs=0.01)
    assert raw + outside == pytest.approx(1016.3, abs=0.05)
    visible = showers.visible_energy_mev()[0]
    assert visible == pytest.approx(raw, rel=1e-4)
    assert visible == pytest.approx(1015.0, rel=2e-3)
    layer = showers.layer
    assert np.array_equal(layer, np.round(layer)) and layer.min() >= 0 and layer.max() <= 29
    assert np.abs(showers.points[:, :2]).max() <= 300.0 + DetectorConfig().subcell_pitch_mm
    # the shower is centred on the axis: energy-weighted centre within a few mm
    assert np.abs(showers.centre_of_gravity_mm()).max() < 3.0
    # the shower maximum of a 44 GeV photon lies in the middle layers
    assert 6 <= np.argmax(showers.layer_sums(30)[0]) <= 20


def test_box_and_collections(shared) -> None:
    path = shared("ild_single_photon.edm4hep.root")
    narrow = read_edm4hep(path, box_mm=20.0)
    assert narrow.visible_energy_mev()[0] < 1010.0
    odd = read_edm4hep(path, collections=["ECalBarrelSiHitsOdd"])
    even = read_edm4hep(path, collections=["ECalBarrelSiHitsEven"])
    total = odd.visible_energy_mev()[0] + even.visible_energy_mev()[0]
    assert total == pytest.approx(1015.15, rel=1e-4)
    with pytest.raises(InputFileError, match="collection 'NoSuchHits' lacks branches.*ECalBarrelSiHitsEven"):
        read_edm4hep(path, collections=["NoSuchHits"])
