"""Reading checkpoint files: ``torch.load`` with ``weights_only=True``, bad files as clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from caloclouds.errors import InputFileError

__all__ = ["load_checkpoint_dict"]


def load_checkpoint_dict(path: str | Path, *, map_location: Any = "cpu", what: str = "checkpoint") -> dict[str, Any]:
    """The dict saved in ``path`` (plain tensors and containers only: ``weights_only=True``).

    ``what`` names the file in the error for a missing file (e.g. "Shower Flow checkpoint").

    Raises:
        InputFileError: the file is missing, not a torch file, or does not hold a dict.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, f"{what} not found")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling problem is a bad file for the user
        raise InputFileError(path, f"cannot read checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise InputFileError(path, f"checkpoint holds a {type(data).__name__}, not a dict")
    return data
