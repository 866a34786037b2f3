"""Typed file metadata: numbers stay numbers, strings stay strings, absent values are absent.

Writers store metadata as HDF5 attributes and as the one-entry TTree ``metadata`` in ROOT. Both
take a plain dict cleaned by :func:`typed_metadata`: ``None`` values are dropped (no sentinels such
as ``-1``), booleans, integers and floats keep their type, sequences of numbers become float64 or
int64 arrays, paths become strings. Anything else is an error naming the key.

Every output file also records ``schema_version`` (:data:`SCHEMA_VERSION`); files without it are
version 1 (``e_MeV`` column names, JSON metadata), which the readers still accept.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SCHEMA_VERSION", "typed_metadata", "decode_attrs", "file_metadata"]

SCHEMA_VERSION = 2


def _typed_value(key: str, value: Any) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (str, Path)):
        return str(value)
    if isinstance(value, (list, tuple, np.ndarray)):
        array = np.asarray(value)
        if array.dtype.kind in "iub":
            return array.astype(np.int64)
        if array.dtype.kind == "f":
            return array.astype(np.float64)
        if array.dtype.kind in "US" and array.ndim == 1:
            return ",".join(str(v) for v in array.tolist())
    msg = f"metadata {key!r}: {type(value).__name__} {value!r} is not a number, string or list of numbers"
    raise TypeError(msg)


def typed_metadata(attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    """``attrs`` with typed values (see the module docstring); ``None`` values are dropped."""
    return {str(k): _typed_value(str(k), v) for k, v in (attrs or {}).items() if v is not None}


def decode_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """HDF5 attributes as Python values (bytes decoded, numpy scalars unwrapped)."""
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if isinstance(value, bytes):
            value = value.decode(errors="replace")
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


def file_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata a file of ours carries (HDF5 attributes, or the ROOT ``metadata`` tree), decoded;
    empty for a file without any or one that is not HDF5/ROOT."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".root":
            import uproot

            with uproot.open(path) as f:
                if "metadata" not in f:
                    return {}
                return decode_attrs({k: v[0] for k, v in f["metadata"].arrays(library="np").items()})
        import h5py

        with h5py.File(path, "r") as f:
            return decode_attrs(f.attrs)
    except (OSError, ValueError, KeyError):
        return {}
