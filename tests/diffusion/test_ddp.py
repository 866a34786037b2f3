"""train-diffusion and distill run unchanged under torchrun (2 CPU processes, gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch
import yaml

from caloclouds.config import config_to_dict

TIMEOUT_S = 120
# Each worker runs the two verbs one after the other (one torchrun start instead of two).
WORKER = (
    "import json, sys; from caloclouds.cli import main; "
    "sys.exit(main(json.loads(sys.argv[1])) or main(json.loads(sys.argv[2])))"
)


def test_ddp_two_cpu_processes(tmp_path, toy_file, tiny_config) -> None:  # noqa: ANN001
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(config_to_dict(tiny_config)))
    common = ["--data", str(toy_file), "--steps", "4", "--batch-size", "4", "--no-progress"]
    train = ["train-diffusion", "--config", str(cfg_path), "--out", str(tmp_path / "t"), *common]
    dist = ["distill", "--teacher", str(tmp_path / "t"), "--out", str(tmp_path / "c"), *common]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "--no-python",
        sys.executable,
        "-c",
        WORKER,
        json.dumps(train),
        json.dumps(dist),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("train-diffusion: step 4") == 2  # both ranks finish
    assert proc.stdout.count("distill: step 4") == 2

    ck = torch.load(tmp_path / "t" / "checkpoint.pt", weights_only=True)
    assert ck["step"] == 4 and len(ck["loss_log"]) == 4
    assert len(ck["train_state"]["rng"]) == 2  # one random stream per rank
    assert not torch.equal(ck["train_state"]["rng"][0], ck["train_state"]["rng"][1])
    ck = torch.load(tmp_path / "c" / "model.pt", weights_only=True)
    assert ck["kind"] == "cm" and ck["step"] == 4 and "train_state" not in ck
