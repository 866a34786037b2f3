"""Where a production runs: a Dask ``LocalCluster``, an existing scheduler, or a batch farm.

* :func:`local_cluster`: ``LocalCluster(n_workers=N, threads_per_worker=1, processes=True)``, one
  process per core, each running torch on one thread;
* ``--scheduler ADDRESS``: a ``distributed.Client`` joins a running cluster;
* :func:`jobqueue_cluster`: ``dask_jobqueue.SLURMCluster`` or ``HTCondorCluster``, built from a small
  YAML file whose keys are passed as keyword arguments (``configs/cluster_slurm.yaml``).

Dask and dask-jobqueue are the optional extra ``production``: a missing one gives the install command.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from caloclouds.errors import CaloCloudsError, ConfigError

__all__ = [
    "CLUSTER_KINDS",
    "ClusterKind",
    "connect",
    "dashboard_line",
    "default_workers",
    "jobqueue_cluster",
    "local_cluster",
    "read_cluster_config",
]

ClusterKind = Literal["local", "slurm", "htcondor"]
CLUSTER_KINDS: tuple[str, ...] = ("local", "slurm", "htcondor")
INSTALL = "pip install 'caloclouds[production]'"
DASHBOARD_ADDRESS = ":0"  # a free port (printed): the scheduler serves HTTP there even without bokeh


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        raise CaloCloudsError(f"caloclouds produce needs {module.split('.')[0]}: {INSTALL}") from None


def default_workers() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _has_bokeh() -> bool:
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def local_cluster(n_workers: int) -> Any:
    """A ``LocalCluster`` of ``n_workers`` processes with one thread each (its dashboard on a free port)."""
    if n_workers < 1:
        raise CaloCloudsError(f"--workers must be >= 1, got {n_workers}")
    import logging

    distributed = _require("distributed")
    return distributed.LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=DASHBOARD_ADDRESS,
        silence_logs=logging.CRITICAL,  # a failing shard is reported once, by the runner
    )


def read_cluster_config(path: str | Path) -> dict[str, Any]:
    """The keyword arguments of a dask-jobqueue cluster, from a YAML mapping.

    Raises:
        ConfigError: the file is missing, not YAML, or not a mapping with string keys (names the file).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--cluster-config {path}: no such file")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        raise ConfigError(f"--cluster-config {path}: not valid YAML ({problem})") from None
    if values is None:
        return {}
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        raise ConfigError(f"--cluster-config {path}: expected a mapping of dask-jobqueue options, got {values!r}")
    return values


def jobqueue_cluster(kind: ClusterKind, config: dict[str, Any], *, config_path: str | Path = "") -> Any:
    """``SLURMCluster(**config)`` or ``HTCondorCluster(**config)`` (no job is submitted yet).

    Raises:
        CaloCloudsError: an unknown kind, or options the cluster class refuses (names the file).
    """
    classes = {"slurm": "SLURMCluster", "htcondor": "HTCondorCluster"}
    if kind not in classes:
        raise CaloCloudsError(f"--cluster must be one of {', '.join(classes)}, got {kind!r}")
    jobqueue = _require("dask_jobqueue")
    cluster_class = getattr(jobqueue, classes[kind])
    unknown = sorted(set(config) - _jobqueue_options(cluster_class))
    if unknown:  # refused here: a half-built cluster object would warn when collected
        raise ConfigError(
            f"--cluster-config {config_path}: {classes[kind]} has no option(s) {', '.join(unknown)} "
            "(see https://jobqueue.dask.org)"
        )
    scheduler_options = {"dashboard_address": DASHBOARD_ADDRESS} | dict(config.get("scheduler_options") or {})
    options = config | {"scheduler_options": scheduler_options}
    try:
        return cluster_class(**options)
    except (TypeError, ValueError) as exc:
        problem = " ".join(str(exc).split())
        raise ConfigError(f"--cluster-config {config_path}: {classes[kind]} refused the options ({problem})") from None


def _jobqueue_options(cluster_class: Any) -> set[str]:
    """The keyword arguments a dask-jobqueue cluster class takes (its own, and its job class's)."""
    import inspect

    from dask_jobqueue.core import Job, JobQueueCluster

    names: set[str] = set()
    for function in (JobQueueCluster.__init__, Job.__init__, cluster_class.job_cls.__init__):
        names |= {
            p.name
            for p in inspect.signature(function).parameters.values()
            if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD
        }
    return names - {"self", "job_cls", "loop", "asynchronous"}


@contextlib.contextmanager
def connect(
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    cluster: ClusterKind = "local",
    cluster_config: str | Path | None = None,
) -> Iterator[Any]:
    """Yield a ``distributed.Client``; the cluster it started (if any) is closed on exit.

    Args:
        workers: worker processes to start (local: default :func:`default_workers`; jobqueue: the
            number of workers to ask for, default 1). Ignored with ``scheduler``.
        scheduler: address of a running scheduler (``tcp://host:8786``) to join instead.
        cluster: ``"local"``, ``"slurm"`` or ``"htcondor"``.
        cluster_config: the YAML file of a slurm or htcondor cluster.
    """
    distributed = _require("distributed")
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout="30s")
        except OSError as exc:
            raise CaloCloudsError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        with client:
            yield client
        return
    if cluster == "local":
        made = local_cluster(default_workers() if workers is None else workers)
    else:
        if cluster_config is None:
            raise CaloCloudsError(
                f"--cluster {cluster} needs --cluster-config FILE.yaml (see configs/cluster_slurm.yaml)"
            )
        made = jobqueue_cluster(cluster, read_cluster_config(cluster_config), config_path=cluster_config)
        made.scale(n=1 if workers is None else workers)
    with made, distributed.Client(made) as client:
        yield client


def dashboard_line(client: Any) -> str:
    """``dashboard: URL``, or why there is none (the dashboard needs bokeh)."""
    if not _has_bokeh():
        return "dashboard: not available (install bokeh)"
    link = getattr(client, "dashboard_link", None)
    return f"dashboard: {link}" if link else "dashboard: not available"
