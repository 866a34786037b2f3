"""EDM4hep ROOT files (podio): Geant4 steps of ``SimCalorimeterHit`` collections -> clustered showers.

For each event, the reader takes the step contributions (``<collection>Contributions``: ``energy`` in
GeV, ``stepPosition.{x,y,z}`` in mm) of the chosen ``SimCalorimeterHit`` collections, gives every
step the layer of its parent hit (decoded from the hit's ``cellID`` with the collection's
``CellIDEncoding`` from the file's ``metadata`` tree), moves it into the shower's local frame, keeps
the steps inside a transverse box around the shower axis and clusters them onto the sub-cell grid
(:func:`caloclouds.io.steps.cluster_steps`).

Local frame (right-handed, origin at the primary's vertex):

* ``z``: the primary's momentum direction ``d`` (the shower axis);
* ``x``: the beam axis (global +z) made orthogonal to ``d``, i.e. along the ILD barrel's beam
  direction; if ``d`` is within :data:`PARALLEL_COS` of the beam axis (an endcap shower), global +x
  is used instead;
* ``y = z cross x``. For the ILD photon shot along +y this gives (x, y, z)_local = (z, x, y)_global,
  the same cyclic axis mapping as :mod:`caloclouds.io.caloclouds_hdf5`.

The primary is the first ``MCParticles`` entry with ``generatorStatus == 1`` (the first particle if
none has it); the incident energy is its total energy ``sqrt(p^2 + m^2)`` in GeV. Every step stays
with its event: all events of a chunk are processed at once, without Python loops over hits or steps.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from caloclouds.config import ILD_LIKE_DETECTOR, DetectorConfig
from caloclouds.errors import ConfigError, InputFileError
from caloclouds.io.steps import cluster_steps
from caloclouds.showers import Showers, shower_index

__all__ = [
    "DEFAULT_COLLECTIONS",
    "DEFAULT_BOX_MM",
    "PARALLEL_COS",
    "parse_cellid_encoding",
    "decode_cellid",
    "read_cellid_encodings",
    "count_edm4hep",
    "iter_edm4hep",
    "read_edm4hep",
    "is_edm4hep_root",
    "open_root_file",
]

DEFAULT_COLLECTIONS: tuple[str, ...] = ("ECalBarrelSiHitsEven", "ECalBarrelSiHitsOdd")
DEFAULT_BOX_MM = 300.0  # Half-width of the transverse box around the shower axis.
DEFAULT_LAYER_FIELD = "layer"  # CellID field holding the layer.
DEFAULT_FIRST_LAYER = 1  # Value of that field for our layer 0 (the ILD ECal barrel counts 1..30).
PARALLEL_COS = 0.99  # |cos| between shower axis and beam above which global +x is the x reference.
MEV_PER_GEV = 1000.0
_DEFAULT_CHUNK_EVENTS = 1000
_PRIMARY_STATUS = 1  # generatorStatus of the primary particle.
_ROOT_HEADER_BYTES = 20  # Enough of the TFile header for the magic, fVersion, fBEGIN and fEND.
_ROOT_LARGE_FILE_VERSION = 1000000  # fVersion above this: 64-bit seek pointers.


# -- CellID decoding (DD4hep BitFieldCoder syntax) --------------------------------------------------


def parse_cellid_encoding(encoding: str) -> dict[str, tuple[int, int, bool]]:
    """Parse ``"name:offset:width,..."`` (``name:width`` continues after the previous field).

    Returns:
        ``{name: (offset, width, signed)}``; a negative width in the string means a signed field.

    Raises:
        ValueError: for a malformed field.
    """
    fields: dict[str, tuple[int, int, bool]] = {}
    position = 0
    for item in encoding.replace(" ", "").split(","):
        if not item:
            continue
        parts = item.split(":")
        try:
            if len(parts) == 3:
                name, offset, width = parts[0], int(parts[1]), int(parts[2])
            elif len(parts) == 2:
                name, offset, width = parts[0], position, int(parts[1])
            else:
                raise ValueError
        except ValueError:
            raise ValueError(f"bad CellID field {item!r} in {encoding!r}; expected name:offset:width") from None
        if width == 0 or offset < 0 or offset + abs(width) > 64:
            raise ValueError(f"bad CellID field {item!r} in {encoding!r}: bits outside 0..63")
        fields[name] = (offset, abs(width), width < 0)
        position = offset + abs(width)
    return fields


def decode_cellid(cell_id: np.ndarray, field: tuple[int, int, bool]) -> np.ndarray:
    """Value of one field (``(offset, width, signed)`` from :func:`parse_cellid_encoding`) as int64."""
    offset, width, signed = field
    raw = (np.asarray(cell_id).astype(np.uint64) >> np.uint64(offset)) & np.uint64((1 << width) - 1)
    value = raw.astype(np.int64)
    if signed:
        value = np.where(value >= (1 << (width - 1)), value - (1 << width), value)
    return value


def read_cellid_encodings(file: Any, path: Path) -> dict[str, str]:
    """``{collection: CellIDEncoding}`` from the ``metadata`` tree (``PARAMETERS/_stringMap``)."""
    if "metadata" not in file:
        raise InputFileError(path, "no 'metadata' tree, so no CellIDEncoding to decode the layer from")
    meta = file["metadata"]
    try:
        keys = meta["_stringMap.first"].array(library="ak", entry_stop=1)[0]
        values = meta["_stringMap.second"].array(library="ak", entry_stop=1)[0]
    except Exception as exc:  # uproot raises several types for missing/odd branches
        raise InputFileError(path, f"cannot read PARAMETERS/_stringMap: {exc}", where="metadata") from None
    suffix = "__CellIDEncoding"
    return {
        str(k)[: -len(suffix)]: str(v[0])
        for k, v in zip(keys.tolist(), values.tolist())
        if str(k).endswith(suffix) and len(v)
    }


# -- reading ------------------------------------------------------------------------------------


def open_root_file(path: Path) -> Any:
    """Open a ROOT file with uproot after checking its header (magic bytes, size against fEND).

    Raises:
        InputFileError: missing, non-ROOT, truncated or unreadable file.
    """
    import uproot

    from caloclouds.io.checks import check_input_file

    check_input_file(path, "ROOT file")
    with open(path, "rb") as fh:
        header = fh.read(_ROOT_HEADER_BYTES)
    if header[:4] != b"root":
        raise InputFileError(path, "not a ROOT file (it does not start with the 'root' magic bytes)")
    if len(header) < _ROOT_HEADER_BYTES:
        raise InputFileError(path, f"truncated ROOT file: only {len(header)} bytes")
    # TFile header: "root", fVersion, fBEGIN, fEND (4 bytes, or 8 for large files with fVersion > 1000000)
    version = int.from_bytes(header[4:8], "big")
    end = int.from_bytes(header[12:20] if version > _ROOT_LARGE_FILE_VERSION else header[12:16], "big")
    size = path.stat().st_size
    if size < end:
        raise InputFileError(path, f"truncated ROOT file: the header says {end} bytes, the file has {size}")
    try:
        return uproot.open(path)
    except Exception as exc:  # uproot raises many types for corrupt files
        raise InputFileError(path, f"cannot open as ROOT file (truncated or corrupt?): {exc}") from None


def is_edm4hep_root(path: str | Path) -> bool:
    """True if ``path`` is a ROOT file with an ``events`` tree holding ``*Contributions`` branches."""
    try:
        with open_root_file(Path(path)) as f:
            return "events" in f and any(k.endswith("Contributions") for k in f["events"].keys(recursive=False))
    except Exception:
        return False


def count_edm4hep(path: str | Path) -> int:
    """Number of events in the file."""
    path = Path(path)
    with open_root_file(path) as f:
        if "events" not in f:
            raise InputFileError(path, f"no 'events' tree; found {f.keys()}")
        return int(f["events"].num_entries)


def _branches(collection: str) -> dict[str, str]:
    c, rel = collection, f"_{collection}_contributions"
    contrib = f"{collection}Contributions"
    return {
        "cell_id": f"{c}/{c}.cellID",
        "begin": f"{c}/{c}.contributions_begin",
        "end": f"{c}/{c}.contributions_end",
        "rel_index": f"{rel}/{rel}.index",
        "energy": f"{contrib}/{contrib}.energy",
        "x": f"{contrib}/{contrib}.stepPosition.x",
        "y": f"{contrib}/{contrib}.stepPosition.y",
        "z": f"{contrib}/{contrib}.stepPosition.z",
    }


_MC = {
    "status": "MCParticles/MCParticles.generatorStatus",
    "mass": "MCParticles/MCParticles.mass",
    **{f"v{a}": f"MCParticles/MCParticles.vertex.{a}" for a in "xyz"},
    **{f"p{a}": f"MCParticles/MCParticles.momentum.{a}" for a in "xyz"},
}


def _flat(array: Any) -> tuple[np.ndarray, np.ndarray]:
    """Flat numpy content and (E+1,) offsets of a jagged awkward array."""
    import awkward as ak

    counts = ak.to_numpy(ak.num(array, axis=1)).astype(np.int64)
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return ak.to_numpy(ak.flatten(array)), offsets


def _local_frame(direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(E, 3) unit x and y axes for (E, 3) unit shower axes (see the module docstring)."""
    beam = np.broadcast_to(np.array([0.0, 0.0, 1.0]), direction.shape)
    fallback = np.broadcast_to(np.array([1.0, 0.0, 0.0]), direction.shape)
    ref = np.where((np.abs(direction[:, 2]) > PARALLEL_COS)[:, None], fallback, beam)
    x = ref - np.sum(ref * direction, axis=1, keepdims=True) * direction
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, np.cross(direction, x)


