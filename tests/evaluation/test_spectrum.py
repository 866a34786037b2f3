"""Incident-energy spectra: the KS check, energies_from_file on shower files and generate --energies-from."""

from __future__ import annotations

import numpy as np
import pytest

from caloclouds.evaluation.spectrum import (
    SpectrumMismatchError,
    check_spectra,
    compare_spectra,
    energy_bin_label,
)


def test_ks_accepts_one_spectrum_and_refuses_another() -> None:
    rng = np.random.default_rng(0)
    uniform = rng.uniform(10, 90, 1000)
    other_uniform = rng.uniform(10, 90, 1000)
    fixed = np.repeat([10.0, 50.0, 90.0], 200)
    same = compare_spectra(uniform, other_uniform)
    assert same.p_value > 1e-3 and same.n_sample == 1000
    checks = check_spectra(uniform, {"a": other_uniform, "b": uniform.copy()})
    assert checks["b"].statistic == 0.0
    with pytest.raises(SpectrumMismatchError, match="--energies-from") as info:
        check_spectra(uniform, {"ok": other_uniform, "fixed": fixed})
    assert info.value.label == "fixed" and info.value.check.p_value < 1e-20
    recorded = check_spectra(uniform, {"fixed": fixed}, allow_mismatch=True)
    assert recorded["fixed"].p_value < 1e-20
    with pytest.raises(ValueError, match="both sides"):
        compare_spectra(uniform, np.array([]))
    assert energy_bin_label(10.0, 30.0) == "10-30 GeV"


def test_energies_of_a_shower_file(shared, tmp_path) -> None:
    from caloclouds.errors import InputFileError
    from caloclouds.generation.energies import energies_from_file
    from caloclouds.io import ShowerFile, read_showers
    from caloclouds.io.root import write_root

    path = shared("g4_photons_val_uniform.h5")
    with ShowerFile(path) as f:
        expected = np.asarray(f.incident_energy_gev)
    energies = energies_from_file(str(path))
    assert energies.dtype == np.float32 and np.array_equal(energies, expected)
    assert np.array_equal(energies_from_file(str(path), n_showers=7), expected[:7])
    root = tmp_path / "few.root"
    write_root(root, read_showers(path, 0, 5))
    assert np.array_equal(energies_from_file(str(root)), expected[:5])
    with pytest.raises(InputFileError, match="fewer than -n 6"):
        energies_from_file(str(root), n_showers=6)
    with pytest.raises(InputFileError, match="missing.h5"):
        energies_from_file(str(tmp_path / "missing.h5"))


def test_generate_energies_from_rejects_bad_files(shared, tmp_path, capsys) -> None:
    from caloclouds.cli import main

    assert main(["generate", "--energies-from", str(tmp_path / "none.h5"), "-o", str(tmp_path / "x.h5")]) == 2
    assert "none.h5" in capsys.readouterr().err
    fixed = str(shared("g4_photons_val_fixed.h5"))
    assert main(["generate", "--energies-from", fixed, "-n", "601", "-o", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err
    assert "g4_photons_val_fixed.h5" in err and "600 showers" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.h5").exists()


def test_generate_energies_from_matches_the_reference(shared, tmp_path, capsys) -> None:
    from caloclouds.cli import main
    from caloclouds.io import ShowerFile

    ref = shared("g4_photons_val_uniform.h5")
    out = tmp_path / "matched.h5"
    assert main(["generate", "--energies-from", str(ref), "-n", "4", "--batch-size", "4", "-o", str(out)]) == 0
    with ShowerFile(out) as f, ShowerFile(ref) as r:
        assert np.array_equal(f.incident_energy_gev, r.incident_energy_gev[:4])
