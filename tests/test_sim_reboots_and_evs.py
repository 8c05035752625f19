"""Chargers that reboot and forget, and EVs that are not ideal (issue #12, point 1), as the
CSMS sees them: the real CSMS and simulated chargers over real loopback WebSockets, in
virtual time, read back from the CSMS's message log and stored sampled values."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from csms.storage.base import LogRow
from fleet_helpers import CONFIG, VirtualSite, eventually, virtual_site
from ocppj.timestamps import parse_timestamp
from sim.charge_point import SimChargePoint
from sim.ev import Ev


def incoming(log: list[LogRow], since: Any = None) -> list[list[Any]]:
    """CALLs CP_01 sent (after ``since``), in order."""
    return [json.loads(row.frame) for row in log
            if row.charger_id == "CP_01" and row.direction == "in"
            and (since is None or row.at > since) and json.loads(row.frame)[0] == 2]


async def plugged(s: VirtualSite, ev: Ev, *, template: str | None = None) -> SimChargePoint:
    (cp,) = await s.fleet.spawn(1, evses=1, template=template)
    await eventually(lambda: cp.online)
    await cp.plug_in(1, ev)
    assert await cp.start_session(1, "TAG-EV")
    await cp.wait_queue_empty()
    return cp


async def test_a_reboot_that_loses_the_transaction_never_stops_it(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    async with virtual_site(tmp_path, virtual_clock) as s:
        cp = await plugged(s, Ev(capacity_wh=80_000, soc=10.0, max_power_w=11_000))
        await trio.sleep(3 * CONFIG.meter_interval)
        tx = cp.evses[1].transaction
        assert tx is not None and tx.transaction_id is not None
        down = s.now()
        await cp.reboot(lose_transactions=True)
        await eventually(lambda: cp.online)
        await trio.sleep(10 * CONFIG.meter_interval)
        log = await s.log()
        (gone,) = [row for row in log if row.direction == "disconnect"]
        assert "1006" in gone.frame and gone.at == down
        after = incoming(log, down)
        assert after[0][2] == "BootNotification"
        statuses = [f[3] for f in after if f[2] == "StatusNotification"]
        assert {"connectorId": 1, "status": "Available"}.items() <= statuses[-1].items()
        # The transaction is never stopped, and nothing more is metered for it.
        assert not [f for f in incoming(log) if f[2] == "StopTransaction"]
        assert not [f for f in after if f[2] == "MeterValues"
                    and f[3].get("transactionId") == tx.transaction_id]
        assert [r.stop_reason for r in cp.sessions] == ["LostInReboot"]


async def test_a_reboot_that_keeps_the_transaction_goes_on_metering_it(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    async with virtual_site(tmp_path, virtual_clock) as s:
        cp = await plugged(s, Ev(capacity_wh=80_000, soc=10.0, max_power_w=11_000))
        tx = cp.evses[1].transaction
        assert tx is not None
        down = s.now()
        await cp.reboot()
        await eventually(lambda: cp.online)
        await trio.sleep(3 * CONFIG.meter_interval)
        after = incoming(await s.log(), down)
        assert after[0][2] == "BootNotification"
        assert [f for f in after if f[2] == "MeterValues"
                and f[3].get("transactionId") == tx.transaction_id]


def sampled(frame: list[Any]) -> dict[tuple[str, str | None], float]:
    values = frame[3]["meterValue"][0]["sampledValue"]
    return {(v["measurand"], v.get("phase")): float(v["value"]) for v in values}


async def test_a_single_phase_ev_on_a_three_phase_charger_draws_on_l1_only(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    async with virtual_site(tmp_path, virtual_clock) as s:
        # 22 kW three-phase charger: 32 A per phase; the EV's charger uses one phase.
        cp = await plugged(s, Ev(capacity_wh=60_000, soc=10.0, max_power_w=7_400, phases=1))
        await trio.sleep(2 * CONFIG.meter_interval)
        tx = cp.evses[1].transaction
        assert tx is not None and tx.transaction_id is not None
        answer = await s.call("CP_01", "SetChargingProfile", {
            "connectorId": 1,
            "csChargingProfiles": {
                "chargingProfileId": 1, "transactionId": tx.transaction_id, "stackLevel": 0,
                "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Relative",
                "chargingSchedule": {"chargingRateUnit": "A",
                                     "chargingSchedulePeriod": [{"startPeriod": 0,
                                                                 "limit": 16.0}]},
            },
        })
        assert answer == {"status": "Accepted"}
        limited_from = s.now()
        await trio.sleep(2 * CONFIG.meter_interval)
        meter = [(f, sampled(f)) for f in incoming(await s.log()) if f[2] == "MeterValues"]
        unlimited = [v for f, v in meter if v[("Power.Active.Import", None)] > 5_000]
        assert unlimited
        first = unlimited[0]
        # Unlimited: a third of the EVSE's 22 kW (31.9 A), on L1 alone.
        assert first[("Current.Import", "L1")] == pytest.approx(22_000 / 3 / 230, abs=0.01)
        assert first[("Current.Import", "L2")] == first[("Current.Import", "L3")] == 0.0
        assert first[("Power.Active.Import", None)] == pytest.approx(22_000 / 3, abs=0.1)
        # 16 A per phase allows a single-phase EV 16 A: 3,680 W, not 11,040 W.
        last = meter[-1][1]
        stamp = parse_at(meter[-1][0])
        assert stamp is not None and stamp > limited_from
        assert last[("Current.Import", "L1")] == pytest.approx(16.0, abs=0.01)
        assert last[("Current.Import", "L2")] == 0.0
        assert last[("Power.Active.Import", None)] == pytest.approx(16 * 230, abs=0.1)


def parse_at(frame: list[Any]) -> datetime.datetime | None:
    return parse_timestamp(frame[3]["meterValue"][0]["timestamp"])


async def test_an_ev_tapers_then_finishes_and_is_suspended_ev(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    async with virtual_site(tmp_path, virtual_clock) as s:
        # 10 kWh from 85 %: tapering at once, full within the hour.
        await plugged(s, Ev(capacity_wh=10_000, soc=85.0, max_power_w=11_000))
        await trio.sleep(3600)
        frames = incoming(await s.log())
        powers = [sampled(f)[("Power.Active.Import", None)] for f in frames
                  if f[2] == "MeterValues" and f[3].get("transactionId") is not None]
        charging = [p for p in powers if p > 0]
        assert len(charging) >= 3
        assert charging == sorted(charging, reverse=True)  # tapering as it fills
        assert charging[0] < 11_000
        assert powers[-1] == 0.0  # full: it takes nothing
        statuses = [f[3]["status"] for f in frames if f[2] == "StatusNotification"
                    and f[3]["connectorId"] == 1]
        assert statuses[-1] == "SuspendedEV"
        assert "Charging" in statuses