def _steps_of_collection(chunk: Any, collection: str, encoding: str, path: Path, *, layer_field: str, first_layer: int):
    """Flat (event, layer, x, y, z, e_GeV) of the steps of one collection in a chunk of events."""
    names = _branches(collection)
    short = {k: v.split("/", 1)[1] for k, v in names.items()}
    cell_id, hit_off = _flat(chunk[short["cell_id"]])
    begin, _ = _flat(chunk[short["begin"]])
    end, _ = _flat(chunk[short["end"]])
    rel_index, rel_off = _flat(chunk[short["rel_index"]])
    energy, step_off = _flat(chunk[short["energy"]])
    hit_event = shower_index(hit_off)
    begin = begin.astype(np.int64)
    count = end.astype(np.int64) - begin
    if np.any(count < 0) or np.any(begin + count > np.diff(rel_off)[hit_event]):
        raise InputFileError(path, "contributions_begin/end point outside the contribution links", where=collection)
    fields = parse_cellid_encoding(encoding)
    if layer_field not in fields:
        raise InputFileError(path, f"CellIDEncoding {encoding!r} has no field {layer_field!r}", where=collection)
    hit_layer = decode_cellid(cell_id, fields[layer_field]) - first_layer
    # every link of hit h: global link position -> contributed step (global index)
    link_off = np.zeros(len(begin) + 1, dtype=np.int64)  # hit h owns links link_off[h]:link_off[h+1]
    np.cumsum(count, out=link_off[1:])
    link_hit = shower_index(link_off)
    link_pos = rel_off[hit_event[link_hit]] + begin[link_hit] + np.arange(len(link_hit)) - link_off[link_hit]
    local_step = rel_index[link_pos].astype(np.int64)
    n_steps_event = np.diff(step_off)
    link_event = hit_event[link_hit]
    if np.any(local_step < 0) or np.any(local_step >= n_steps_event[link_event]):
        msg = "a hit links to a contribution that does not exist"
        raise InputFileError(path, msg, where=f"_{collection}_contributions")
    step = step_off[link_event] + local_step
    coords = [_flat(chunk[short[a]])[0][step] for a in "xyz"]
    return link_event, hit_layer[link_hit], coords, energy[step]


