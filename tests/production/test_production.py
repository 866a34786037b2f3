"""``caloclouds produce`` on a real Dask LocalCluster (2 worker processes), with the shipped model.

One cluster serves the module. The shards are tiny (10 showers), so each test spends its time in
Dask and in loading the model on the workers, not in generating.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

from caloclouds.cli import main  # noqa: E402
from caloclouds.errors import CaloCloudsError  # noqa: E402
from caloclouds.io.hdf5 import read_showers  # noqa: E402
from caloclouds.production.plan import ProductionRequest, plan_shards, shard_seed  # noqa: E402
from caloclouds.production.runner import run_production  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
REQUEST = ProductionRequest(n_showers=25, shard_size=10, seed=7, energy_range_gev=(10.0, 90.0))


@pytest.fixture(scope="module")
def client():
    from caloclouds.production.cluster import local_cluster

    distributed = pytest.importorskip("distributed")
    with local_cluster(2) as cluster, distributed.Client(cluster) as dask_client:
        yield dask_client


def produce(request, out_dir, client, **kwargs):
    return run_production(request, out_dir, lambda: contextlib.nullcontext(client), progress=False, **kwargs)


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("shard-*"))}


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith("tmp")]


@pytest.fixture(scope="module")
def first(client, tmp_path_factory):
    """A finished production of REQUEST: its folder and the digests of its shards."""
    out = tmp_path_factory.mktemp("first")
    result = produce(REQUEST, out, client)
    assert (result.shards_made, result.showers_made) == (3, 25)
    return out, digests(out)


def test_shard_seeds_depend_on_seed_and_index_only():
    seeds = [shard_seed(7, k) for k in range(1000)]
    assert len(set(seeds)) == 1000 and all(0 <= s < 2**63 for s in seeds)
    assert seeds[:3] == [spec.seed for spec in plan_shards(REQUEST, "x")]  # not on the shard count
    assert shard_seed(8, 0) != seeds[0]
    sizes = [spec.n_showers for spec in plan_shards(REQUEST, "x")]
    assert sizes == [10, 10, 5]


@pytest.mark.parametrize(
    "request_",
    [
        REQUEST,
        ProductionRequest(
            n_showers=7,
            shard_size=3,
            seed=2,
            energies_gev=(10.0, 50.0),
            format="root",
            cells="ild",
            steps=2,
            batch_size=64,
        ),
    ],
    ids=["range", "energies"],
)
def test_the_recorded_command_makes_the_same_request(request_):
    """production.json's command, run again, asks for the same production (so it resumes it)."""
    import argparse
    import shlex

    from caloclouds.cli.produce import _request, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    words = shlex.split(request_.command("prod dir"))
    assert words[:2] == ["caloclouds", "produce"] and words[-2:] == ["-o", "prod dir"]
    assert _request(parser.parse_args(words[2:])) == request_
    assert request_.showers_per_count() == (2 if request_.energies_gev else 1)


def test_bad_requests_are_one_line_errors():
    with pytest.raises(CaloCloudsError, match="exactly one of --energy-range and --energies"):
        ProductionRequest(n_showers=10, shard_size=5)
    with pytest.raises(CaloCloudsError, match="--shard-size must be >= 1"):
        ProductionRequest(n_showers=10, shard_size=0, energy_range_gev=(10.0, 90.0))


def test_production_writes_shards_and_manifest(first):
    out, shards = first
    assert list(shards) == ["shard-00000.h5", "shard-00001.h5", "shard-00002.h5"]
    manifest = json.loads((out / "production.json").read_text())
    assert manifest["request"]["seed"] == 7 and manifest["threads_per_shard"] == 1
    assert len(manifest["model"]["sha256"]) == 64
    assert [s["status"] for s in manifest["shards"]] == ["done"] * 3
    assert [s["sha256"] for s in manifest["shards"]] == list(shards.values())
    assert [s["seed"] for s in manifest["shards"]] == [shard_seed(7, k) for k in range(3)]
    assert manifest["command"].startswith("caloclouds produce -n 25 --energy-range 10 90 --shard-size 10 --seed 7")
    assert not leftovers(out)


