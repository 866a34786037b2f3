"""Issue 28's must-show for ``caloclouds produce``, in one run; prints the numbers (and writes JSON).

1. Throughput: one ``caloclouds generate`` process on one thread (``-n SHARD_SIZE``), then
   ``caloclouds produce --n N --shard-size SHARD_SIZE --workers W`` into ``OUT/a``, then the same
   ``generate`` again; all timed end to end (process start to exit: model loading, cluster start and
   stop included); the ratio is produce's showers per second over the mean of the two generates'.
2. A second run of the same command into ``OUT/a``: it must do nothing and say so.
3. The same production into ``OUT/b``, with one worker process SIGKILLed once the first shard is
   recorded (the other worker is then mid-shard too); Dask reruns the lost shard. Then the command
   again (nothing to do), and every shard of ``OUT/b`` must equal ``OUT/a``'s byte for byte.

Usage (the machine should be quiet: check ``uptime`` first; the load is printed before and after):

    OMP_NUM_THREADS=1 .venv/bin/python campaign/produce_measure.py --n 200000 --shard-size 20000 --out /tmp/prodm
    OMP_NUM_THREADS=1 .venv/bin/python campaign/produce_measure.py --n 20000 --shard-size 2000 --out /tmp/prodm
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

CALOCLOUDS = [sys.executable, "-c", "import sys; from caloclouds.cli import main; sys.exit(main())"]
ENV = os.environ | {"OMP_NUM_THREADS": "1"}


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def children_cpu_s() -> float:
    """CPU seconds (user + system) of this process's finished children and their waited descendants
    (the Dask nannies wait for their workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


CPU_S: dict[str, float] = {}  # CPU seconds of the last timed() command, by its first two words


def timed(argv: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start, cpu = time.perf_counter(), children_cpu_s()
    done = subprocess.run([*CALOCLOUDS, *argv], env=ENV, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    CPU_S[argv[0]] = children_cpu_s() - cpu
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): caloclouds {' '.join(argv)}\n{done.stderr[-3000:]}")
    return seconds, done


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("shard-*"))}


def same_content(a: Path, b: Path) -> bool:
    """Two HDF5 shards hold the same datasets, values and attributes (whatever their byte layout)."""
    import h5py
    import numpy as np

    def items(f: h5py.File) -> dict[str, object]:
        out: dict[str, object] = {f"attr:{k}": f.attrs[k] for k in f.attrs}
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()] if isinstance(obj, h5py.Dataset) else None))
        return out

    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        ia, ib = items(fa), items(fb)
        return ia.keys() == ib.keys() and all(np.array_equal(ia[k], ib[k]) for k in ia)


def done_shards(folder: Path) -> int:
    try:
        manifest = json.loads((folder / "production.json").read_text())
    except (OSError, json.JSONDecodeError):
        return 0
    return sum(s["status"] == "done" for s in manifest["shards"])


def worker_pids(parent: int) -> list[int]:
    """The Dask worker processes under ``parent`` (spawned by the nannies of its LocalCluster)."""
    import psutil

    pids = []
    for child in psutil.Process(parent).children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "spawn_main" in cmdline:
            pids.append(child.pid)
    return pids


