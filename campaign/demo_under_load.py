"""Issue 26's threads must-show: `make demo`'s command idle and beside a CPU-heavy process, in one sitting.

Usage (repository root, venv made)::

    python campaign/demo_under_load.py --rounds 4 [--threads N] [--hog generate|spin]

Each round runs the demo's command (``caloclouds generate --energy-range 10 90 -n 1000 --cells ild``)
once alone and once while a second process keeps a core busy (``--hog generate``: another
``caloclouds generate`` of 20,000 showers, with its default threads or ``--hog-threads``; ``spin``: a
pure Python busy loop), alternating which comes first. It prints each run's
showers/s (from the command's own summary) and the medians, and the ratio idle / loaded.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _demo(caloclouds: str, out: Path, threads: int | None) -> float:
    cmd = [caloclouds, "generate", "--energy-range", "10", "90", "-n", "1000", "--cells", "ild", "-o", str(out)]
    cmd += ["--overwrite", *(["--threads", str(threads)] if threads else [])]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # the default, as a new user has it
    text = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    return float(re.search(r"([\d.]+) showers/s", text).group(1))


def _hog(kind: str, caloclouds: str, folder: Path, threads: int | None) -> subprocess.Popen:
    if kind == "spin":
        return subprocess.Popen([sys.executable, "-c", "while True: pass"])
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    cmd = [caloclouds, "generate", "--energy-range", "10", "90", "-n", "20000", "-o", str(folder / "hog.h5")]
    return subprocess.Popen(
        [*cmd, "--overwrite", "--threads", str(threads or 1)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None, help="--threads of the demo (default: its default)")
    parser.add_argument("--hog", choices=["generate", "spin"], default="generate")
    parser.add_argument("--hog-threads", type=int, default=None, help="--threads of the neighbour (default 1)")
    args = parser.parse_args()
    caloclouds = str(Path(sys.executable).with_name("caloclouds"))
    idle, loaded = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for r in range(args.rounds):
            for mode in ("idle", "loaded") if r % 2 == 0 else ("loaded", "idle"):
                hog = _hog(args.hog, caloclouds, folder, args.hog_threads) if mode == "loaded" else None
                try:
                    if hog is not None:
                        time.sleep(3.0)  # the neighbour is computing before the demo starts
                    rate = _demo(caloclouds, folder / "demo.root", args.threads)
                finally:
                    if hog is not None:
                        hog.kill()
                        hog.wait()
                (idle if mode == "idle" else loaded).append(rate)
                print(f"round {r + 1} {mode:6s} {rate:7.1f} showers/s", flush=True)
    mi, ml = statistics.median(idle), statistics.median(loaded)
    print(f"median idle {mi:.1f}, loaded {ml:.1f} showers/s: idle / loaded = {mi / ml:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
