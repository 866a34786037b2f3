"""Run a production on a Dask cluster: the shards that are missing or damaged, and only those.

:func:`run_production` takes a connected ``distributed.Client`` (a ``LocalCluster``, a scheduler
address, or a dask-jobqueue cluster: :mod:`caloclouds.production.cluster`) and

1. locks the folder (one production at a time), removes temporary files left by dead writers;
2. reads ``production.json``: a different request or model is an error naming what differs;
3. submits one task per shard that is not done (:func:`caloclouds.production.manifest.shard_is_done`),
   with ``retries``; a worker that dies mid-shard loses only that shard, which Dask runs again
   elsewhere (its temporary file is removed by the next writer of that shard, or at the end);
4. records each finished shard in the manifest as it arrives, with a progress bar over showers;
5. stops at the first shard that failed ``retries + 1`` times, with its error; on SIGTERM or
   Ctrl-C it cancels what is left and keeps the finished shards.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caloclouds.errors import CaloCloudsError
from caloclouds.production.manifest import (
    check_same_request,
    model_fingerprint,
    new_manifest,
    read_manifest,
    shard_is_done,
    write_manifest,
)
from caloclouds.production.plan import (
    MANIFEST_NAME,
    SHARD_SUFFIXES,
    ProductionRequest,
    ShardSpec,
    plan_shards,
    shard_path,
)
from caloclouds.production.shard import SHARD_THREADS, run_shard

__all__ = ["LOCK_NAME", "ProductionResult", "clean_temps", "pending_shards", "run_production"]

LOCK_NAME = ".production.lock"
DEFAULT_RETRIES = 2


@dataclass
class ProductionResult:
    """What one call of :func:`run_production` did."""

    out_dir: Path
    n_shards: int
    shards_before: int  # done before this run
    shards_made: int
    showers_made: int
    seconds: float

    @property
    def showers_per_second(self) -> float:
        return self.showers_made / max(self.seconds, 1e-12)

    def text(self) -> str:
        if not self.shards_made:
            return (
                f"nothing to do: all {self.n_shards} shards in {self.out_dir} are complete "
                "(each matches the SHA-256 in production.json)"
            )
        return (
            f"made {self.shards_made} shards ({self.showers_made} showers) in {self.seconds:.1f} s: "
            f"{self.showers_per_second:.1f} showers/s; {self.shards_before + self.shards_made} of "
            f"{self.n_shards} shards done in {self.out_dir}"
        )


@contextlib.contextmanager
def _folder_lock(out_dir: Path) -> Iterator[None]:
    """An exclusive lock on ``DIR/.production.lock`` for the run (two runs into one folder would race)."""
    import fcntl

    with open(out_dir / LOCK_NAME, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise CaloCloudsError(f"{out_dir}: another caloclouds produce is running in this folder") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def clean_temps(out_dir: str | Path, n_shards: int) -> list[Path]:
    """Remove the temporary files of the shards (either format) and of the manifest whose writing
    process is gone (:func:`caloclouds.io.atomic.remove_stale_temps`)."""
    from caloclouds.io.atomic import remove_stale_temps

    out_dir = Path(out_dir)
    removed = remove_stale_temps(out_dir / MANIFEST_NAME)
    for format in SHARD_SUFFIXES:
        for index in range(n_shards):
            removed += remove_stale_temps(shard_path(out_dir, index, format))
    return removed


def pending_shards(
    out_dir: Path, manifest: dict[str, Any], shards: list[ShardSpec], *, echo: Callable[[str], object] = print
) -> list[ShardSpec]:
    """The shards whose file is missing, damaged or unrecorded; their manifest entries are reset."""
    entries = {int(e["index"]): e for e in manifest["shards"]}
    todo = []
    for spec in shards:
        entry = entries[spec.index]
        if not shard_is_done(out_dir, entry, spec):
            if entry.get("status") == "done":
                echo(f"shard {spec.index:05d}: {entry['file']} is missing or damaged; making it again")
            entries[spec.index] = {k: entry[k] for k in ("index", "file", "seed", "n_showers")} | {"status": "missing"}
            todo.append(spec)
    manifest["shards"] = [entries[s.index] for s in shards]
    return todo


def _failure(spec: ShardSpec, future: Any, retries: int) -> CaloCloudsError:
    """The one-line error of a shard that failed every try (or whose workers kept dying)."""
    try:
        future.result()
    except Exception as exc:  # the task's own exception, re-raised here by Dask
        name = type(exc).__name__
        if name == "KilledWorker":
            return CaloCloudsError(f"shard {spec.index:05d} ({spec.path}): its worker died on every try ({exc})")
        return CaloCloudsError(f"shard {spec.index:05d} ({spec.path}) failed {retries + 1} times: {name}: {exc}")
    return CaloCloudsError(f"shard {spec.index:05d} ({spec.path}) failed ({future.status})")


def run_production(
    request: ProductionRequest,
    out_dir: str | Path,
    cluster: Callable[[], AbstractContextManager[Any]],
    *,
    command: str | None = None,
    retries: int = DEFAULT_RETRIES,
    progress: bool = True,
    task: Callable[[ShardSpec], dict[str, Any]] = run_shard,
    echo: Callable[[str], object] = print,
) -> ProductionResult:
    """Make the shards of ``request`` in ``out_dir`` that are not done, on a Dask cluster.

    Args:
        request: what to produce.
        out_dir: the production folder (created if missing).
        cluster: called (only when a shard is to be made) to give a context manager that yields a
            connected ``distributed.Client`` and stops what it started on exit
            (:func:`caloclouds.production.cluster.connect`).
        command: the command line recorded in the manifest (default: :meth:`ProductionRequest.command`).
        retries: extra tries of a shard whose task raised (a dead worker is retried by Dask itself,
            up to ``distributed.scheduler.allowed-failures`` times).
        progress: show a tqdm bar over showers (showers/s and the time left).
        task: the function run per shard (default :func:`run_shard`).
        echo: where one-line status messages go.

    Raises:
        CaloCloudsError: another request in ``out_dir``, or a shard that kept failing (its error).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with _folder_lock(out_dir):
        shards = plan_shards(request, out_dir)
        clean_temps(out_dir, len(shards))
        model = model_fingerprint(request.model)
        manifest = read_manifest(out_dir)
        if manifest is None:
            manifest = new_manifest(
                request, model, shards, command=command or request.command(out_dir), threads=SHARD_THREADS
            )
        else:
            check_same_request(manifest, request, model, out_dir / MANIFEST_NAME)
        todo = pending_shards(out_dir, manifest, shards, echo=echo)
        write_manifest(out_dir, manifest)
        result = ProductionResult(out_dir, len(shards), len(shards) - len(todo), 0, 0, 0.0)
        if not todo:
            return result
        showers = sum(s.n_showers for s in todo) * request.showers_per_count()
        echo(f"{result.shards_before} of {len(shards)} shards done; making {len(todo)} ({showers} showers)")
        try:
            with cluster() as client:
                _run_shards(client, todo, manifest, result, task=task, retries=retries, progress=progress, echo=echo)
        finally:  # the workers started here are gone: the temporary files of unfinished shards go too
            manifest["last_run"] = _last_run(result, manifest.get("last_run", {}).get("workers"))
            write_manifest(out_dir, manifest)
            clean_temps(out_dir, len(shards))
    return result


