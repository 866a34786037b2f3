"""The real CMS HGCal CE-E silicon geometry (26 layers) with exact wafer-then-cell assignment.

Source: ``hgcal_ce_e_26layers.npz`` (the public HGCalShowers geometry as plain arrays; see the
shared data README §3). Every cell is decoded from its CMSSW ``HGCSiliconDetId`` (cell u/v, wafer
U/V with signs, layer, type). Cells are flat-top hexagons: high density (HD, type 0, 12 cells per
wafer edge, pitch 0.806 cm) and low density (LD, types 1 and 2, 8 per edge, pitch 1.209 cm). Wafers
are pointy-top hexagons of flat-to-flat size ``W = sqrt(3) * 8 * p_LD`` = 16.75 cm, on a lattice with
one origin per layer; both densities are mixed in every layer.

What is measured from the file, not assumed: the two cell pitches (least-squares fit of every
wafer's cells to a hexagonal lattice), the cell-lattice origin of every wafer and the wafer-lattice
origin of each layer (from the wafers with all 3N^2 cells). The wafer centre is a cell vertex, and
wafers are placed in several rotations, so wafers of one density do not all share one cell
lattice: some HD wafers' lattices are shifted by one cell side. Wafers of one layer whose lattices
coincide share a lattice id (3 per layer in this file). Loading fails if any cell is more than
:data:`LATTICE_TOLERANCE_MM` from its lattice point.

**Assignment rule** (exact, vectorised, identical in numpy and torch):

1. The point's wafer is the wafer hexagon that contains it (rounding on the wafer lattice): the
   physical wafer edge. A point in a wafer that is not in the file is lost (outside acceptance).
2. Inside the wafer, the point goes to the hexagon of that wafer's cell lattice that contains it.
   Near an edge with a wafer on the same lattice this can be the neighbouring wafer's cell (the cell
   hexagon straddles the wafer edge, as the nearest-centre rule would also say).
3. If that hexagon's centre lies in a wafer on another lattice (HD next to LD, or a shifted HD
   lattice), the point lies in a sliver of a cut edge cell: it goes to the nearest of the six
   neighbouring cells that belong to its own wafer.
4. A hexagon whose cell is not in the file (outside the 20-shell acceptance) loses the point.

The local frame (mm) of each layer is centred on that layer's central cell (``x_cm, y_cm`` of the
file times 10), i.e. on the axis of the CMS photon gun; a normal-incidence shower with
``impact_mm=(0, 0)`` hits every layer at its central cell. The file has no layer depths:
``layer_z_mm`` is nominal (the mean ILD depth of the shower layers that the default ``linear`` map
sends to each HGCal layer).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from caloclouds.config import DetectorConfig
from caloclouds.errors import InputFileError
from projection._ops import ops_for
from projection.geometry import Geometry, read_npz
from projection.hexgrid import NEIGHBOURS_QR, hex_constants, hex_round
from projection.mip import HGCAL_THICKNESS_UM, THICKNESS_EXTRA
from projection.placement import resolve_layer_map

__all__ = [
    "load_hgcal",
    "decode_detid",
    "assign",
    "wafer_outlines",
    "REQUIRED_TABLES",
    "CELLS_PER_WAFER_EDGE",
    "LATTICE_TOLERANCE_MM",
]

REQUIRED_TABLES = (
    "cell_k",
    "cell_origin_x_mm",
    "cell_origin_y_mm",
    "wafer_k",
    "wafer_origin_x_mm",
    "wafer_origin_y_mm",
    "wafer_lut",
    "wafer_qr_min",
    "wafer_lattice",
    "lattice_density",
    "cell_lut",
    "cell_qr_min",
    "cell_wafer",
    "pitch_mm",
)
CELLS_PER_WAFER_EDGE = (12, 8)  # (HD, LD): CMSSW HGCalHighDensityN, HGCalLowDensityN
LATTICE_TOLERANCE_MM = 0.01  # 1e-3 cm: cells farther than this from their lattice point fail loading
CM_TO_MM = 10.0
DETECTOR_CE_E = 8
_REQUIRED_ARRAYS = ("detid", "x_cm", "y_cm", "celltype", "center_x_cm", "center_y_cm", "ncells")
_SQRT3 = math.sqrt(3.0)


def decode_detid(detid: np.ndarray) -> dict[str, np.ndarray]:
    """Decode CMSSW ``HGCSiliconDetId`` values (bit layout of the data README §3)."""
    d = np.asarray(detid).astype(np.int64)

    def bits(shift: int, n: int) -> np.ndarray:
        return (d >> shift) & ((1 << n) - 1)

    return {
        "cell_u": bits(0, 5),
        "cell_v": bits(5, 5),
        "wafer_u": np.where(bits(14, 1) == 1, -bits(10, 4), bits(10, 4)),
        "wafer_v": np.where(bits(19, 1) == 1, -bits(15, 4), bits(15, 4)),
        "layer": bits(20, 5),
        "zside": bits(25, 1),
        "type": bits(26, 2),
        "detector": bits(28, 4),
    }


def _np_round(x: np.ndarray, y: np.ndarray, pitch: float, pointy: bool) -> tuple[np.ndarray, np.ndarray]:
    kq, kx, ky = hex_constants(pitch)
    return hex_round(x.astype(np.float32), y.astype(np.float32), kq, kx, ky, pointy=pointy)


def _lattice_xy(q: np.ndarray, r: np.ndarray, pitch: float) -> tuple[np.ndarray, np.ndarray]:
    return q * (_SQRT3 / 2) * pitch, (r + q / 2) * pitch


def _fit_pitch(x: np.ndarray, y: np.ndarray, guess: float) -> float:
    """Least-squares pitch of one flat-top lattice of points (origin free)."""
    q, r = _np_round(x - x[0], y - y[0], guess, False)
    a = np.zeros((2 * len(x), 3))
    a[0::2, 0] = 1.0
    a[1::2, 1] = 1.0
    a[0::2, 2] = q * (_SQRT3 / 2)
    a[1::2, 2] = r + q / 2
    b = np.empty(2 * len(x))
    b[0::2], b[1::2] = x, y
    return float(np.linalg.lstsq(a, b, rcond=None)[0][2])


def _read(path: Path) -> dict[str, np.ndarray]:
    content = read_npz(path, _REQUIRED_ARRAYS, "HGCal geometry file")
    shape = content["detid"].shape
    for key in ("x_cm", "y_cm", "celltype"):
        if content[key].shape != shape:
            raise InputFileError(path, f"shape {content[key].shape} differs from detid {shape}", where=key)
    return content


def load_hgcal(path: str | Path, *, shower_detector: DetectorConfig) -> Geometry:  # noqa: PLR0915 - one linear recipe
    """Build the ``hgcal`` geometry from the CE-E npz file (see the module docstring).

    The depth of each HGCal layer is the mean depth of the ``shower_detector`` layers that the
    default (linear) layer map sends to it, so the cells sit at the depths of the showers.

    Raises:
        InputFileError: missing arrays, DetIds that are not CE-E silicon, cells off their lattice.
    """
    from scipy.spatial import cKDTree

    path = Path(path)
    content = _read(path)
    detid = content["detid"]
    n_layers = detid.shape[0]
    valid = detid.astype(np.int64) > 0
    layer = np.nonzero(valid)[0].astype(np.int64)
    fields = decode_detid(detid[valid])
    if np.any(fields["detector"] != DETECTOR_CE_E):
        raise InputFileError(path, f"DetIds with detector != {DETECTOR_CE_E} (CE-E) found", where="detid")
    if np.any(fields["layer"] != layer + 1):
        raise InputFileError(path, "the DetId layer field does not match the row (layer) of the array", where="detid")
    counts = np.bincount(layer, minlength=n_layers)
    if np.any(counts != content["ncells"]):
        raise InputFileError(path, "ncells does not match the number of non-zero DetIds per layer", where="ncells")
    x = content["x_cm"][valid].astype(np.float64) * CM_TO_MM
    y = content["y_cm"][valid].astype(np.float64) * CM_TO_MM
    density = (fields["type"] != 0).astype(np.int64)  # 0 = HD, 1 = LD
    # -- wafers: one (layer, U, V) each -----------------------------------------------------------
    wafer_key = (layer * 64 + fields["wafer_u"] + 32) * 64 + fields["wafer_v"] + 32
    keys, cell_wafer, wafer_counts = np.unique(wafer_key, return_inverse=True, return_counts=True)
    n_wafers = len(keys)
    w_layer = keys // (64 * 64)
    w_u = (keys // 64) % 64 - 32
    w_v = keys % 64 - 32
    w_density = np.zeros(n_wafers, np.int64)
    w_density[cell_wafer] = density
    if np.any(np.bincount(cell_wafer, weights=density, minlength=n_wafers) % wafer_counts != 0):
        raise InputFileError(path, "a wafer holds cells of both densities", where="celltype")
    order = np.argsort(cell_wafer, kind="stable")
    starts = np.concatenate(([0], np.cumsum(wafer_counts)))
    # -- cell pitches: nearest-neighbour guess, then least squares over the large wafers ----------
    pitch = np.zeros(2)
    for d in (0, 1):
        fits = []
        for w in np.flatnonzero((w_density == d) & (wafer_counts >= 3)):
            sel = order[starts[w] : starts[w + 1]]
            pts = np.column_stack([x[sel], y[sel]])
            guess = float(np.median(cKDTree(pts).query(pts, k=2)[0][:, 1]))
            fits.append(_fit_pitch(x[sel], y[sel], guess))
        if not fits:
            raise InputFileError(path, f"no cells of {'high' if d == 0 else 'low'} density", where="celltype")
        pitch[d] = float(np.median(fits))
    wafer_w = _SQRT3 * CELLS_PER_WAFER_EDGE[1] * pitch[1]
    if abs(_SQRT3 * CELLS_PER_WAFER_EDGE[0] * pitch[0] - wafer_w) > LATTICE_TOLERANCE_MM:
        raise InputFileError(path, f"HD and LD pitches {pitch} mm do not give the same wafer size")
    # -- cell lattice of every wafer; wafers of one layer whose lattices coincide share a lattice id
    w_origin = np.zeros((n_wafers, 2))
    for w in range(n_wafers):  # load time only, a few hundred wafers
        sel = order[starts[w] : starts[w + 1]]
        p = pitch[w_density[w]]
        qs, rs = _np_round(x[sel] - x[sel[0]], y[sel] - y[sel[0]], p, False)
        lx, ly = _lattice_xy(qs, rs, p)
        w_origin[w] = (x[sel[0]] + np.mean(x[sel] - x[sel[0]] - lx), y[sel[0]] + np.mean(y[sel] - y[sel[0]] - ly))
    w_lattice = np.full(n_wafers, -1, np.int64)
    lattice_origin, lattice_density, lattice_layer = [], [], []
    for w in range(n_wafers):
        p = pitch[w_density[w]]
        for lat in range(len(lattice_origin)):
            if lattice_layer[lat] != w_layer[w] or lattice_density[lat] != w_density[w]:
                continue
            dx, dy = w_origin[w] - lattice_origin[lat]
            qd, rd = _np_round(np.array([dx]), np.array([dy]), p, False)
            lx, ly = _lattice_xy(qd, rd, p)
            if math.hypot(dx - lx[0], dy - ly[0]) < LATTICE_TOLERANCE_MM:
                w_lattice[w] = lat
                break
        else:
            w_lattice[w] = len(lattice_origin)
            lattice_origin.append(w_origin[w].copy())
            lattice_density.append(w_density[w])
            lattice_layer.append(w_layer[w])
    lattice_origin_arr = np.array(lattice_origin)
    lattice_density_arr = np.array(lattice_density, np.int64)
    c_lat = w_lattice[cell_wafer]
    c_pitch = pitch[density]
    q = np.zeros(len(x), np.int64)
    r = np.zeros(len(x), np.int64)
    for d in (0, 1):
        sel = density == d
        q[sel], r[sel] = _np_round(
            x[sel] - lattice_origin_arr[c_lat[sel], 0], y[sel] - lattice_origin_arr[c_lat[sel], 1], pitch[d], False
        )
    lx, ly = _lattice_xy(q, r, c_pitch)
    dev = np.hypot(x - lattice_origin_arr[c_lat, 0] - lx, y - lattice_origin_arr[c_lat, 1] - ly).max()
    if dev > LATTICE_TOLERANCE_MM:
        raise InputFileError(path, f"a cell is {dev:.3g} mm off its wafer's hexagonal lattice")
    # -- wafer lattice: origin per layer from the wafers with all 3N^2 cells ----------------------
    w_x = (-2 * w_u + w_v) * wafer_w / 2  # CMSSW waferX = -2U + V, waferY = 2V (measured orientation)
    w_y = 2 * w_v * wafer_w * _SQRT3 / 4
    mean_x = np.bincount(cell_wafer, weights=x) / wafer_counts
    mean_y = np.bincount(cell_wafer, weights=y) / wafer_counts
    full = wafer_counts == 3 * np.asarray(CELLS_PER_WAFER_EDGE)[w_density] ** 2
    wafer_origin = np.zeros((n_layers, 2))
    for lay in range(n_layers):
        sel = full & (w_layer == lay)
        if not sel.any():
            raise InputFileError(path, f"layer {lay} has no complete wafer to fix the wafer lattice")
        wafer_origin[lay] = (np.median(mean_x[sel] - w_x[sel]), np.median(mean_y[sel] - w_y[sel]))
        dev = np.hypot(
            mean_x[sel] - w_x[sel] - wafer_origin[lay, 0], mean_y[sel] - w_y[sel] - wafer_origin[lay, 1]
        ).max()
        if dev > LATTICE_TOLERANCE_MM:
            raise InputFileError(path, f"layer {lay}: a wafer centre is {dev:.3g} mm off the wafer lattice")
    wq, wr = _np_round(w_x, w_y, wafer_w, True)
    # -- dense lookup tables -----------------------------------------------------------------------
    wq_min, wr_min = int(wq.min()) - 1, int(wr.min()) - 1
    n_wq, n_wr = int(wq.max()) - wq_min + 2, int(wr.max()) - wr_min + 2
    wafer_lut = np.full((n_layers, n_wq, n_wr), -1, np.int64)
    wafer_lut[w_layer, wq - wq_min, wr - wr_min] = np.arange(n_wafers)
    q_min, r_min = int(q.min()) - 2, int(r.min()) - 2
    n_q, n_r = int(q.max()) - q_min + 3, int(r.max()) - r_min + 3
    cell_lut = np.full((len(lattice_origin), n_q, n_r), -1, np.int64)
    cell_lut[c_lat, q - q_min, r - r_min] = np.arange(len(x))
    if np.count_nonzero(cell_lut >= 0) != len(x) or np.count_nonzero(wafer_lut >= 0) != n_wafers:
        raise InputFileError(path, "two cells or wafers share one lattice position")
    for lut in (wafer_lut, cell_lut):  # _lookup relies on empty borders
        assert (
            np.all(lut[..., 0, :] < 0)
            and np.all(lut[..., -1, :] < 0)
            and np.all(lut[..., :, 0] < 0)
            and np.all(lut[..., :, -1] < 0)
        )
    tables = {
        "pitch_mm": pitch,  # (2,) HD, LD flat-to-flat cell pitch
        "cell_k": np.array([hex_constants(p) for p in pitch], dtype=np.float32)[
            lattice_density_arr
        ].T.copy(),  # (3, lattices)
        "cell_origin_x_mm": lattice_origin_arr[:, 0].astype(np.float32),  # centre of cell (0, 0) of each lattice
        "cell_origin_y_mm": lattice_origin_arr[:, 1].astype(np.float32),
        "lattice_density": lattice_density_arr,
        "wafer_k": np.array(hex_constants(wafer_w), dtype=np.float32),
        "wafer_origin_x_mm": wafer_origin[:, 0].astype(np.float32),  # wafer-lattice origin of each layer
        "wafer_origin_y_mm": wafer_origin[:, 1].astype(np.float32),
        "wafer_lut": wafer_lut,
        "wafer_qr_min": np.array([wq_min, wr_min], np.int64),
        "wafer_lattice": w_lattice,
        "cell_lut": cell_lut,
        "cell_qr_min": np.array([q_min, r_min], np.int64),
        "cell_wafer": cell_wafer.astype(np.int64),
    }
    unknown = sorted(set(np.unique(fields["type"]).tolist()) - set(HGCAL_THICKNESS_UM))
    if unknown:
        raise InputFileError(
            path,
            f"cell types {unknown} have no known silicon thickness (expected {sorted(HGCAL_THICKNESS_UM)})",
            where="detid",
        )
    thickness_lut = np.array([HGCAL_THICKNESS_UM[t] for t in sorted(HGCAL_THICKNESS_UM)])
    thickness_um = thickness_lut[fields["type"]]
    det = shower_detector
    lmap = resolve_layer_map("linear", n_shower_layers=det.n_layers, n_detector_layers=n_layers)
    z = np.bincount(lmap, weights=det.layer_centre_z_mm, minlength=n_layers) / np.maximum(
        np.bincount(lmap, minlength=n_layers), 1
    )
    return Geometry(
        name="hgcal",
        kind="hgcal",
        layer_z_mm=z,
        cell_layer=layer,
        cell_x_mm=x,
        cell_y_mm=y,
        cell_size_mm=c_pitch,
        cell_shape="hex_flat",
        tables=tables,
        default_layer_map="linear",
        extras={
            "detid": detid[valid].astype(np.int64),
            "celltype": fields["type"],
            "wafer_u": fields["wafer_u"],
            "wafer_v": fields["wafer_v"],
            "cell_u": fields["cell_u"],
            "cell_v": fields["cell_v"],
            "wafer": cell_wafer.astype(np.int64),
            "lattice": c_lat,
            THICKNESS_EXTRA: thickness_um,
        },
    )


def wafer_outlines(geometry: Geometry, layer: int) -> np.ndarray:
    """(n_wafers, 6, 2) corner positions (mm) of the wafers of ``layer`` (pointy-top hexagons)."""
    from projection.hexgrid import hex_centre

    t = geometry.tables
    wafer_w = _SQRT3 * CELLS_PER_WAFER_EDGE[1] * float(t["pitch_mm"][1])
    wq, wr = np.nonzero(t["wafer_lut"][layer] >= 0)
    cx, cy = hex_centre(wq + t["wafer_qr_min"][0], wr + t["wafer_qr_min"][1], wafer_w, pointy=True)
    cx = cx + float(t["wafer_origin_x_mm"][layer])
    cy = cy + float(t["wafer_origin_y_mm"][layer])
    angle = np.deg2rad(30.0 + 60.0 * np.arange(6))[None, :]
    radius = wafer_w / _SQRT3
    return np.stack([cx[:, None] + radius * np.cos(angle), cy[:, None] + radius * np.sin(angle)], axis=-1)


def _lookup(lut: Any, a: Any, b: Any, lead: Any, ops: Any) -> Any:
    """``lut[lead, a, b]``, -1 where (a, b) is outside the table.

    The tables have an empty (-1) border row and column on every side, so clipping an outside
    index onto the border gives -1 without a separate range test.
    """
    n_a, n_b = lut.shape[-2], lut.shape[-1]
    flat = (lead * n_a + ops.clip(a, 0, n_a - 1)) * n_b + ops.clip(b, 0, n_b - 1)
    return ops.take(lut.reshape(-1), flat)


def assign(tables: dict[str, Any], layer: Any, x: Any, y: Any) -> Any:
    """Cell id of each point (numpy or torch) by the wafer-then-cell rule of the module docstring."""
    ops = ops_for(x)
    wk = tables["wafer_k"]
    wq, wr = hex_round(
        x - ops.take(tables["wafer_origin_x_mm"], layer),
        y - ops.take(tables["wafer_origin_y_mm"], layer),
        wk[0],
        wk[1],
        wk[2],
        pointy=True,
    )
    w_min = tables["wafer_qr_min"]
    wafer = _lookup(tables["wafer_lut"], wq - int(w_min[0]), wr - int(w_min[1]), layer, ops)
    lattice = ops.take(tables["wafer_lattice"], ops.clip(wafer, 0, None))
    k = tables["cell_k"]
    cx = x - ops.take(tables["cell_origin_x_mm"], lattice)
    cy = y - ops.take(tables["cell_origin_y_mm"], lattice)
    q, r = hex_round(cx, cy, ops.take(k[0], lattice), ops.take(k[1], lattice), ops.take(k[2], lattice))
    c_min = tables["cell_qr_min"]
    cell = _lookup(tables["cell_lut"], q - int(c_min[0]), r - int(c_min[1]), lattice, ops)
    cell = ops.where(wafer >= 0, cell, -1)
    miss = ops.nonzero((wafer >= 0) & (cell < 0))
    if len(miss) == 0:
        return cell
    cell[miss] = _sliver(tables, ops, layer[miss], q[miss], r[miss], cx[miss], cy[miss], wafer[miss], lattice[miss])
    return cell


def _sliver(
    tables: dict[str, Any], ops: Any, layer: Any, q: Any, r: Any, cx: Any, cy: Any, wafer: Any, lattice: Any
) -> Any:
    """Step 3 of the rule, for the points whose hexagon has no cell on their wafer's lattice."""
    c_min = tables["cell_qr_min"]
    half_root3 = ops.f32(_SQRT3 / 2, cx)
    half = ops.f32(0.5, cx)
    p = ops.to_f32(tables["pitch_mm"][tables["lattice_density"][lattice]])
    # the centre of the rounded hexagon -> the wafer it lies in
    hx = ops.to_f32(q) * half_root3 * p + tables["cell_origin_x_mm"][lattice] - tables["wafer_origin_x_mm"][layer]
    hy = (
        (ops.to_f32(r) + ops.to_f32(q) * half) * p
        + tables["cell_origin_y_mm"][lattice]
        - tables["wafer_origin_y_mm"][layer]
    )
    wk = tables["wafer_k"]
    hq, hr = hex_round(hx, hy, wk[0], wk[1], wk[2], pointy=True)
    w_min = tables["wafer_qr_min"]
    h_wafer = _lookup(tables["wafer_lut"], hq - int(w_min[0]), hr - int(w_min[1]), layer, ops)
    other = (h_wafer >= 0) & (tables["wafer_lattice"][ops.clip(h_wafer, 0, None)] != lattice)
    candidates, distances = [], []
    for dq, dr in NEIGHBOURS_QR:
        nq, nr = q + dq, r + dr
        cand = _lookup(tables["cell_lut"], nq - int(c_min[0]), nr - int(c_min[1]), lattice, ops)
        own = (cand >= 0) & (tables["cell_wafer"][ops.clip(cand, 0, None)] == wafer)
        nx = ops.to_f32(nq) * half_root3 * p
        ny = (ops.to_f32(nr) + ops.to_f32(nq) * half) * p
        d2 = (cx - nx) * (cx - nx) + (cy - ny) * (cy - ny)
        candidates.append(ops.where(own, cand, -1))
        distances.append(ops.where(own, d2, ops.f32(np.inf, cx)))
    pick = ops.stack_argmin(distances)
    chosen = ops.take_rows(ops.stack(candidates), ops.arange(len(q), cx), pick)
    return ops.where(other, chosen, -1)
