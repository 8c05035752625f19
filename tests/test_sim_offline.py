"""A charger whose network fails (issue #12, offline): seen from the CSMS's side of the
wire, the real CSMS and a simulated charger over real loopback WebSockets, in virtual time,
read back from the CSMS's message log and the sampled values it stored."""

from __future__ import annotations

import datetime
import itertools
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

ENERGY = "Energy.Active.Import.Register"


async def charging(s: VirtualSite) -> SimChargePoint:
    (cp,) = await s.fleet.spawn(1, evses=1)
    await eventually(lambda: cp.online)
    await cp.plug_in(1, Ev(capacity_wh=80_000, soc=10.0, max_power_w=11_000))
    assert await cp.start_session(1, "TAG-OFFLINE")
    await trio.sleep(3 * CONFIG.meter_interval)
    await cp.wait_queue_empty()  # a quiet moment: no CALL of the charger in flight
    return cp


def frames(log: list[LogRow], direction: str) -> list[tuple[LogRow, list[Any]]]:
    return [(row, json.loads(row.frame)) for row in log
            if row.charger_id == "CP_01" and row.direction == direction]


def meter_times(log: list[LogRow]) -> list[datetime.datetime]:
    """When each MeterValues the CSMS received was metered (its first sample's time)."""
    times = []
    for _, frame in frames(log, "in"):
        if frame[0] == 2 and frame[2] == "MeterValues":
            stamp = parse_timestamp(frame[3]["meterValue"][0]["timestamp"])
            assert stamp is not None
            times.append(stamp)
    return times


async def test_a_dropped_connection_is_queued_through_and_delivered_in_order_once(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    async with virtual_site(tmp_path, virtual_clock) as s:
        cp = await charging(s)
        down = s.now()
        await cp.go_offline(600)
        assert not cp.online
        await trio.sleep(600)
        await eventually(lambda: cp.online and cp.queued == 0, within=CONFIG.meter_interval * 3)
        log = await s.log()

        # The CSMS saw the connection end without a closing handshake, at once ...
        (gone,) = [row for row in log if row.charger_id == "CP_01"
                   and row.direction == "disconnect"]
        assert gone.at == down
        assert "1006" in gone.frame
        # ... nothing from the charger while its network was down, and a new connection
        # (and BootNotification) at the first backoff attempt after it came back.
        connects = [row.at for row in log if row.charger_id == "CP_01"
                    and row.direction == "connect"]
        back = connects[-1]
        assert len(connects) == 2
        assert datetime.timedelta(seconds=600) <= back - down <= datetime.timedelta(seconds=660)
        assert not [row for row, _ in frames(log, "in") if down < row.at < back]
        first_after = next(frame for row, frame in frames(log, "in") if row.at >= back)
        assert first_after[2] == "BootNotification"

        # The MeterValues metered while offline arrive afterwards, stamped when they were
        # metered, in order, each once: one per interval, with no gap and no repeat.
        times = meter_times(log)
        assert times == sorted(set(times))
        offline = [t for t in times if down < t < back]
        assert len(offline) >= 600 // CONFIG.meter_interval - 1
        steps = {b - a for a, b in itertools.pairwise(times)}
        assert steps == {datetime.timedelta(seconds=CONFIG.meter_interval)}
        # The charger never stopped charging: the register rose all through.
        registers = [float(row.sample.value) for row in await s.samples()
                     if row.sample.measurand == ENERGY]
        assert registers == sorted(registers)
        assert registers[-1] - registers[0] > 11_000 * 0.9 * 600 / 3600


async def test_a_stalled_connection_reads_and_writes_nothing_until_it_flows_again(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    async with virtual_site(tmp_path, virtual_clock, call_timeout=300.0) as s:
        cp = await charging(s)
        start = trio.current_time()
        down = s.now()
        await cp.go_offline(90, stall=True)
        # A CALL of the CSMS during the stall is read, and answered, only when it ends.
        answer = await s.call("CP_01", "GetConfiguration", {"key": ["NumberOfConnectors"]})
        assert answer["configurationKey"][0]["value"] == "1"
        assert trio.current_time() - start == pytest.approx(90)
        up = s.now()
        await eventually(lambda: cp.queued == 0)
        log = await s.log()
        # TCP stayed open: no disconnect, no new connection.
        assert not [row for row in log if row.direction in ("disconnect", "connect")
                    and row.charger_id == "CP_01" and row.at > down]
        # Nothing arrived while stalled; then the queued MeterValues, as metered, once.
        assert not [row for row, _ in frames(log, "in") if down < row.at < up]
        times = meter_times(log)
        assert times == sorted(set(times))
        assert [t for t in times if down < t < up]
        steps = {b - a for a, b in itertools.pairwise(times)}
        assert steps == {datetime.timedelta(seconds=CONFIG.meter_interval)}
        # A transaction message that waited for the link to flow is no failed attempt.
        assert cp.dropped == 0


async def test_a_stall_longer_than_the_csms_keepalive_ends_in_a_reconnect(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    async with virtual_site(tmp_path, virtual_clock, ping_interval=120.0,
                            ping_timeout=30.0) as s:
        cp = await charging(s)
        down = s.now()
        await cp.go_offline(400, stall=True)
        await trio.sleep(400)
        await eventually(lambda: cp.online and cp.queued == 0, within=300)
        log = await s.log()
        # The CSMS gave up on the silent charger after its ping went unanswered ...
        (gone,) = [row for row in log if row.charger_id == "CP_01"
                   and row.direction == "disconnect"]
        assert down < gone.at <= down + datetime.timedelta(seconds=CONFIG.meter_interval + 150)
        # ... and the charger, reading again, found the connection closed and came back
        # with everything it metered meanwhile.
        assert [row.at for row in log if row.charger_id == "CP_01"
                and row.direction == "connect"][-1] >= down + datetime.timedelta(seconds=400)
        times = meter_times(log)
        assert times == sorted(set(times))
        assert cp.dropped == 0