def produce_killing_one_worker(argv: list[str]) -> tuple[float, int, str]:
    """Run ``produce argv``; SIGKILL one worker once a shard is recorded. Returns (seconds, pid, stderr)."""
    out = Path(argv[argv.index("-o") + 1])
    start = time.perf_counter()
    proc = subprocess.Popen([*CALOCLOUDS, *argv], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = 0
    while proc.poll() is None and not killed:
        if done_shards(out) >= 1:
            pids = worker_pids(proc.pid)
            if pids:
                killed = pids[0]
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.2)
    _, err = proc.communicate()
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"the production with a killed worker failed ({proc.returncode}):\n{err[-3000:]}")
    return seconds, killed, err


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200000)
    parser.add_argument("--shard-size", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True, help="scratch folder (emptied first)")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    request = ["--energy-range", "10", "90", "--n", str(args.n), "--shard-size", str(args.shard_size)]
    report: dict[str, object] = {"machine": f"{platform.node()}, {os.cpu_count()} cores", "load_before": load()}
    print(f"load average before: {report['load_before']} ({os.cpu_count()} cores)", flush=True)

    generate = ["generate", "--energy-range", "10", "90", "-n", str(args.shard_size), "--threads", "1", "--seed", "1"]
    gen_before_s, gen = timed([*generate, "-o", str(args.out / "generate_before.h5")])
    gen_cpu = CPU_S["generate"]
    print(f"generate, 1 process, 1 thread: {args.shard_size} showers in {gen_before_s:.1f} s (load {load()})")
    a_argv = ["produce", *request, "--workers", str(args.workers), "-o", str(args.out / "a")]
    a_s, _ = timed(a_argv)
    a_rate, a_cpu = args.n / a_s, CPU_S["produce"]
    print(f"produce, {args.workers} workers: {args.n} showers in {a_s:.1f} s = {a_rate:.1f} showers/s (load {load()})")
    gen_after_s, _ = timed([*generate, "-o", str(args.out / "generate_after.h5")])
    gen_cpu = (gen_cpu + CPU_S["generate"]) / 2
    print(f"generate again: {args.shard_size} showers in {gen_after_s:.1f} s (load {load()})")
    gen_s = (gen_before_s + gen_after_s) / 2  # the baseline on both sides of the production, as the load drifts
    gen_rate = args.shard_size / gen_s
    print(f"generate, mean of before and after: {gen_rate:.1f} showers/s")
    print(f"throughput ratio: {a_rate / gen_rate:.2f}x", flush=True)
    # CPU time per shower, all processes included (client, scheduler, nannies, workers): what the
    # production costs beyond generate, whatever share of the cores the other jobs of the machine took
    gen_cpu_ms, a_cpu_ms = gen_cpu / args.shard_size * 1e3, a_cpu / args.n * 1e3
    print(f"CPU per shower: generate {gen_cpu_ms:.2f} ms, produce {a_cpu_ms:.2f} ms (all its processes)")

    again_s, again = timed(a_argv)
    print(f"second run: {again_s:.1f} s: {again.stdout.strip()}", flush=True)

    b_argv = ["produce", *request, "--workers", str(args.workers), "-o", str(args.out / "b")]
    b_s, killed, _ = produce_killing_one_worker(b_argv)
    rerun_s, rerun = timed(b_argv)
    a, b = digests(args.out / "a"), digests(args.out / "b")
    same = a == b and len(a) == -(-args.n // args.shard_size)
    leftovers = [p.name for p in (args.out / "b").iterdir() if p.name.endswith("tmp")]
    print(f"killed worker pid {killed} after the first shard; that production took {b_s:.1f} s")
    print(f"re-run: {rerun_s:.1f} s: {rerun.stdout.strip()}")
    print(f"shards byte-identical to the clean production: {same} ({len(b)} shards); temporary files left: {leftovers}")
    differ = sorted(name for name in a if b.get(name) != a[name])
    content = {name: same_content(args.out / "a" / name, args.out / "b" / name) for name in differ}
    if differ:
        print(f"shards whose bytes differ: {differ}; same datasets, values and attributes: {content}")
    report |= {
        "n": args.n,
        "shard_size": args.shard_size,
        "workers": args.workers,
        "generate_seconds_before_after": [round(gen_before_s, 2), round(gen_after_s, 2)],
        "generate_showers_per_s": round(gen_rate, 2),
        "generate_summary": gen.stdout.strip().splitlines(),
        "produce_seconds": round(a_s, 2),
        "produce_showers_per_s": round(a_rate, 2),
        "throughput_ratio": round(a_rate / gen_rate, 3),
        "cpu_ms_per_shower_generate": round(gen_cpu_ms, 3),
        "cpu_ms_per_shower_produce": round(a_cpu_ms, 3),
        "second_run_seconds": round(again_s, 2),
        "second_run_says": again.stdout.strip(),
        "killed_worker_pid": killed,
        "killed_run_seconds": round(b_s, 2),
        "rerun_says": rerun.stdout.strip(),
        "byte_identical": same,
        "bytes_differ_but_content_same": content,
        "temporary_files_left": leftovers,
        "load_after": load(),
    }
    print(f"load average after: {report['load_after']}")
    (args.out / "measure.json").write_text(json.dumps(report, indent=1) + "\n")
    return 0 if same and not leftovers and "nothing to do" in str(report["second_run_says"]) else 1


if __name__ == "__main__":
    sys.exit(main())