def _run_shards(
    client: Any,
    todo: list[ShardSpec],
    manifest: dict[str, Any],
    result: ProductionResult,
    *,
    task: Callable[[ShardSpec], dict[str, Any]],
    retries: int,
    progress: bool,
    echo: Callable[[str], object],
) -> None:
    """Submit ``todo`` to ``client``; record each finished shard in ``manifest`` (written at once)."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    from caloclouds.production.cluster import dashboard_line

    echo(dashboard_line(client))
    request = todo[0].request
    total = request.n_showers * request.showers_per_count()
    pending = sum(s.n_showers for s in todo) * request.showers_per_count()
    entries = {int(e["index"]): e for e in manifest["shards"]}
    run_id = uuid.uuid4().hex[:8]  # task keys unique to this run (a client may serve several runs)
    start = time.perf_counter()
    futures = {
        client.submit(task, spec, key=f"shard-{spec.index:05d}-{run_id}", retries=retries, pure=False): spec
        for spec in todo
    }
    try:
        with tqdm(
            total=total, initial=total - pending, unit="shower", unit_scale=True, disable=not progress, desc="produce"
        ) as bar:
            for future in as_completed(futures):
                spec = futures[future]
                if future.status != "finished":
                    raise _failure(spec, future, retries)
                entry = future.result() | {"status": "done"}
                entries[spec.index].update(entry)
                result.shards_made += 1
                result.showers_made += int(entry["n_showers"])
                result.seconds = time.perf_counter() - start
                manifest["last_run"] = _last_run(result, len(client.nthreads()))
                write_manifest(result.out_dir, manifest)
                bar.update(int(entry["n_showers"]))
    except BaseException:
        with contextlib.suppress(Exception):  # a scheduler already gone has nothing left to cancel
            client.cancel(list(futures), force=True)
        raise
    finally:
        result.seconds = time.perf_counter() - start


def _last_run(result: ProductionResult, workers: int | None) -> dict[str, Any]:
    return {
        "shards_made": result.shards_made,
        "showers_made": result.showers_made,
        "seconds": round(result.seconds, 3),
        "showers_per_second": round(result.showers_per_second, 2),
        "workers": workers,
    }
