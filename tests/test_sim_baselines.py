"""Allocation regression baselines: the built-in scenarios against the baselines they ship
with, a changed allocation caught by the CLI, and the comparison's rules (pure)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sim.baseline import BaselineError, check_comparable, differences, load_baseline
from sim.outputs import default_baseline
from sim.simulator_runner import SCENARIO_DIRS, find_scenario

PYTHON = sys.executable
BUILT_IN = sorted(p.stem for p in SCENARIO_DIRS[1].glob("*.py"))

#: The CLI with the allocator changed: every EVSE gets 10 % less than it would.
CHANGED_ALLOCATION = """
import sys
import csms.smart.service as service
allocate = service.allocate
service.allocate = lambda *a, **k: {key: w * 0.9 for key, w in allocate(*a, **k).items()}
from sim.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_every_built_in_scenario_ships_a_baseline() -> None:
    assert len(BUILT_IN) >= 7
    for name in BUILT_IN:
        assert default_baseline(find_scenario(name)).is_file(), name


@pytest.mark.parametrize("name", BUILT_IN)
def test_a_built_in_scenario_matches_its_baseline(name: str, tmp_path: Path) -> None:
    # A change that changes a morning fails here; `python -m sim scenario NAME
    # --update-baseline` accepts it, and the baseline's diff shows it in review.
    # Through the CLI, as a reviewer runs it: trio schedules differently in a process
    # that imported hypothesis (its plugin sorts each batch before the seeded shuffle), so
    # a report made here, in pytest, may differ from the CLI's by a few calls.
    done = subprocess.run([PYTHON, "-m", "sim", "scenario", name, "--baseline"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"baselines/{name}.json: the same, within the tolerances" in done.stdout


def run(tmp_path: Path, *args: str, changed: bool = False) -> subprocess.CompletedProcess[str]:
    command = [PYTHON, "-c", CHANGED_ALLOCATION] if changed else [PYTHON, "-m", "sim"]
    return subprocess.run([*command, "scenario", "morning_rush", "--chargers", "3", "--set",
                           "hours=4", *args], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300, check=False)


def test_a_changed_allocation_fails_its_baseline_and_update_baseline_accepts_it(
    tmp_path: Path,
) -> None:
    done = run(tmp_path, "--baseline", "b.json", "--update-baseline")
    assert done.returncode == 0, done.stderr
    assert "baseline b.json written" in done.stdout
    stored = (tmp_path / "b.json").read_text()
    assert run(tmp_path, "--baseline", "b.json").returncode == 0

    done = run(tmp_path, "--baseline", "b.json", changed=True)
    assert done.returncode == 1, done.stderr
    assert "all checks passed" in done.stdout  # the checks hold: only the baseline fails
    diff = done.stdout.split("all checks passed\n", 1)[1]
    assert diff.startswith("baseline b.json: ")
    assert "difference(s) beyond the tolerances (energy ±0.5% or 0.01 kWh" in diff
    assert "--update-baseline accepts them" in diff
    # 10 % less power: the peak, and the energy of sessions the limit held back.
    assert "  peak site power, metered: " in diff
    assert ": energy: " in diff and " kWh (-" in diff
    assert (tmp_path / "b.json").read_text() == stored  # comparing never writes

    done = run(tmp_path, "--baseline", "b.json", "--update-baseline", changed=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "b.json").read_text() != stored
    done = run(tmp_path, "--baseline", "b.json", changed=True)
    assert done.returncode == 0, done.stderr
    assert "baseline b.json: the same, within the tolerances" in done.stdout


def test_a_baseline_of_other_parameters_or_none_is_refused_before_the_run(
    tmp_path: Path,
) -> None:
    assert run(tmp_path, "--baseline", "b.json", "--update-baseline").returncode == 0
    done = run(tmp_path, "--baseline", "b.json", "--seed", "2")
    assert done.returncode == 2
    assert "baseline b.json is of scenario morning_rush seed 1, this run is morning_rush " \
        "seed 2" in done.stderr
    assert not done.stdout  # refused before running
    done = run(tmp_path, "--baseline", "b.json", "--set", "arrivals_per_evse=0.5")
    assert done.returncode == 2
    assert "other parameters (arrivals_per_evse: 1.0 there, 0.5 here)" in done.stderr
    done = run(tmp_path, "--baseline", "missing.json")
    assert done.returncode == 2
    assert "no baseline missing.json (--update-baseline writes it)" in done.stderr
    (tmp_path / "bad.json").write_text("{not json")
    done = run(tmp_path, "--baseline", "bad.json")
    assert done.returncode == 2 and "baseline bad.json cannot be read" in done.stderr
    # A report of the right shape on top but not inside (hand-edited, or another version).
    stored = json.loads((tmp_path / "b.json").read_text())
    del stored["sessions"][0]["energy_kwh"]
    (tmp_path / "edited.json").write_text(json.dumps(stored))
    done = run(tmp_path, "--baseline", "edited.json")
    assert done.returncode == 2 and not done.stdout
    assert "baseline edited.json is not a scenario report this version reads (KeyError: " \
        "'energy_kwh')" in done.stderr


# -- the comparison (pure) ---------------------------------------------------------------


def report(**totals: Any) -> dict[str, Any]:
    return {
        "scenario": "demo", "seed": 1, "params": {"chargers": 1},
        "checks": [{"name": "sessions", "held": 1, "failed": 0, "failures": []}],
        "totals": {"sessions": 1, "profiles_received": 3, "calls_sent": 10,
                   "calls_received": 3, "energy_kwh": 10.0, "peak_site_kw": 11.0,
                   "csms_seen": None, **totals},
        "sessions": [{"charger": "CP_01", "evse": "EVSE_1", "start": "06:00", "stop": "08:00",
                      "stop_reason": "EVDisconnected", "profiles_received": 3,
                      "energy_kwh": 10.0, "peak_kw": 11.0}],
    }


def test_figures_within_the_tolerances_are_the_same() -> None:
    before = report()
    after = report(energy_kwh=10.04, peak_site_kw=11.05)
    after["sessions"][0].update(energy_kwh=10.049, peak_kw=10.96)
    assert differences(before, after) == []


def test_what_changed_is_listed_one_line_each() -> None:
    before = report()
    after = report(profiles_received=4, energy_kwh=9.0)
    after["sessions"][0].update(profiles_received=4, energy_kwh=9.0)
    after["sessions"].append({**after["sessions"][0], "start": "09:00", "stop": "10:00"})
    after["checks"] = [{"name": "sessions", "held": 0, "failed": 1,
                        "failures": ["[sessions] 1 sessions for 2 arrivals"]},
                       {"name": "energy", "held": 2, "failed": 0, "failures": []}]
    assert differences(before, after) == [
        "check sessions: passed -> FAILED: [sessions] 1 sessions for 2 arrivals",
        "check energy: new",
        "profiles received: 3 -> 4 (+33.3%)",
        "energy: 10.0 kWh -> 9.0 kWh (-10.0%)",
        "CP_01 EVSE_1 session 1: profiles received: 3 -> 4 (+33.3%)",
        "CP_01 EVSE_1 session 1: energy: 10.0 kWh -> 9.0 kWh (-10.0%)",
        "CP_01 EVSE_1 session 2 (from 09:00): new",
    ]
    assert differences(after, before)[-1] == "CP_01 EVSE_1 session 2 (from 09:00): no longer there"


def test_a_baseline_is_of_one_scenario_seed_and_parameters(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    base = report()
    check_comparable(base, "demo", 1, {"chargers": 1}, path)
    with pytest.raises(BaselineError, match="of scenario demo seed 1, this run is other seed 1"):
        check_comparable(base, "other", 1, {"chargers": 1}, path)
    with pytest.raises(BaselineError, match=r"other parameters \(chargers: 1 there, 2 here\)"):
        check_comparable(base, "demo", 1, {"chargers": 2}, path)
    path.write_text(json.dumps({"some": "json"}))
    with pytest.raises(BaselineError, match="is not a scenario report"):
        load_baseline(path)
    changed = copy.deepcopy(base)
    changed["params"]["chargers"] = 1.0  # JSON does not tell 1 from 1.0 apart here
    check_comparable(changed, "demo", 1, {"chargers": 1}, path)


def test_each_groups_received_power_is_compared() -> None:
    seen = {"peak_kw": 59.5, "longest_over_limit_s": 0.0}
    before = report(groups={"north": {"chargers": ["CP_01"], "limit_kw": 60.0,
                                      "csms_seen": seen}})
    after = report(groups={"north": {"chargers": ["CP_01"], "limit_kw": 60.0,
                                     "csms_seen": {**seen, "peak_kw": 64.0,
                                                   "longest_over_limit_s": 120.0}},
                           "south": {"chargers": ["CP_02"], "limit_kw": 90.0}})
    assert differences(before, after) == [
        "peak group north power, received by the CSMS: 59.5 kW -> 64.0 kW (+7.6%)",
        "longest above the group north limit: 0.0 s -> 120.0 s",
        "group south: new",
    ]
