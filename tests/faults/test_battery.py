"""Run the fault battery (tests/faults/battery.py): every case a clear error or correct behaviour,
no traceback, no leftover temporary file, no damaged output."""

from __future__ import annotations

import pytest

from battery import run_battery  # tests/faults is on sys.path (rootdir-relative import by pytest)


@pytest.fixture(scope="module")
def battery(tmp_path_factory):
    return run_battery(tmp_path_factory.mktemp("faults"))


def test_no_tracebacks(battery) -> None:
    outcomes, counts = battery
    failures = [f"{o.case.name}:\n{o.traceback}" for o in outcomes if o.traceback]
    assert not failures, "\n".join(failures)


def test_no_leftovers_or_damage(battery) -> None:
    outcomes, counts = battery
    assert counts["leftover_files"] == 0, [(o.case.name, o.leftovers) for o in outcomes if o.leftovers]
    assert counts["damaged_outputs"] == 0, [(o.case.name, o.damaged) for o in outcomes if o.damaged]


def test_every_case_as_expected(battery) -> None:
    outcomes, counts = battery
    failures = [f"{o.case.name}: {o.problem}" for o in outcomes if o.problem]
    assert not failures, "\n".join(failures)
    print("fault battery:", counts)
    assert counts["clear_errors"] + counts["correct_behaviours"] == counts["cases"]
