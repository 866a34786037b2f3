"""Faults of the process rather than of the input: SIGTERM, SIGKILL, two writers of one path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from caloclouds.cli import main
from caloclouds.io import ShowerWriter, read_showers, write_showers
from caloclouds.io.atomic import remove_stale_temps, temp_path_for
from caloclouds.showers import Showers

SLOW_GENERATE = ["generate", "--energies", "50", "-n", "400", "--batch-size", "1"]


def _start(argv: list[str]) -> subprocess.Popen:
    code = f"import sys; from caloclouds.cli import main; sys.exit(main({argv!r}))"
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _temps(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*tmp"))


def _wait_for_temp(proc: subprocess.Popen, folder: Path, timeout_s: float = 60.0) -> Path:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = _temps(folder)
        if found:
            return found[0]
        assert proc.poll() is None, f"the process ended early: {proc.stderr.read() if proc.stderr else ''}"
        time.sleep(0.02)
    proc.kill()
    proc.communicate()
    raise AssertionError("no temporary file appeared")


def _dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def _showers(n: int, seed: int) -> Showers:
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 30, n)
    p = int(counts.sum())
    pts = np.c_[rng.normal(size=(p, 2)), rng.integers(0, 30, p), rng.uniform(0, 1, p)].astype(np.float32)
    return Showers.from_counts(pts, counts, rng.uniform(10, 90, n))


def test_sigterm_cleans_up_like_ctrl_c(tmp_path) -> None:
    out = tmp_path / "out.root"
    out.write_bytes(b"old content")
    proc = _start([*SLOW_GENERATE, "-o", str(out), "--overwrite"])
    _wait_for_temp(proc, tmp_path)
    time.sleep(0.3)  # inside the generation loop
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    assert _temps(tmp_path) == [] and out.read_bytes() == b"old content"


def test_sigkill_leftover_is_removed_by_the_next_run(tmp_path) -> None:
    out = tmp_path / "out.h5"
    proc = _start([*SLOW_GENERATE, "-o", str(out)])
    temp = _wait_for_temp(proc, tmp_path)
    proc.kill()
    proc.communicate(timeout=30)
    assert temp.exists() and not out.exists()  # SIGKILL cannot be caught
    write_showers(out, _showers(3, 0))  # the next run of the same output
    assert _temps(tmp_path) == [] and len(read_showers(out)) == 3


def test_stale_temps_only_of_dead_writers_are_removed(tmp_path) -> None:
    out = tmp_path / "x.h5"
    dead = tmp_path / f".x.h5.{_dead_pid()}-0.tmp"
    legacy = tmp_path / ".x.h5.tmp"  # written by older versions, no PID
    live = tmp_path / f".x.h5.{os.getppid()}-0.tmp"  # a writer that is still running
    other = tmp_path / f".y.h5.{_dead_pid()}-0.tmp"  # another output's temp file
    for p in (dead, legacy, live, other):
        p.write_bytes(b"partial")
    os.utime(legacy, (time.time() - 7200, time.time() - 7200))
    removed = remove_stale_temps(out)
    assert sorted(removed) == sorted([dead, legacy])
    assert live.exists() and other.exists()
    assert temp_path_for(out).name.startswith(f".x.h5.{os.getpid()}-")


def test_two_writers_of_one_path_last_rename_wins(tmp_path) -> None:
    out = tmp_path / "same.h5"
    a, b = _showers(4, 1), _showers(7, 2)
    with ShowerWriter(out) as first:
        with ShowerWriter(out) as second:
            first.write(a)
            second.write(b)
        assert len(read_showers(out)) == 7  # the second finished first
    np.testing.assert_array_equal(read_showers(out).points, a.points)  # then the first: last rename wins
    assert _temps(tmp_path) == []


def test_two_processes_writing_one_path(tmp_path) -> None:
    src = tmp_path / "src.h5"
    write_showers(src, _showers(2000, 3))
    out = tmp_path / "out.h5"
    procs = [_start(["convert", str(src), "-o", str(out), "--overwrite"]) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert len(read_showers(out)) == 2000 and _temps(tmp_path) == []


def test_interrupt_in_process_leaves_old_output(tmp_path, monkeypatch) -> None:
    out = tmp_path / "cells.h5"
    out.write_bytes(b"old")
    src = tmp_path / "src.h5"
    write_showers(src, _showers(50, 4))
    import projection.files as files

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(files, "project", interrupted)
    assert main(["project", "--geometry", "ild", "--in", str(src), "-o", str(out), "--overwrite"]) == 130
    assert out.read_bytes() == b"old" and _temps(tmp_path) == []


import pytest  # noqa: E402


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed exception itself
@pytest.mark.parametrize("suffix", [".h5", ".root"])
@pytest.mark.parametrize("where", ["write", "close"])
def test_a_signal_whose_exception_python_swallowed_still_stops_the_writer(tmp_path, suffix, where) -> None:
    """A SIGTERM that lands in a weakref callback (h5py's object registry) has its exception printed
    and dropped by Python; the writer must still refuse to replace the output (it once did 5 in 8)."""
    import weakref

    from caloclouds.errors import Terminated
    from caloclouds.io import open_writer
    from caloclouds.io.atomic import _raise_terminated, install_termination_handler, restore_termination_handler

    class _Obj:
        pass

    def lost_sigterm() -> None:
        obj = _Obj()
        ref = weakref.ref(obj, lambda _: _raise_terminated(signal.SIGTERM, None))
        del obj  # the callback raises; Python prints "Exception ignored" and goes on
        assert ref() is None

    out = tmp_path / f"x{suffix}"
    write_showers(out, _showers(3, 0))
    before = out.read_bytes()
    previous = install_termination_handler()
    try:
        with pytest.raises(Terminated):
            with open_writer(out) as writer:
                writer.write(_showers(5, 1))
                if where == "write":
                    lost_sigterm()
                else:
                    writer.close = (lambda close: lambda: (lost_sigterm(), close())[-1])(writer.close)
    finally:
        restore_termination_handler(previous)
    assert out.read_bytes() == before
    assert not _temps(tmp_path)