def test_a_shard_is_generate_with_the_shard_seed(first, tmp_path):
    """Shard 1 equals `caloclouds generate --seed <its seed> -n 10` (one torch thread), byte for byte."""
    import torch

    out, shards = first
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        argv = ["generate", "--energy-range", "10", "90", "-n", "10", "--seed", str(shard_seed(7, 1))]
        assert main([*argv, "-o", str(tmp_path / "g.h5")]) == 0
    finally:
        torch.set_num_threads(threads)
    assert hashlib.sha256((tmp_path / "g.h5").read_bytes()).hexdigest() == shards["shard-00001.h5"]


def test_shards_are_independent(first):
    out, _ = first
    a, b = read_showers(out / "shard-00000.h5"), read_showers(out / "shard-00001.h5")
    assert not np.array_equal(a.incident_energy_gev, b.incident_energy_gev)
    assert len(a.points) != len(b.points) or not np.array_equal(a.points, b.points)


def test_same_seed_gives_identical_shards(first, client, tmp_path):
    _, shards = first
    produce(REQUEST, tmp_path, client)
    assert digests(tmp_path) == shards


def test_second_run_does_nothing(first, client, capsys):
    out, shards = first
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*")}
    result = produce(REQUEST, out, client)
    assert result.shards_made == 0
    assert "nothing to do: all 3 shards" in result.text()
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*")} == before


