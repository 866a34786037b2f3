"""The shard plan of a production: the request, its shards, and each shard's seed.

A production of N showers is cut into ``ceil(N / shard_size)`` shards. Shard k is exactly
``caloclouds generate --seed <shard seed> -n <its size> ...`` with the production's other options;
its seed comes from the production seed and k alone (:func:`shard_seed`), so a shard's showers do
not depend on the number of shards, the order they ran in, or the worker that ran them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from caloclouds.errors import CaloCloudsError

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "MANIFEST_NAME",
    "ProductionRequest",
    "ShardFormat",
    "ShardSpec",
    "SHARD_SUFFIXES",
    "plan_shards",
    "shard_path",
    "shard_seed",
]

ShardFormat = Literal["h5", "root"]
SHARD_SUFFIXES: dict[str, str] = {"h5": ".h5", "root": ".root"}
MANIFEST_NAME = "production.json"
DEFAULT_BATCH_SIZE = {"cpu": 1000, "cuda": 10000}  # showers per generated batch, by device type
SEED_BITS = 63  # generate takes seeds in 0 to 2^63-1
#: The fields of a :class:`ProductionRequest` that every shard passes to ``generate_to_file`` as is.
GENERATION_OPTIONS = (
    "model",
    "model_part",
    "solver",
    "steps",
    "cog",
    "cells",
    "batch_size",
    "device",
    "allow_extrapolation",
)


def shard_seed(seed: int, index: int) -> int:
    """The seed of shard ``index`` of a production with seed ``seed``, in 0 to 2^63-1.

    numpy's ``SeedSequence([seed, index])`` hashes both numbers into well-mixed state, so the shards'
    random streams are independent and shard k's seed depends only on (seed, k).
    """
    state = np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0]
    return int(state) >> (64 - SEED_BITS)


@dataclass(frozen=True)
class ProductionRequest:
    """What a production makes; every field but ``model`` changes the showers (the model is
    compared by its SHA-256, not its path).

    Args:
        n_showers: showers in all (per energy with ``energies_gev``, as ``generate -n``).
        shard_size: showers per shard (per energy with ``energies_gev``); the last shard takes the rest.
        seed: the production seed, 0 to 2^63-1.
        energy_range_gev: incident energies uniform in [lo, hi] GeV, or None.
        energies_gev: ``n_showers`` showers at each of these energies, or None.
        format: shard files: ``"h5"`` (our HDF5 schema) or ``"root"`` (TTree ``events``).
        cells: project onto ``"ild"`` or ``"hgcal"`` cells, or None.
        model: bundle folder or ``"default"``.
        model_part, solver, steps, cog, allow_extrapolation: as for ``caloclouds generate``.
        batch_size: showers per generated batch (the bits depend on it).
        device: torch device of the workers, ``"cpu"`` or ``"cuda"`` (the bits depend on it).
    """

    n_showers: int
    shard_size: int
    seed: int = 0
    energy_range_gev: tuple[float, float] | None = None
    energies_gev: tuple[float, ...] | None = None
    format: ShardFormat = "h5"
    cells: str | None = None
    model: str = "default"
    model_part: str | None = None
    solver: str | None = None
    steps: int | None = None
    cog: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE["cpu"]
    device: str = "cpu"
    allow_extrapolation: bool = False

    def generation_options(self) -> dict[str, Any]:
        """The keyword options of ``generate_to_file`` that this request fixes (:data:`GENERATION_OPTIONS`)."""
        return {name: getattr(self, name) for name in GENERATION_OPTIONS}

    def __post_init__(self) -> None:
        if (self.energy_range_gev is None) == (self.energies_gev is None):
            raise CaloCloudsError("give exactly one of --energy-range and --energies")
        if self.n_showers < 1:
            raise CaloCloudsError(f"-n must be >= 1 shower, got {self.n_showers}")
        if self.shard_size < 1:
            raise CaloCloudsError(f"--shard-size must be >= 1 shower, got {self.shard_size}")
        if not 0 <= self.seed < 2**SEED_BITS:
            raise CaloCloudsError(f"--seed must lie in 0 to 2^63-1, got {self.seed}")
        if self.format not in SHARD_SUFFIXES:
            raise CaloCloudsError(f"--format must be one of {', '.join(SHARD_SUFFIXES)}, got {self.format!r}")
        if self.batch_size < 1:
            raise CaloCloudsError(f"--batch-size must be >= 1, got {self.batch_size}")

    @property
    def n_shards(self) -> int:
        return -(-self.n_showers // self.shard_size)

    def showers_per_count(self) -> int:
        """Showers per unit of ``-n``: the number of energies with ``energies_gev``, else 1."""
        return len(self.energies_gev) if self.energies_gev is not None else 1

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in ("energy_range_gev", "energies_gev"):
            if out[key] is not None:
                out[key] = [float(v) for v in out[key]]
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ProductionRequest:
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in values.items() if k in names}
        for key in ("energy_range_gev", "energies_gev"):
            if known.get(key) is not None:
                known[key] = tuple(float(v) for v in known[key])
        return cls(**known)

    def command(self, out_dir: str | Path) -> str:
        """The ``caloclouds produce`` command that makes (or resumes) this production in ``out_dir``."""
        import shlex

        words = ["caloclouds", "produce", "-n", str(self.n_showers)]
        if self.energy_range_gev is not None:
            words += ["--energy-range", *(f"{e:g}" for e in self.energy_range_gev)]
        else:
            words += ["--energies", *(f"{e:g}" for e in self.energies_gev or ())]
        words += ["--shard-size", str(self.shard_size), "--seed", str(self.seed), "--format", self.format]
        options = {
            "--model": None if self.model == "default" else self.model,
            "--geometry": self.cells,
            "--model-part": self.model_part,
            "--solver": self.solver,
            "--steps": self.steps,
            "--cog": self.cog,
            "--batch-size": None if self.batch_size == DEFAULT_BATCH_SIZE.get(self.device) else self.batch_size,
            "--device": None if self.device == "cpu" else self.device,
        }
        words += [word for name, value in options.items() if value is not None for word in (name, str(value))]
        if self.allow_extrapolation:
            words.append("--allow-extrapolation")
        return shlex.join([*words, "-o", str(out_dir)])

    def differences(self, other: ProductionRequest) -> list[str]:
        """``"name: A there, B here"`` for each field (but ``model``) where ``other`` differs."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [
            f"{key} {theirs[key]!r} there, {mine[key]!r} now"
            for key in mine
            if key != "model" and mine[key] != theirs[key]
        ]


@dataclass(frozen=True)
class ShardSpec:
    """One shard: what a worker needs to make it (``caloclouds generate --seed seed -n n_showers``)."""

    index: int
    seed: int
    n_showers: int  # its -n (per energy with energies_gev)
    path: str
    request: ProductionRequest


def shard_path(out_dir: str | Path, index: int, format: str) -> Path:
    """``DIR/shard-00017.h5`` (or ``.root``)."""
    return Path(out_dir) / f"shard-{index:05d}{SHARD_SUFFIXES[format]}"


def plan_shards(request: ProductionRequest, out_dir: str | Path) -> list[ShardSpec]:
    """Every shard of ``request``, in order; the last one holds the remainder."""
    sizes = np.full(request.n_shards, request.shard_size, dtype=np.int64)
    sizes[-1] = request.n_showers - request.shard_size * (request.n_shards - 1)
    return [
        ShardSpec(
            index=k,
            seed=shard_seed(request.seed, k),
            n_showers=int(size),
            path=str(shard_path(out_dir, k, request.format)),
            request=request,
        )
        for k, size in enumerate(sizes)
    ]