def iter_edm4hep(
    path: str | Path,
    *,
    collections: Sequence[str] = DEFAULT_COLLECTIONS,
    box_mm: float = DEFAULT_BOX_MM,
    detector: DetectorConfig | None = None,
    layer_field: str = DEFAULT_LAYER_FIELD,
    first_layer: int = DEFAULT_FIRST_LAYER,
    chunk_events: int = _DEFAULT_CHUNK_EVENTS,
) -> Iterator[Showers]:
    """Read an EDM4hep file chunk by chunk into clustered showers (one per event).

    Args:
        path: the podio ``.root`` file.
        collections: ``SimCalorimeterHit`` collections whose steps form the shower.
        box_mm: keep steps with ``|x|, |y| <= box_mm`` in the local frame (around the shower axis).
        detector: ``n_layers`` and the sub-cell pitch (default: the ILD-like detector).
        layer_field: CellID field holding the layer.
        first_layer: the field's value for our layer 0.
        chunk_events: events processed at once.

    Yields:
        :class:`Showers` with conditions ``raw_visible_mev`` (in-box step energy), ``raw_steps``
        (in-box steps) and ``outside_box_mev`` (step energy outside the box).
    """
    path = Path(path)
    detector = detector or ILD_LIKE_DETECTOR
    if not (np.isfinite(box_mm) and box_mm > 0):
        raise ConfigError(f"--box-mm must be a finite number > 0, got {box_mm}")
    if not collections:
        raise ValueError("collections must name at least one SimCalorimeterHit collection")
    with open_root_file(path) as f:
        if "events" not in f:
            raise InputFileError(path, f"no 'events' tree, so not an EDM4hep event file; found {f.keys()}")
        tree = f["events"]
        available = set(tree.keys())
        for c in collections:
            missing = [b for b in _branches(c).values() if b not in available]
            if missing:
                suffix = "Contributions"
                have = sorted(k[: -len(suffix)] for k in tree.keys(recursive=False) if k.endswith(suffix))
                raise InputFileError(path, f"collection {c!r} lacks branches {missing}; collections with steps: {have}")
        missing = [b for b in _MC.values() if b not in available]
        if missing:
            raise InputFileError(path, f"missing MCParticles branches {missing}", where="events")
        encodings = read_cellid_encodings(f, path)
        for c in collections:
            if c not in encodings:
                raise InputFileError(path, f"no {c}__CellIDEncoding in PARAMETERS/_stringMap", where="metadata")
        wanted = [b for c in collections for b in _branches(c).values()] + list(_MC.values())
        chunks = tree.iterate(filter_name=wanted, step_size=chunk_events, library="ak")
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            except Exception as exc:  # uproot raises many types for corrupt baskets
                msg = f"cannot read branches (truncated or corrupt file?): {exc}"
                raise InputFileError(path, msg, where="events") from None
            yield _chunk_to_showers(chunk, path, collections, encodings, box_mm, detector, layer_field, first_layer)


