"""Incidents a config.yaml template schedules (sim.incidents): parsed at the edge, and seen
from the CSMS's side of the wire when they happen."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from fleet_helpers import eventually, virtual_site
from sim.behaviour import BehaviourError
from sim.config import ChargerTemplate
from sim.incidents import Incident, incident_from_spec


def test_incidents_from_their_descriptions() -> None:
    assert incident_from_spec({"kind": "offline", "at": 60, "for": 30}) == Incident(
        "offline", 60.0, for_s=30.0)
    assert incident_from_spec(
        {"kind": "offline", "at": 0, "for": 5, "stall": True, "every": 600}
    ) == Incident("offline", 0.0, 600.0, for_s=5.0, stall=True)
    assert incident_from_spec({"kind": "reboot", "at": 3600, "lose_transactions": True}) == (
        Incident("reboot", 3600.0, lose_transactions=True))


@pytest.mark.parametrize(("spec", "message"), [
    ({"kind": "flood", "at": 1}, "unknown incident 'flood' (known: offline, reboot)"),
    ({"kind": "offline", "at": 1}, "offline: for must be seconds > 0, got None"),
    ({"kind": "offline", "for": 1}, "offline: at must be seconds >= 0, got None"),
    ({"kind": "offline", "at": 1, "for": 1, "every": 0}, "every must be seconds > 0"),
    ({"kind": "reboot", "at": 1, "lose_transactions": "yes"}, "must be true or false"),
    ({"kind": "reboot", "at": 1, "for": 5}, "reboot: unknown setting(s) for"),
    ([1], "an incident is a mapping"),
])
def test_a_bad_incident_says_what_is_wrong(spec: Any, message: str) -> None:
    with pytest.raises(BehaviourError) as caught:
        incident_from_spec(spec)
    assert message in str(caught.value)


async def test_a_templates_incidents_happen_when_scheduled(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    template = ChargerTemplate(evses=1, incidents=(
        {"kind": "offline", "at": 600, "for": 300},
        {"kind": "reboot", "at": 1800, "every": 1800},
    ))
    async with virtual_site(tmp_path, virtual_clock) as s:
        s.fleet.config = attrs.evolve(s.fleet.config, chargers={"default": template})
        start = s.now()
        (cp,) = await s.fleet.spawn(1)
        await eventually(lambda: cp.online)
        await trio.sleep(4000)
        log = await s.log()
        gone = [(row.at - start).total_seconds() for row in log
                if row.direction == "disconnect"]
        came = [(row.at - start).total_seconds() for row in log if row.direction == "connect"]
        boots = [row for row in log if row.direction == "in"
                 and json.loads(row.frame)[2:3] == ["BootNotification"]]
        # Offline at 600 s for 300 s; reboots at 1,800 s and 3,600 s.
        assert gone == [600.0, 1800.0, 3600.0]
        assert came[0] == 0.0
        assert 900.0 <= came[1] <= 960.0
        assert 1800.0 <= came[2] <= 1802.0 and 3600.0 <= came[3] <= 3602.0
        assert len(boots) == 4
        assert all(isinstance(row.at, datetime.datetime) for row in boots)
