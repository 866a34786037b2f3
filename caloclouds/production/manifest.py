"""``DIR/production.json``: what a production was asked for, and each shard's seed, size and SHA-256.

::

    {"format": "caloclouds-production", "format_version": 1,
     "command": "caloclouds produce ...", "request": {n_showers, shard_size, seed, energies, ...},
     "model": {"path", "sha256", "files": {name: sha256}}, "detector": {"name", "n_layers"},
     "threads_per_shard": 1,
     "shards": [{"index", "file", "seed", "n_showers", "status": "done" | "missing",
                 "bytes", "sha256", "seconds", "worker"}, ...],
     "last_run": {"shards_made", "showers_made", "seconds", "showers_per_second", "workers"}}

It is rewritten (atomically) after every finished shard, so a production stopped in any way keeps
the record of its finished shards. A shard counts as done only when its file exists with the size
and SHA-256 recorded here (:func:`shard_is_done`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from caloclouds.errors import CaloCloudsError, InputFileError
from caloclouds.production.plan import MANIFEST_NAME, ProductionRequest, ShardSpec

__all__ = [
    "MANIFEST_FORMAT",
    "MANIFEST_VERSION",
    "check_same_request",
    "model_fingerprint",
    "new_manifest",
    "read_manifest",
    "shard_is_done",
    "write_manifest",
]

MANIFEST_FORMAT = "caloclouds-production"
MANIFEST_VERSION = 1


def model_fingerprint(model: str | Path) -> dict[str, Any]:
    """The bundle's path, the SHA-256 of each of its files and one SHA-256 over them all."""
    import hashlib

    from caloclouds.generation.bundle import MANIFEST, file_sha256, load_bundle

    bundle = load_bundle(model)
    names = sorted({MANIFEST, *bundle.files.values()})
    files = {name: file_sha256(bundle.path / name) for name in names if (bundle.path / name).is_file()}
    combined = hashlib.sha256("".join(f"{name}\0{digest}\n" for name, digest in files.items()).encode())
    detector = bundle.config.detector
    return {
        "path": str(bundle.path),
        "sha256": combined.hexdigest(),
        "files": files,
        "detector": {"name": detector.name, "n_layers": detector.n_layers},
    }


def new_manifest(
    request: ProductionRequest, model: dict[str, Any], shards: list[ShardSpec], *, command: str, threads: int
) -> dict[str, Any]:
    """The manifest of a production with no shard done yet."""
    return {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "command": command,
        "request": request.to_dict(),
        "model": {k: v for k, v in model.items() if k != "detector"},
        "detector": model["detector"],
        "threads_per_shard": threads,
        "shards": [
            {"index": s.index, "file": Path(s.path).name, "seed": s.seed, "n_showers": s.n_showers, "status": "missing"}
            for s in shards
        ],
    }


def read_manifest(out_dir: str | Path) -> dict[str, Any] | None:
    """The manifest of ``out_dir``, or None where there is none.

    Raises:
        InputFileError: the file is not a production manifest (names it and the problem).
    """
    path = Path(out_dir) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"not valid JSON ({exc}); move it away to start the production afresh") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise InputFileError(path, f"not a caloclouds production manifest (no format {MANIFEST_FORMAT!r})")
    if manifest.get("format_version") != MANIFEST_VERSION:
        raise InputFileError(
            path, f"manifest version {manifest.get('format_version')!r}; this caloclouds reads {MANIFEST_VERSION}"
        )
    return manifest


def write_manifest(out_dir: str | Path, manifest: dict[str, Any]) -> Path:
    """Write ``DIR/production.json`` atomically (temporary file, then rename)."""
    from caloclouds.io.atomic import atomic_path

    path = Path(out_dir) / MANIFEST_NAME
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    return path


def check_same_request(
    manifest: dict[str, Any], request: ProductionRequest, model: dict[str, Any], where: Path
) -> None:
    """Refuse to continue a production with another request or another model.

    Raises:
        CaloCloudsError: naming the manifest and every option that differs.
    """
    try:
        before = ProductionRequest.from_dict(manifest["request"])
    except (KeyError, TypeError, CaloCloudsError) as exc:
        raise InputFileError(where, f"unreadable request ({exc})", where="request") from None
    differences = request.differences(before)
    recorded_sha = manifest.get("model", {}).get("sha256")
    if recorded_sha != model["sha256"]:
        differences.append(f"model SHA-256 {str(recorded_sha)[:12]}... there, {model['sha256'][:12]}... now")
    if differences:
        raise CaloCloudsError(
            f"{where} holds another production ({'; '.join(differences)}): "
            "repeat its command to resume it, or write the new one to another folder"
        )


def shard_is_done(out_dir: str | Path, entry: dict[str, Any], spec: ShardSpec) -> bool:
    """True when the manifest marks the shard done and its file is there with the recorded size,
    shower count and SHA-256 (a damaged or replaced file is not done)."""
    from caloclouds.generation.bundle import file_sha256

    if entry.get("status") != "done" or entry.get("n_showers") != spec.n_showers * spec.request.showers_per_count():
        return False
    path = Path(out_dir) / str(entry.get("file"))
    try:
        if path.stat().st_size != entry.get("bytes"):
            return False
    except OSError:
        return False
    return file_sha256(path) == entry.get("sha256")