def _chunk_to_showers(chunk, path, collections, encodings, box_mm, detector, layer_field, first_layer) -> Showers:
    import awkward as ak

    n_events = len(chunk)
    mc = {k: chunk[v.split("/", 1)[1]] for k, v in _MC.items()}
    if np.any(ak.to_numpy(ak.num(mc["status"], axis=1)) == 0):
        msg = "an event has no MCParticles, so no primary to define the shower axis"
        raise InputFileError(path, msg, where="MCParticles")
    primary = ak.to_numpy(ak.argmax(mc["status"] == _PRIMARY_STATUS, axis=1, keepdims=True)).reshape(-1, 1)
    pick = {k: ak.to_numpy(ak.flatten(v[ak.from_numpy(primary)])).astype(np.float64) for k, v in mc.items()}
    vertex = np.stack([pick["vx"], pick["vy"], pick["vz"]], axis=1)
    momentum = np.stack([pick["px"], pick["py"], pick["pz"]], axis=1)
    p = np.linalg.norm(momentum, axis=1)
    if np.any(p <= 0) or not np.all(np.isfinite(momentum)):
        raise InputFileError(path, "a primary particle has zero or non-finite momentum", where="MCParticles")
    axis_z = momentum / p[:, None]
    axis_x, axis_y = _local_frame(axis_z)
    energy_gev = np.sqrt(p**2 + pick["mass"] ** 2)

    parts = [
        _steps_of_collection(chunk, c, encodings[c], path, layer_field=layer_field, first_layer=first_layer)
        for c in collections
    ]
    event = np.concatenate([q[0] for q in parts])
    layer = np.concatenate([q[1] for q in parts])
    pos = np.stack([np.concatenate([q[2][i] for q in parts]) for i in range(3)], axis=1).astype(np.float64)
    e_mev = np.concatenate([q[3] for q in parts]).astype(np.float64) * MEV_PER_GEV
    if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(e_mev))):
        raise InputFileError(path, "NaN or inf in step positions or energies", where="Contributions")
    if np.any(e_mev < 0):
        raise InputFileError(path, f"negative step energy {e_mev.min():g} MeV", where="Contributions")
    rel = pos - vertex[event]
    x = np.sum(rel * axis_x[event], axis=1)
    y = np.sum(rel * axis_y[event], axis=1)
    inside = (np.abs(x) <= box_mm) & (np.abs(y) <= box_mm)
    bad = inside & ((layer < 0) | (layer >= detector.n_layers))
    if np.any(bad):
        msg = (
            f"cellID field {layer_field!r} gives layer {int(layer[bad][0]) + first_layer}, outside "
            f"{first_layer}..{first_layer + detector.n_layers - 1} ({detector.n_layers} layers)"
        )
        raise InputFileError(path, msg, where=",".join(collections))
    points, counts = cluster_steps(
        x[inside], y[inside], layer[inside], e_mev[inside], event[inside], n_events, pitch_mm=detector.subcell_pitch_mm
    )
    conditions = {
        "raw_visible_mev": np.bincount(event[inside], e_mev[inside], minlength=n_events).astype(np.float32),
        "raw_steps": np.bincount(event[inside], minlength=n_events).astype(np.int32),
        "outside_box_mev": np.bincount(event[~inside], e_mev[~inside], minlength=n_events).astype(np.float32),
    }
    return Showers.from_counts(points, counts, energy_gev.astype(np.float32), conditions)


def read_edm4hep(
    path: str | Path,
    *,
    collections: Sequence[str] = DEFAULT_COLLECTIONS,
    box_mm: float = DEFAULT_BOX_MM,
    detector: DetectorConfig | None = None,
) -> Showers:
    """Read a whole EDM4hep file (see :func:`iter_edm4hep`)."""
    parts = list(iter_edm4hep(path, collections=collections, box_mm=box_mm, detector=detector))
    return Showers.concatenate(parts) if parts else Showers.empty()
