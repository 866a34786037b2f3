"""Rebuild the shipped model bundle from the training files, in time-budgeted, resumable slices.

Usage (from the repository root, in the venv)::

    python campaign/rebuild.py runs/rebuild --time-budget 2h     # trains until the budget is spent
    python campaign/rebuild.py runs/rebuild --time-budget 2h     # the same command continues exactly
    python campaign/rebuild.py runs/short --profile short --time-budget 1h30m   # a shorter-budget bundle

It runs, each in its run folder under OUT and each resumed exactly where it stopped:

1. ``caloclouds train-flow``: the Shower Flow on ``g4_photons_train.h5`` (best by ``val_uniform`` loss);
2. ``caloclouds train-diffusion``: the per-layer EDM teacher on ``g4_photons_train.h5`` +
   ``g4_photons_train2.h5`` (loss curve on ``val_uniform``);
3. ``caloclouds distill``: the consistency model from the teacher's EMA weights;
4. ``caloclouds bundle``: OUT/bundle, with the radial and N calibrations fitted on the TRAINING file
   ``g4_photons_train.h5`` (never on the validation files that ``evaluate`` scores against).

All with ``configs/ild_photons_per_layer.yaml``, the exact config of the shipped model, one thread,
and the shipped seeds. ``--profile short`` trains the teacher for 4000 and the CM for 1000 steps (the
learning-rate schedules then decay over those steps) instead of the config's 29,000 and 5000. A stage
that has reached its steps is skipped, so the command can be repeated until it prints the bundle.
Every command goes into the run folders' ``commands.txt`` and from there into the bundle's provenance.
Exit status: 0 when the bundle is made, 3 when the budget ran out first (run the same command again).
"""

from __future__ import annotations

import argparse
import csv
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "configs/ild_photons_per_layer.yaml"
ANGLED_CONFIG = "configs/ild_photons_angled.yaml"
# steps of the flow, the teacher and the CM (None: the config's)
PROFILES = {"full": (None, None, None), "short": (None, 4000, 1000), "angled": (None, None, None)}
CONFIG_STEPS = {"flow": 1200, "teacher": 29000, "cm": 5000}  # as configs/ild_photons_per_layer.yaml says
ANGLED_STEPS = {"flow": 3000, "teacher": 4000, "cm": 1200}  # as configs/ild_photons_angled.yaml says
# The angled profile fine-tunes the normal-incidence networks (warm start, tan(theta) columns at zero).
NORMAL_INCIDENCE_MODEL = "caloclouds/models/ild_normal_incidence"


def _steps_done(run: Path) -> int:
    """The last checkpointed step of a run folder (0 when it has none)."""
    metrics = run / "metrics.csv"
    if not (run / "checkpoint.pt").is_file() or not metrics.is_file():
        return 0
    rows = list(csv.DictReader(metrics.open()))
    return int(float(rows[-1]["step"])) if rows else 0


def _stage_commands(out: Path, data: str, profile: str) -> list[tuple[str, int, list[str]]]:
    train, train2, val = (f"{data}/g4_photons_{n}.h5" for n in ("train", "train2", "val_uniform"))
    steps = dict(zip(("flow", "teacher", "cm"), PROFILES[profile], strict=True))
    angled = profile == "angled"
    config_steps = ANGLED_STEPS if angled else CONFIG_STEPS
    common = ["--config", ANGLED_CONFIG if angled else CONFIG, "--threads", "1", "--no-progress"]
    # the angled profile adds the angled files and warm-starts from the normal-incidence networks
    more = [f"{data}/g4_photons_angled_train.h5"] if angled else []
    vals = [val, f"{data}/g4_photons_angled_val.h5"] if angled else [val]

    def with_steps(stage: str) -> list[str]:
        return ["--steps", str(steps[stage])] if steps[stage] else []

    def init(part: str) -> list[str]:
        return ["--init-from", f"{NORMAL_INCIDENCE_MODEL}/{part}.pt"] if angled else []

    return [
        ("flow", steps["flow"] or config_steps["flow"],
         ["train-flow", "--data", train, *more, "--val", *vals, "--out", str(out / "flow"), "--seed", "0",
          *common, *with_steps("flow")]),
        ("teacher", steps["teacher"] or config_steps["teacher"],
         ["train-diffusion", "--data", train, train2, *more, "--val", vals[-1], "--out", str(out / "teacher"),
          "--seed", "17", *common, *with_steps("teacher"), *init("teacher")]),
        ("cm", steps["cm"] or config_steps["cm"],
         ["distill", "--teacher", str(out / "teacher"), "--data", train, train2, *more, "--val", vals[-1],
          "--out", str(out / "cm"), "--seed", "17", *common, *with_steps("cm"), *init("cm")]),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder of the run folders and of the bundle (OUT/bundle)")
    parser.add_argument("--time-budget", default="2h", help="wall time of this call, e.g. 2h30m (default 2h)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full", help="full: the shipped steps")
    parser.add_argument("--data", default="../shared/data", help="folder of the g4_photons_*.h5 files")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and stop")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from caloclouds.runcontrol import parse_duration

    budget_s = parse_duration(args.time_budget)
    caloclouds = str(Path(sys.executable).with_name("caloclouds"))
    t0 = time.monotonic()
    for stage, target, cmd in _stage_commands(args.out, args.data, args.profile):
        run = args.out / cmd[cmd.index("--out") + 1].rsplit("/", 1)[-1]
        done = _steps_done(run)
        if done >= target:
            print(f"rebuild: {stage} done ({done} steps in {run})", flush=True)
            continue
        left_s = budget_s - (time.monotonic() - t0)
        if left_s < 120:
            print(f"rebuild: the time budget is spent before {stage} ({done}/{target} steps); run again to continue")
            return 3
        full = [*cmd, "--time-budget", f"{int(left_s)}s", *(["--resume"] if done else [])]
        print(f"rebuild: {stage} from step {done}: caloclouds {shlex.join(full)}", flush=True)
        if not args.dry_run:
            subprocess.run([caloclouds, *full], cwd=ROOT, check=True)
            if _steps_done(run) < target:
                print(f"rebuild: {stage} stopped at step {_steps_done(run)}/{target}; run the same command again")
                return 3
    angled = args.profile == "angled"
    bundle = ["bundle", "--flow", str(args.out / "flow"), "--cm", str(args.out / "cm"), "--teacher",
              str(args.out / "teacher"), "-o", str(args.out / "bundle"), "--data",
              f"{args.data}/g4_photons_train.h5", f"{args.data}/g4_photons_train2.h5",
              *([f"{args.data}/g4_photons_angled_train.h5"] if angled else []),
              "--reference", f"{args.data}/g4_photons_train.h5", "--seed", "0", "--overwrite",
              *(["--axis-reference", f"{args.data}/g4_photons_angled_train.h5"] if angled else []),
              "--config", ANGLED_CONFIG if angled else CONFIG]  # fmt: skip
    print(f"rebuild: caloclouds {shlex.join(bundle)}", flush=True)
    if not args.dry_run:
        subprocess.run([caloclouds, *bundle], cwd=ROOT, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
