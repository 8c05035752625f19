"""The fault scenarios of issue #12 (unruly_fleet, network_partition, csms_restart) in
virtual time against the in-process CSMS, one test per promise they check.

Each promise was first an expected failure naming the issue #13 point that fixed it;
the scenarios' checks were never weakened, and every one now holds.
"""

from __future__ import annotations

import pytest

from sim.report import ScenarioReport
from test_sim_scenarios import run_shipped

TAGS = ("site-limit", "closed", "records", "duplicates", "sessions")
_reports: dict[str, ScenarioReport] = {}


def report(name: str) -> ScenarioReport:
    if name not in _reports:
        _reports[name] = run_shipped(name)
    return _reports[name]


def failed(name: str, tag: str) -> list[str]:
    return [f for f in report(name).failures if f.startswith(f"[{tag}]")]


@pytest.mark.parametrize("name", ["unruly_fleet", "network_partition", "csms_restart"])
def test_every_failure_is_one_of_the_promises(name: str) -> None:
    assert all(f.startswith(tuple(f"[{t}]" for t in TAGS)) for f in report(name).failures)


CASES = [
    pytest.param(name, tag, id=f"{name}-{tag}")
    for name in ("unruly_fleet", "network_partition", "csms_restart") for tag in TAGS
]


@pytest.mark.parametrize(("name", "tag"), CASES)
def test_the_csms_keeps_its_promise(name: str, tag: str) -> None:
    assert failed(name, tag) == []


def test_unruly_fleet_has_every_misbehaviour() -> None:
    notes = "\n".join(report("unruly_fleet").notes)
    for way in ("overshoots", "ignores profiles", "obeys after", "answers SetChargingProfile",
                "meters energy only", "offline", "stalled", "reboots"):
        assert way in notes, notes


def test_the_csms_restart_really_happened() -> None:
    assert any("the CSMS was killed" in n for n in report("csms_restart").notes)