def test_missing_and_damaged_shards_are_redone_identically(first, client, tmp_path):
    out, shards = first
    for name in shards:
        (tmp_path / name).write_bytes((out / name).read_bytes())
    (tmp_path / "production.json").write_text((out / "production.json").read_text())
    (tmp_path / "shard-00000.h5").unlink()
    with open(tmp_path / "shard-00002.h5", "r+b") as f:  # one flipped byte in the middle
        f.seek(f.seek(0, 2) // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    messages = []
    result = produce(REQUEST, tmp_path, client, echo=messages.append)
    assert result.shards_made == 2
    assert any("shard 00002: shard-00002.h5 is missing or damaged" in m for m in messages)
    assert digests(tmp_path) == shards


def test_changed_request_is_an_error(first, client):
    out, _ = first
    changed = ProductionRequest(n_showers=25, shard_size=10, seed=8, energy_range_gev=(10.0, 90.0))
    with pytest.raises(CaloCloudsError, match=r"production.json holds another production \(seed 7 there, 8 now\)"):
        produce(changed, out, client)


def test_killed_worker_loses_only_its_shard(first, client, tmp_path):
    """The first try of shard 1 leaves a half-written temporary file and SIGKILLs its worker process:
    Dask runs the shard again, the production completes with the same files and no temporary file."""
    from caloclouds.production.shard import run_shard

    _, shards = first
    marker = tmp_path / "killed-once"

    def dies_once(spec):
        if spec.index == 1 and not marker.exists():
            from caloclouds.io.atomic import temp_path_for

            marker.write_text(str(os.getpid()))
            temp_path_for(spec.path).write_bytes(b"half a shard")
            os.kill(os.getpid(), signal.SIGKILL)
        return run_shard(spec)

    out = tmp_path / "prod"
    result = produce(REQUEST, out, client, task=dies_once)
    assert marker.exists() and result.shards_made == 3
    assert digests(out) == shards
    assert not leftovers(out)


def test_a_shard_that_keeps_failing_stops_the_production(client, tmp_path):
    from caloclouds.production.shard import run_shard

    def fails_on_shard_2(spec):
        if spec.index == 2:
            raise CaloCloudsError("the disk is full")
        return run_shard(spec)

    with pytest.raises(CaloCloudsError, match=r"shard 00002 \(.*shard-00002.h5\) failed 2 times: .*the disk is full"):
        produce(REQUEST, tmp_path, client, task=fails_on_shard_2, retries=1)
    manifest = json.loads((tmp_path / "production.json").read_text())
    done = {s["file"] for s in manifest["shards"] if s["status"] == "done"}
    assert "shard-00002.h5" not in done
    assert all((tmp_path / name).is_file() for name in done)

    # this cluster outlives the production (a shared client), so a shard still being made when shard 2
    # failed finishes on it and renames its file into place: wait for that event, not a fixed time. The
    # scheduler forgets a cancelled task at once (processing() is empty) while its worker thread still
    # writes the shard, so the workers' own running threads are asked too
    def running() -> bool:
        threads = client.run(lambda dask_worker: len(dask_worker.active_threads))
        return any(client.processing().values()) or any(threads.values())

    deadline = time.monotonic() + 120
    while running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not leftovers(tmp_path)


def test_merge_and_info(first, tmp_path, capsys):
    out, _ = first
    merged = tmp_path / "all.h5"
    assert main(["merge", str(out), "-o", str(merged)]) == 0
    assert main(["merge", str(out), "-o", str(merged)]) == 2  # no silent overwrite
    assert "exists; pass --overwrite" in capsys.readouterr().err
    parts = [read_showers(out / f"shard-0000{k}.h5") for k in range(3)]
    whole = read_showers(merged)
    assert np.array_equal(whole.points, np.concatenate([p.points for p in parts]))
    assert np.array_equal(whole.incident_energy_gev, np.concatenate([p.incident_energy_gev for p in parts]))
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "3 of 3 complete" in text and "showers          25" in text


def test_merge_refuses_an_incomplete_production(first, tmp_path, capsys):
    out, _ = first
    (tmp_path / "production.json").write_text((out / "production.json").read_text())
    (tmp_path / "shard-00000.h5").write_bytes((out / "shard-00000.h5").read_bytes())
    assert main(["merge", str(tmp_path), "-o", str(tmp_path / "all.h5")]) == 2
    assert "2 shard(s) missing or damaged (the first: 00001)" in capsys.readouterr().err
    assert not (tmp_path / "all.h5").exists()


def test_root_shards_read_as_one_dataset(client, tmp_path):
    """ROOT shards: uproot.concatenate reads the folder as one array; resume works on them too."""
    import uproot

    request = ProductionRequest(n_showers=12, shard_size=5, seed=1, energy_range_gev=(20.0, 60.0), format="root")
    assert produce(request, tmp_path, client).shards_made == 3
    events = uproot.concatenate(f"{tmp_path}/*.root:events", ["incident_energy_gev"], library="np")
    assert len(events["incident_energy_gev"]) == 12
    assert produce(request, tmp_path, client).shards_made == 0


def test_slurm_job_script_is_built(capsys, tmp_path):
    pytest.importorskip("dask_jobqueue")
    argv = ["produce", "--energy-range", "10", "90", "-n", "10", "-o", str(tmp_path / "p"), "--cluster", "slurm"]
    assert main([*argv, "--cluster-config", str(ROOT / "configs" / "cluster_slurm.yaml"), "--print-job-script"]) == 0
    script = capsys.readouterr().out
    assert "#SBATCH" in script and "distributed.cli.dask_worker" in script and "--nthreads 1" in script
    bad = tmp_path / "bad.yaml"
    bad.write_text("cores: 1\nmemory: 4GB\nno_such_option: 3\n")
    assert main([*argv, "--cluster-config", str(bad), "--print-job-script"]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "no_such_option" in err and "Traceback" not in err


def test_sigterm_keeps_finished_shards(tmp_path):
    """SIGTERM to `caloclouds produce` once a shard is recorded: exit 143, the finished shards kept,
    recorded and intact, no temporary file (resuming from such a manifest is tested above)."""
    out = tmp_path / "prod"
    cmd = [sys.executable, "-c", "import sys; from caloclouds.cli import main; sys.exit(main())", "produce"]
    cmd += ["--energy-range", "10", "90", "-n", "40", "--shard-size", "10", "--seed", "3", "--workers", "2"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([*cmd, "-o", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while proc.poll() is None and not _done_shards(out):
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err and "Traceback" not in err
    manifest = json.loads((out / "production.json").read_text())
    done = [s for s in manifest["shards"] if s["status"] == "done"]
    assert 1 <= len(done) < 4
    for shard in done:
        assert hashlib.sha256((out / shard["file"]).read_bytes()).hexdigest() == shard["sha256"]
    assert not leftovers(out)


def _done_shards(out: Path) -> list[str]:
    try:
        manifest = json.loads((out / "production.json").read_text())
    except (OSError, json.JSONDecodeError):
        return []
    return [s["file"] for s in manifest["shards"] if s["status"] == "done"]
