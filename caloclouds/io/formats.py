"""Format detection and one entry point for every shower file the package reads.

| name         | file                                              | reader                          |
|--------------|---------------------------------------------------|---------------------------------|
| ``hdf5``     | our ragged HDF5 schema (``points``/``offsets``)   | :mod:`caloclouds.io.hdf5`       |
| ``root``     | our ROOT output (TTree ``events``, ``points_*``)  | :mod:`caloclouds.io.root`       |
| ``caloclouds`` | CaloClouds HDF5 (``events``/``energy``, padded) | :mod:`caloclouds.io.caloclouds_hdf5` |
| ``steps``    | raw Geant4 steps in our schema (``z_mm`` column)  | :mod:`caloclouds.io.steps`      |
| ``edm4hep``  | EDM4hep ROOT (podio) SimCalorimeterHit steps      | :mod:`caloclouds.io.edm4hep`    |
| ``cells``    | cell hits written by ``caloclouds project`` (.h5) | :mod:`caloclouds.io.cells` (hits read as points at the cell centres) |

Detection looks at the content (HDF5 / ROOT magic bytes, then the datasets or branches), not only at
the extension.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from caloclouds.config import DetectorConfig
from caloclouds.errors import CaloCloudsError, InputFileError
from caloclouds.io.cells import CELLS_FORMAT
from caloclouds.io.checks import check_input_file
from caloclouds.showers import PHI, THETA, Showers

__all__ = [
    "FORMATS",
    "FormatName",
    "detect_format",
    "file_has_direction",
    "iter_any",
    "iter_training_showers",
    "iter_with_cells",
    "read_any",
    "count_showers",
    "convert_file",
]

FormatName = Literal["hdf5", "root", "caloclouds", "steps", "edm4hep", "cells"]
FORMATS: dict[str, str] = {
    "hdf5": "our ragged HDF5 schema (points/offsets/incident_energy_gev)",
    "root": "our ROOT output (TTree 'events' with points_* branches)",
    "caloclouds": "CaloClouds HDF5 (events/energy, padded)",
    "steps": "raw Geant4 steps in our HDF5 schema (columns x_mm,y_mm,z_mm,e_MeV)",
    "edm4hep": "EDM4hep ROOT (SimCalorimeterHit contributions)",
    "cells": "cell hits written by caloclouds project (each hit read as a point at its cell centre)",
}
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ROOT_MAGIC = b"root"
_DEFAULT_CHUNK_SHOWERS = 10000
_OUTPUT_SUFFIXES = {".h5": "hdf5", ".hdf5": "hdf5", ".root": "root"}
_STEPS_CHUNK_SHOWERS = 100  # Raw-step files hold ~10^4 steps per shower: read fewer showers at once.


def _supported() -> str:
    return "supported formats: " + "; ".join(f"{k} = {v}" for k, v in FORMATS.items())


def detect_format(path: str | Path) -> str:
    """Name (a key of :data:`FORMATS`) of the format of ``path``, from its content.

    Raises:
        InputFileError: missing file, or a file of none of the supported formats.
    """
    import h5py

    path = check_input_file(path, "shower file")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(_ROOT_MAGIC):
        from caloclouds.io.edm4hep import open_root_file
        from caloclouds.io.root import TREE, _schema_of

        with open_root_file(path) as f:  # raises a clear error for a file uproot cannot open
            try:
                branches = set(f[TREE].keys()) if TREE in f else set()
            except Exception as exc:  # uproot raises many types for corrupt directories
                raise InputFileError(path, f"cannot read TTree {TREE!r} (truncated or corrupt?): {exc}") from None
        if _schema_of(branches) is not None:
            return "root"
        if any(b.endswith("Contributions") for b in branches):
            return "edm4hep"
        msg = f"ROOT file with neither our 'events' layout nor EDM4hep contributions; {_supported()}"
        raise InputFileError(path, msg)
    if head == _HDF5_MAGIC or h5py.is_hdf5(path):
        try:
            with h5py.File(path, "r") as f:
                keys = sorted(f)
                columns = f["points"].attrs.get("columns", "") if "points" in f else ""
                file_format = f.attrs.get("format", "")
        except OSError as exc:
            raise InputFileError(path, f"not a readable HDF5 file (truncated?): {exc}") from None
        columns = columns.decode() if isinstance(columns, bytes) else str(columns)
        file_format = file_format.decode() if isinstance(file_format, bytes) else str(file_format)
        if file_format == CELLS_FORMAT or ({"offsets", "cell_id", "e_mev"} <= set(keys) and "points" not in keys):
            return "cells"
        if {"points", "offsets", "incident_energy_gev"} <= set(keys):
            return "steps" if "z_mm" in columns.split(",") else "hdf5"
        if {"events", "energy"} <= set(keys):
            return "caloclouds"
        raise InputFileError(path, f"HDF5 file with datasets {keys}, which match no known layout; {_supported()}")
    hint = " (the .root extension but no ROOT header)" if path.suffix == ".root" else ""
    raise InputFileError(path, f"not an HDF5 or ROOT file{hint}; {_supported()}")


def _check_format(path: Path, format: str | None) -> str:
    if format in (None, "auto"):
        return detect_format(path)
    if format not in FORMATS:
        raise InputFileError(path, f"unknown format {format!r}; {_supported()}")
    check_input_file(path, "shower file")
    return format


def count_showers(path: str | Path, *, format: str | None = None) -> int:
    """Number of showers (events) in a file, read from its index only."""
    path = Path(path)
    fmt = _check_format(path, format)
    if fmt in ("hdf5", "steps"):
        from caloclouds.io.hdf5 import ShowerFile

        with ShowerFile(path, check_values=False) as f:
            return len(f)
    if fmt == "caloclouds":
        from caloclouds.io.caloclouds_hdf5 import count_caloclouds_hdf5

        return count_caloclouds_hdf5(path)
    if fmt == "root":
        from caloclouds.io.root import count_root

        return count_root(path)
    if fmt == "cells":
        from caloclouds.io.cells import count_cells

        return count_cells(path)
    from caloclouds.io.edm4hep import count_edm4hep

    return count_edm4hep(path)


def iter_any(
    path: str | Path,
    *,
    format: str | None = None,
    detector: DetectorConfig | None = None,
    box_mm: float | None = None,
    collections: Sequence[str] | None = None,
    chunk_showers: int = _DEFAULT_CHUNK_SHOWERS,
) -> Iterator[Showers]:
    """Read any supported file chunk by chunk.

    Args:
        path: the file.
        format: a key of :data:`FORMATS`, or None / ``"auto"`` to detect it.
        detector: layers and grid for ``caloclouds``, ``steps`` and ``edm4hep`` (default: ILD-like).
        box_mm: EDM4hep transverse box half-width (default :data:`caloclouds.io.edm4hep.DEFAULT_BOX_MM`).
        collections: EDM4hep collections (default :data:`caloclouds.io.edm4hep.DEFAULT_COLLECTIONS`).
        chunk_showers: showers (events) per chunk.

    Yields:
        :class:`Showers` chunks in file order.
    """
    path = Path(path)
    if chunk_showers < 1:
        raise CaloCloudsError(f"the chunk size must be >= 1 shower, got {chunk_showers}")
    fmt = _check_format(path, format)
    if fmt == "hdf5":
        from caloclouds.io.hdf5 import ShowerFile

        with ShowerFile(path) as f:
            yield from f.iter_chunks(chunk_showers)
    elif fmt == "steps":
        from caloclouds.io.steps import read_steps_hdf5

        n, step = count_showers(path, format=fmt), min(chunk_showers, _STEPS_CHUNK_SHOWERS)
        for start in range(0, n, step):
            yield read_steps_hdf5(path, detector=detector, start=start, stop=start + step)
    elif fmt == "caloclouds":
        from caloclouds.io.caloclouds_hdf5 import iter_caloclouds_hdf5

        yield from iter_caloclouds_hdf5(path, detector=detector, chunk_showers=chunk_showers)
    elif fmt == "root":
        from caloclouds.io.root import iter_root

        yield from iter_root(path, chunk_showers=chunk_showers)
    elif fmt == "cells":
        from caloclouds.io.cells import iter_cells_as_showers

        yield from iter_cells_as_showers(path, chunk_showers=chunk_showers)
    else:
        from caloclouds.io import edm4hep

        yield from edm4hep.iter_edm4hep(
            path,
            collections=tuple(collections or edm4hep.DEFAULT_COLLECTIONS),
            box_mm=edm4hep.DEFAULT_BOX_MM if box_mm is None else box_mm,
            detector=detector,
            chunk_events=chunk_showers,
        )


def read_any(path: str | Path, **options: Any) -> Showers:
    """Read a whole file of any supported format into one :class:`Showers`; ``options`` (``format``,
    ``detector``, ``box_mm``, ``collections``) as in :func:`iter_any`."""
    parts = list(iter_any(path, **options))
    return Showers.concatenate(parts) if parts else Showers.empty()


def iter_with_cells(
    path: str | Path, *, format: str | None = None, chunk_showers: int = _DEFAULT_CHUNK_SHOWERS
) -> Iterator[tuple[Showers, object | None]]:
    """``(showers, cells)`` chunks of one of our files; ``cells`` is None where the file has no cell hits.

    Cell hits are those of ``generate --cells`` and ``project``: the ``cells_*`` branches of our ROOT
    files, or the ``cells`` group of our HDF5 files.
    """
    path = Path(path)
    fmt = _check_format(path, format)
    if fmt == "root":
        from caloclouds.io.root import iter_root

        yield from iter_root(path, chunk_showers=chunk_showers, with_cells=True)
        return
    if fmt != "hdf5" or not _has_cells_group(path):
        for chunk in iter_any(path, format=fmt, chunk_showers=chunk_showers):
            yield chunk, None
        return
    from caloclouds.io.cells import CellsReader
    from caloclouds.io.hdf5 import ShowerFile

    with ShowerFile(path) as f:
        reader = CellsReader(path, group="cells")
        try:
            if len(reader) != len(f):
                raise InputFileError(
                    path, f"the cells group holds {len(reader)} showers, the file {len(f)}", where="cells"
                )
            start = 0
            for chunk in f.iter_chunks(chunk_showers):
                yield chunk, reader.read(start, start + len(chunk))
                start += len(chunk)
        finally:
            reader.close()


def _has_cells_group(path: Path) -> bool:
    import h5py

    with h5py.File(path, "r") as f:
        return "cells" in f


def convert_file(
    input_path: str | Path,
    output_path: str | Path,
    *,
    format: str | None = None,
    detector: DetectorConfig | None = None,
    box_mm: float | None = None,
    collections: Sequence[str] | None = None,
    progress: Callable[[int], object] | None = None,
) -> tuple[int, int]:
    """Convert any supported file to our HDF5 (``.h5``/``.hdf5``) or ROOT (``.root``) output.

    The output is written chunk by chunk to a temporary file and renamed at the end, so a failed or
    interrupted conversion never leaves a half-written file under ``output_path``.

    Args:
        input_path, output_path: the files; the output format follows the output's extension.
        format, detector, box_mm, collections: as for :func:`iter_any`.
        progress: called with the number of showers of each chunk written.

    Returns:
        ``(n_showers, n_points)`` written.
    """
    from caloclouds.io.writers import open_writer

    input_path, output_path = Path(input_path), Path(output_path)
    suffix = output_path.suffix.lower()
    if suffix not in _OUTPUT_SUFFIXES:
        raise InputFileError(output_path, f"unknown output extension {suffix!r}; use one of {sorted(_OUTPUT_SUFFIXES)}")
    if output_path.exists() and input_path.exists() and output_path.resolve() == input_path.resolve():
        raise InputFileError(output_path, "output would overwrite the input file")
    fmt = _check_format(input_path, format)
    if fmt in ("root", "hdf5"):
        pairs = iter_with_cells(input_path, format=fmt)
    else:
        pairs = (
            (chunk, None)
            for chunk in iter_any(input_path, format=fmt, detector=detector, box_mm=box_mm, collections=collections)
        )
    attrs = {"source": str(input_path), "source_format": fmt, "n_layers": detector.n_layers if detector else None}
    n_showers = n_points = 0
    with open_writer(output_path, format=_OUTPUT_SUFFIXES[suffix], attrs=attrs) as writer:
        for chunk, cells in pairs:
            writer.write(chunk, cells=cells)
            n_showers += len(chunk)
            n_points += len(chunk.points)
            if progress is not None:
                progress(len(chunk))
    return n_showers, n_points


TRAINING_FORMATS = ("hdf5", "root")  # the package's own shower schemas: exact points and incident energies


def file_has_direction(path: str | Path) -> bool:
    """Whether a shower file carries a direction of incidence (``theta_deg`` and ``phi_deg``; our HDF5
    datasets or ROOT condition branches); a file without them is normal incidence. Reads no showers."""
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "hdf5":
        from caloclouds.io.hdf5 import ShowerFile

        with ShowerFile(path) as f:  # checks theta_deg and phi_deg: both or neither, one per shower
            names = f.condition_names
    elif fmt == "root":
        import uproot

        from caloclouds.io.root import read_root_metadata

        with uproot.open(path) as f:
            names = read_root_metadata(f).get("conditions", [])
    else:
        return False
    return THETA in names and PHI in names


def iter_training_showers(
    path: str | Path | Sequence[str | Path], *, limit: int | None = None, chunk_showers: int = _DEFAULT_CHUNK_SHOWERS
) -> Iterator[Showers]:
    """The first ``limit`` showers (all by default) of a training file, our HDF5 or ROOT schema, in chunks.

    ``path`` may also be several files, read in order (``limit`` then caps the total). When any of
    them carries a direction of incidence (``theta_deg``/``phi_deg``), every chunk carries it: the
    chunks of a normal-incidence file get theta = phi = 0, so that angled and normal-incidence
    training files mix.

    Raises:
        InputFileError: a missing or unreadable file, one of another format (named, with the
            ``caloclouds convert`` command that makes it usable), or a file without showers.
    """
    if isinstance(path, (str, Path)):
        yield from _iter_training_file(Path(path), limit=limit, chunk_showers=chunk_showers)
        return
    paths = [Path(p) for p in path]
    if not paths:
        raise InputFileError("--data", "no training file given")
    for p in paths:
        _check_training_format(p)
    directed = any(file_has_direction(p) for p in paths)
    left = limit
    for p in paths:
        if left is not None and left <= 0:
            break
        for chunk in _iter_training_file(p, limit=left, chunk_showers=chunk_showers):
            if directed and not chunk.has_direction:
                chunk = chunk.with_direction(0.0, 0.0)
            left = None if left is None else left - len(chunk)
            yield chunk


def _check_training_format(path: Path) -> str:
    fmt = detect_format(path)
    if fmt not in TRAINING_FORMATS:
        raise InputFileError(
            path,
            f"is a {FORMATS[fmt]} file; training reads our HDF5 or ROOT shower files: "
            f"run `caloclouds convert {path} -o showers.h5` first",
        )
    return fmt


def _iter_training_file(path: Path, *, limit: int | None, chunk_showers: int) -> Iterator[Showers]:
    """The first ``limit`` showers of one training file (see :func:`iter_training_showers`)."""
    fmt = _check_training_format(path)
    seen = 0
    if limit is not None:
        chunk_showers = max(min(chunk_showers, limit), 1)
    for chunk in iter_any(path, format=fmt, chunk_showers=chunk_showers):
        if limit is not None:
            chunk = chunk[: max(limit - seen, 0)]
        seen += len(chunk)
        if len(chunk):
            yield chunk
        if limit is not None and seen >= limit:
            break
    if seen == 0:
        raise InputFileError(path, "holds no showers")
