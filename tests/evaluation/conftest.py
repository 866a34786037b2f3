"""The `caloclouds evaluate` command line the CLI tests of the evaluation share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

#: A small classifier, for tests that check what is written rather than the scores.
FAST_CLI_CONFIG = "evaluation:\n  classifier_epochs: 2\n  classifier_folds: 3\n  n_batches: 3\n"


@pytest.fixture
def evaluate_args(shared: Callable[[str], Path], tmp_path: Path) -> Callable[..., list[str]]:
    """``evaluate_args(generated, max_showers, *extra, label=None, config=FAST_CLI_CONFIG)``: the
    arguments of ``caloclouds evaluate`` that score ``generated`` (a shared file name or a path)
    against g4_photons_val_uniform.h5 into ``tmp_path / "eval"``, with ``config`` written to
    ``tmp_path / "fast.yaml"``, followed by ``extra``."""

    def build(
        generated: str | Path, max_showers: int, *extra: str, label: str | None = None, config: str = FAST_CLI_CONFIG
    ) -> list[str]:
        config_path = tmp_path / "fast.yaml"
        config_path.write_text(config)
        source = generated if isinstance(generated, Path) else shared(generated)
        args = ["evaluate", "--reference", str(shared("g4_photons_val_uniform.h5")), "--generated", str(source)]
        if label is not None:
            args += ["--label", label]
        out = ["--out", str(tmp_path / "eval"), "--max-showers", str(max_showers), "--config", str(config_path)]
        return [*args, *out, *extra]

    return build
