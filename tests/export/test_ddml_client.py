"""The C++ client of examples/ddml: built with the libtorch inside the torch wheel, run on the export.

Skipped when cmake or a C++ compiler is missing. It builds once per session (about a minute on
one core) and draws 100 showers at each of 10, 50 and 90 GeV.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import shared_file

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "ddml"
ENERGIES_GEV = (10.0, 50.0, 90.0)
RESULT = re.compile(
    r"RESULT energy_gev=(\S+) showers=(\d+) mean_points=(\S+) mean_energy_mev=(\S+) "
    r"sampling_fraction=(\S+) median_ms=(\S+) mean_ms=(\S+) cpu_median_ms=(\S+) faults_per_call=(\S+) consistent=(\d)"
)


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kwargs)


@pytest.fixture(scope="session")
def client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("cmake") is None or shutil.which(os.environ.get("CXX", "c++")) is None:
        pytest.skip("cmake or a C++ compiler is not installed")
    build = tmp_path_factory.mktemp("ddml_build")
    configure = _run(
        ["cmake", "-S", str(EXAMPLE), "-B", str(build), f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}"]
    )
    assert configure.returncode == 0, configure.stdout + configure.stderr
    compiled = _run(["cmake", "--build", str(build)])
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    return build / "caloclouds_ddml"


def _geant4_sampling_fraction(energy_gev: float) -> float:
    from caloclouds.io import read_showers

    showers = read_showers(shared_file("g4_photons_val_fixed.h5"))
    showers = showers[np.abs(showers.incident_energy_gev - energy_gev) < 0.5]
    return float(np.mean(showers.visible_energy_mev() / (1000.0 * energy_gev)))


def test_client_draws_consistent_showers_at_geant4_sampling_fraction(client, exported):
    run = _run([str(client), str(exported), "--energies", *map(str, ENERGIES_GEV), "-n", "100", "--threads", "1"])
    assert run.returncode == 0, run.stdout + run.stderr
    results = {float(m[0]): m for m in RESULT.findall(run.stdout)}
    assert sorted(results) == list(ENERGIES_GEV)
    for energy, (_, n, mean_points, _, fraction, median_ms, mean_ms, cpu_ms, _, consistent) in results.items():
        assert consistent == "1" and int(n) == 100 and float(mean_points) > 100
        assert float(median_ms) > 0 and float(mean_ms) > 0 and float(cpu_ms) > 0
        g4 = _geant4_sampling_fraction(energy)
        assert abs(float(fraction) / g4 - 1) < 0.03, (energy, fraction, g4)
    layers = [line for line in run.stdout.splitlines() if line.startswith("LAYERS")]
    assert len(layers) == 3 and all(len(line.split()) == 2 + 30 for line in layers)


def test_client_reproduces_a_seed(client, exported):
    runs = [
        _run([str(client), str(exported), "--energies", "50", "-n", "3", "--warmup", "0", "--seed", "5"])
        for _ in range(2)
    ]
    assert runs[0].returncode == 0
    strip = [re.sub(r"(median_ms|mean_ms|cpu_median_ms|faults_per_call)=\S+", "", r.stdout) for r in runs]
    assert strip[0] == strip[1]


@pytest.mark.parametrize(
    "tunables",
    [None, "glibc.malloc.mmap_threshold=131072:glibc.malloc.trim_threshold=262144"],
    ids=["plain", "glibc defaults held fixed"],
)
def test_plain_client_does_not_fault_its_activations_in_on_every_call(client, exported, tunables):
    """Issue 26: the network's activations were MBs, which glibc handed back to the system after
    every call (about 1800 page faults per call at 90 GeV, 1.6x the time of a client with raised
    malloc thresholds). The export now runs the network in chunks small enough for malloc to keep.
    Page faults, not times: they count the cause and do not depend on the machine's load. The
    second case holds glibc's smallest thresholds (128 KiB mmap, 256 KiB trim) instead of letting
    them grow, as they may not in a host program: 3660 faults per call before."""
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")}
    if tunables is not None:
        env["GLIBC_TUNABLES"] = tunables
    run = _run([str(client), str(exported), "--energies", "10", "90", "-n", "20", "--threads", "1"], env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    faults = {float(m[0]): float(m[8]) for m in RESULT.findall(run.stdout)}
    if any(f < 0 for f in faults.values()):
        pytest.skip("this system does not count page faults per thread")
    bound = 10 if tunables is None else 300
    assert all(f < bound for f in faults.values()), faults


def test_client_errors(client, tmp_path):
    missing = _run([str(client), str(tmp_path / "nope.pt")])
    assert missing.returncode == 2 and "cannot load the TorchScript file" in missing.stderr
    usage = _run([str(client)])
    assert usage.returncode == 2 and "no model file given" in usage.stderr
    for bad in ("abc", "nan", "20deg"):
        angle = _run([str(client), "model.pt", "--theta", bad])
        assert angle.returncode == 2 and "--theta needs a finite number" in angle.stderr, bad


def _layer_lines(stdout: str, name: str) -> np.ndarray:
    """The values of the client's ``NAME energy_gev=E v_0 ... v_{L-1}`` lines, one row per energy."""
    rows = [line.split()[2:] for line in stdout.splitlines() if line.startswith(name + " ")]
    return np.array(rows, dtype=np.float64)


@pytest.mark.parametrize(("theta_deg", "phi_deg"), [(0.0, 30.0), (40.0, 30.0), (20.0, 390.0)])
def test_client_passes_the_angles(client, direction_exported, theta_deg, phi_deg):
    """Issue 25: the client's --theta and --phi reach the model. A direction-aware export: the same
    seed gives in C++ the showers it gives in Python (the layers' energy-weighted centres agree to
    the printed digits), and the centre drifts by tan(theta) per mm of depth along phi."""
    from caloclouds.config import ILD_LIKE_DETECTOR
    from caloclouds.export.drift import drift_per_mm, layer_centres_mm
    from caloclouds.export.torchscript import decode_output, load_export

    n = 8
    run = _run(
        [str(client), str(direction_exported), "--energies", "50", "-n", str(n), "--warmup", "0", "--seed", "3"]
        + ["--theta", str(theta_deg), "--phi", str(phi_deg)]
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"ANGLES theta_deg={theta_deg:g} phi_deg={phi_deg:g}" in run.stdout
    energy, x, y = (_layer_lines(run.stdout, k)[0] for k in ("LAYER_ENERGY_MEV", "CENTRE_X_MM", "CENTRE_Y_MM"))
    module, _ = load_export(direction_exported)
    torch.manual_seed(3)
    with torch.inference_mode():
        args = [torch.full((1, 1), v) for v in (50.0, theta_deg, phi_deg)]
        points = np.concatenate([decode_output(module(*args), 30)[1] for _ in range(n)])
    ref_x, ref_y, ref_e = layer_centres_mm(points, 0.0, 30)
    np.testing.assert_allclose(energy, ref_e / n, rtol=1e-5)
    np.testing.assert_allclose(x, ref_x, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-4)
    phi = np.radians(phi_deg)
    along = np.cos(phi) * x + np.sin(phi) * y
    drift = drift_per_mm(along, energy, np.asarray(ILD_LIKE_DETECTOR.layer_centre_z_mm))
    assert abs(drift - np.tan(np.radians(theta_deg))) < 0.06, drift  # the tiny model leans by ~0.02 itself
