"""Simulated charge points against the real CSMS, in one trio process, over real loopback
WebSockets, in virtual time.

Virtual time is a ``MockClock`` without autojump, driven by ``drive_virtual_clock``: it
jumps only when every task is blocked and the CSMS's SQLite store has nothing on its
thread (see ``fleet_helpers``). pytest-trio's ``autojump_clock`` would jump in the
middle of a commit. Waiting is ``trio.sleep`` in virtual time; nothing sleeps in real time.
"""

from __future__ import annotations

import datetime
import functools
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from csms.app import Csms
from csms.storage.base import SampleRow
from fleet_helpers import CONFIG, VirtualSite, eventually, virtual_site
from ocppj import Direction, FrameObserver
from sim.charge_point import SimChargePoint
from sim.cli import _seed_scheduler
from sim.config import SimConfig, load_config
from sim.ev import Ev
from sim.report import ScenarioReport
from sim.simulator_runner import VIRTUAL_EPOCH, load_scenario, run_scenario

REGISTER = "Energy.Active.Import.Register"


# -- shipped scenarios through run_scenario -------------------------------------------------


def run_shipped(name: str, *, seed: int = 1, **overrides: Any) -> ScenarioReport:
    """Run a shipped scenario in-process as ``python -m sim scenario`` does."""
    module = load_scenario(name)
    params = {**module.PARAMETERS, **overrides}
    config = load_config(None)
    if seed != config.seed:
        config = SimConfig(config.csms_url, seed, config.meter_interval,
                           config.heartbeat_interval, config.chargers, config.ev_mix)
    _seed_scheduler(seed)  # the CLI does the same: the report's contract includes it
    clock = trio.testing.MockClock()
    run = functools.partial(run_scenario, module, config, params, url=None, clock=clock)
    return trio.run(run, clock=clock)


def stamp(text: str | None) -> datetime.datetime:
    assert text is not None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def assert_sane(report: ScenarioReport) -> None:
    assert report.passed, report.failures
    assert report.sessions
    totals = report.totals
    assert totals["sessions"] == len(report.sessions)
    assert totals["energy_kwh"] == pytest.approx(sum(s["energy_kwh"] for s in report.sessions),
                                                 abs=0.002)
    for session in report.sessions:
        assert session["energy_kwh"] > 0, session
        assert session["peak_kw"] > 0, session
        assert session["stop"] is not None, session
        assert stamp(session["start"]) < stamp(session["stop"])
        assert stamp(session["start"]) >= VIRTUAL_EPOCH
        assert session["stop_reason"] is not None
        hours = (stamp(session["stop"]) - stamp(session["start"])).total_seconds() / 3600
        # Energy can never exceed the peak power over the whole session.
        assert session["energy_kwh"] <= session["peak_kw"] * hours + 0.01
    peak = sum(s["peak_kw"] for s in report.sessions)
    assert 0 < totals["peak_site_kw"] <= peak + 1e-9
    # Every charger booted; every session started and stopped; every profile was a CALL.
    assert totals["calls_sent"] >= totals["chargers"] + 2 * totals["sessions"]
    assert totals["calls_received"] >= totals["profiles_received"]
    per_session = sum(s["profiles_received"] for s in report.sessions) / len(report.sessions)
    assert totals["profiles_per_session"] == pytest.approx(per_session, abs=0.01)
    assert f"({per_session:.2f} per session)" in report.to_text()
    json.loads(report.to_json())
    text = report.to_text()
    assert "all checks passed" in text
    assert "FAILED" not in text


def test_basic_charge() -> None:
    report = run_shipped("basic_charge")
    assert_sane(report)
    [session] = report.sessions
    # 60 kWh EV at 20 %, 11 kW for three hours: 33 kWh, no taper below 80 %.
    assert session["energy_kwh"] == pytest.approx(33.0, abs=0.01)
    assert session["peak_kw"] == pytest.approx(11.0)
    assert session["stop_reason"] == "EVDisconnected"
    assert (session["charger"], session["evse"], session["id_tag"]) == ("CP_01", "EVSE_1",
                                                                        "TAG-CP_01")
    assert report.totals["chargers"] == 1
    assert report.totals["evses"] == 1
    # Three hours of MeterValues every 60 s, and Boot, Authorize, Start, Stop, statuses;
    # no site limit, so the CSMS sends nothing.
    assert 180 + 4 <= report.totals["calls_sent"] <= 200
    assert report.totals["calls_received"] == 0
    assert f"OCPP calls: {report.totals['calls_sent']} sent by the chargers, 0 by the CSMS" \
        in report.to_text()


def test_morning_rush_small() -> None:
    report = run_shipped("morning_rush", chargers=3)
    assert_sane(report)
    assert report.params["chargers"] == 3
    assert report.totals["chargers"] == 3
    assert report.totals["evses"] == 6
    assert len(report.sessions) == 6  # one arrival per EVSE
    assert {s["stop_reason"] for s in report.sessions} == {"EVDisconnected"}
    for session in report.sessions:  # arrivals between 06:00 and 10:00, gone by 13:00
        start, stop = stamp(session["start"]), stamp(session["stop"])
        assert datetime.time(6) <= start.time() <= datetime.time(10)
        assert stop <= VIRTUAL_EPOCH + datetime.timedelta(hours=8)
    assert any("6 arrivals on 6 EVSEs" in note for note in report.notes)
    # The grid connection gives 6 kW per EVSE: the CSMS shares it with charging profiles,
    # and the chargers obey them (report.passed includes the CSMS's view of the limit).
    assert report.totals["site_limit_kw"] == pytest.approx(36.0)
    seen = report.totals["csms_seen"]
    assert seen is not None
    assert seen["limit_kw"] == pytest.approx(36.0)
    assert report.totals["profiles_received"] > 0


def test_fault_injection() -> None:
    report = run_shipped("fault_injection")
    assert_sane(report)
    first, second = report.sessions
    assert (first["stop_reason"], second["stop_reason"]) == ("Other", "EVDisconnected")
    # 11 kW for 30 minutes each.
    assert first["energy_kwh"] == pytest.approx(5.5, abs=0.01)
    assert second["energy_kwh"] == pytest.approx(5.5, abs=0.01)
    # The second session starts once the fault cleared (15 minutes after it).
    gap = stamp(second["start"]) - stamp(first["stop"])
    assert gap == datetime.timedelta(minutes=15)


def test_power_saturation_small() -> None:
    report = run_shipped("power_saturation", chargers=2, hours=0.5)
    assert_sane(report)
    assert len(report.sessions) == 4
    assert report.totals["site_limit_kw"] == 100.0
    assert report.totals["peak_site_kw"] <= 4 * 22.0 + 1e-9
    assert {s["stop_reason"] for s in report.sessions} == {"EVDisconnected"}
    assert any("against a site limit of 100.0 kW" in note for note in report.notes)


# -- determinism --------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_report_byte_for_byte() -> None:
    first = run_shipped("morning_rush", chargers=1).to_json()
    second = run_shipped("morning_rush", chargers=1).to_json()
    assert first == second
    other = run_shipped("morning_rush", seed=2, chargers=1).to_json()
    assert other != first  # the seed does matter: arrivals are drawn from it


@pytest.fixture
def busy_machine() -> Iterator[None]:
    """Every core kept busy by a spinning process, as on a loaded CI runner: the kernel
    then delivers loopback segments late, and real threads finish late."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(os.cpu_count() or 2)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def test_the_cli_writes_the_same_bytes_twice_on_a_busy_machine(
    tmp_path: Path, busy_machine: None
) -> None:
    # Two processes, each with its own string hashing (set order) and memory layout
    # (trio breaks ties between timers by address), beside CPU hogs.
    reports = []
    for hash_seed, name in (("1", "a.json"), ("2", "b.json")):
        done = subprocess.run(
            [sys.executable, "-m", "sim", "scenario", "morning_rush", "--chargers", "20",
             "--set", "hours=4", "--report", name],
            capture_output=True, text=True, cwd=tmp_path, timeout=300, check=False,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
        )
        assert done.returncode == 0, done.stderr
        assert "all checks passed" in done.stdout
        reports.append((tmp_path / name).read_bytes())
    assert reports[0] == reports[1]
    data = json.loads(reports[0])
    assert data["passed"] is True
    assert data["scenario"] == "morning_rush"
    # No churn (issue #13, point 7): at most 8 profiles per session (3.27 here; 8.7
    # before the relative deadband; docs/smart-charging.md has the 50-charger figures).
    assert data["totals"]["profiles_per_session"] <= 8


# -- a CSMS and a fleet under the test's control ---------------------------------------------


async def online(*chargers: SimChargePoint) -> None:
    await eventually(lambda: all(cp.online for cp in chargers))


def registers(samples: list[SampleRow], transaction_id: int) -> list[float]:
    values = [row.sample.number for row in samples
              if row.transaction_id == transaction_id and row.sample.measurand == REGISTER]
    assert all(v is not None for v in values)
    return [float(v) for v in values if v is not None]


# -- meter values ---------------------------------------------------------------------------


async def test_registers_never_decrease_and_session_energy_is_stop_minus_start(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    async with virtual_site(tmp_path, virtual_clock) as site:
        chargers = await site.fleet.spawn(2, evses=2)
        cp1, cp2 = chargers
        await online(*chargers)
        visits = [
            (cp1, 1, Ev(60_000, 20.0, 11_000)),
            (cp1, 2, Ev(40_000, 75.0, 22_000)),  # tapers, then is full: SuspendedEV
            (cp2, 1, Ev(90_000, 10.0, 22_000)),
            (cp2, 2, Ev(20_000, 97.0, 7_400)),
        ]
        for i, (cp, connector, car) in enumerate(visits):
            await cp.plug_in(connector, car)
            assert await cp.start_session(connector, f"TAG-{i}")
            await trio.sleep(137)  # not on a meter tick
        await trio.sleep(2 * 3600)
        # The two EVs that arrived nearly full are full now: they draw nothing.
        for cp in chargers:
            arrived_full = cp.evse(2).ev
            assert arrived_full is not None and arrived_full.full
            assert evse_status(site, cp.id, 2) == "SuspendedEV"
            assert evse_status(site, cp.id, 1) == "Charging"
        await cp1.unplug(1)
        await cp1.stop_session(2)
        await cp1.unplug(2)
        # A second session on the same EVSE continues the same register.
        await cp1.plug_in(1, Ev(60_000, 50.0, 11_000))
        assert await cp1.start_session(1, "TAG-AGAIN")
        await trio.sleep(1800)
        for cp, connector in [(cp1, 1), (cp2, 1), (cp2, 2)]:
            await cp.unplug(connector)
        await eventually(lambda: all(cp.queued == 0 for cp in chargers))

        csms = site.running_csms
        samples = await site.samples()
        state = csms.state
        records = {r.transaction_id: r for cp in chargers for r in cp.sessions}
        assert len(records) == 5
        assert set(state.sessions) == set(records)
        assert state.anomalies == []
        assert state.open_sessions == {}
        for transaction_id, session in state.sessions.items():
            record = records[transaction_id]
            assert (session.charger_id, f"EVSE_{session.connector_id}", session.id_tag) == (
                record.charger, record.evse, record.id_tag)
            assert not session.open
            assert session.meter_stop is not None
            assert session.energy_wh == session.meter_stop - session.meter_start
            assert session.energy_wh == record.energy_wh
            assert session.energy_wh > 0
            values = registers(samples, transaction_id)
            assert len(values) >= 3, transaction_id
            assert all(a <= b for a, b in itertools.pairwise(values)), values
            assert values[0] >= session.meter_start
            assert values[-1] <= session.meter_stop + 0.5  # meterStop is the rounded register
            assert session.stop_reason == record.stop_reason
        first, second = sorted((s for s in state.sessions.values()
                                if (s.charger_id, s.connector_id) == ("CP_01", 1)),
                               key=lambda s: s.transaction_id)
        assert first.meter_stop is not None
        assert second.meter_start >= first.meter_stop
        assert {s.stop_reason for s in state.sessions.values()} == {"EVDisconnected", "Local"}
        full = cp1.evse(2)
        assert full.ev is None and full.register_wh > 0


# -- reconnect with queued transaction messages ----------------------------------------------


class AnswerLosingCsms(Csms):
    """A CSMS whose first StartTransaction answer never leaves: it is recorded and
    committed, then the connection drops (as when the network fails at that moment)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.answer_lost = trio.Event()
        self.lost_answer: dict[str, Any] | None = None

    def _observer_for(self, charge_point_id: str) -> FrameObserver:
        observe = super()._observer_for(charge_point_id)
        start_ids: set[str] = set()

        async def lossy(direction: Direction, frame: str, at: datetime.datetime) -> None:
            await observe(direction, frame, at)
            message = json.loads(frame)
            if direction is Direction.IN and message[:1] == [2] and message[2] == (
                    "StartTransaction"):
                start_ids.add(message[1])
            elif (direction is Direction.OUT and message[:1] == [3]
                  and message[1] in start_ids and not self.answer_lost.is_set()):
                self.lost_answer = message[2]
                self.answer_lost.set()
                connection = self.connections.get(charge_point_id)
                assert connection is not None
                connection.close(1011, "test: the answer is lost")
                await trio.lowlevel.checkpoint()  # cancelled: the frame is never sent

        return lossy


async def test_offline_messages_are_queued_retransmitted_and_delivered_in_order(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    async with virtual_site(tmp_path, virtual_clock, factory=AnswerLosingCsms) as site:
        first_csms = site.running_csms
        assert isinstance(first_csms, AnswerLosingCsms)
        [cp] = await site.fleet.spawn(1, evses=1)
        await online(cp)
        port = site.port
        await cp.plug_in(1, Ev(60_000, 20.0, 11_000))
        started_at = site.now()
        assert await cp.start_session(1, "TAG-OFFLINE")
        with trio.fail_after(60):
            await first_csms.answer_lost.wait()
        assert first_csms.lost_answer is not None
        lost_transaction_id = first_csms.lost_answer["transactionId"]

        # The CSMS goes away for a while; the charger keeps metering and queueing.
        await site.stop_csms()
        await trio.sleep(7 * 60 + 13)
        assert not cp.online
        transaction = cp.evse(1).transaction
        assert transaction is not None
        assert transaction.transaction_id is None  # it never got the answer
        queued_offline = cp.queued  # the StartTransaction and the MeterValues since
        assert queued_offline >= 1 + 7
        connects = cp.connects

        # Back on the same port and database: the charger reconnects by itself, within
        # its largest backoff.
        await site.start_csms()
        assert site.port == port
        await eventually(lambda: cp.online, within=cp.config.backoff_max + 1)
        await eventually(lambda: cp.queued == 0)
        assert cp.connects == connects + 1
        await trio.sleep(10 * 60)
        await cp.unplug(1)
        await eventually(lambda: cp.queued == 0)
        stopped_at = site.now()

        csms = site.running_csms
        samples = await site.samples()
        with site.hold():
            log = await csms.store.read_log("CP_01")
        [record] = cp.sessions
        # The retransmitted StartTransaction got the transactionId of the first.
        assert record.transaction_id == lost_transaction_id
        [session] = csms.state.sessions.values()
        assert session.transaction_id == lost_transaction_id
        assert not session.open
        assert session.stop_reason == "EVDisconnected"
        assert session.energy_wh == record.energy_wh
        assert session.meter_stop is not None
        assert session.energy_wh == session.meter_stop - session.meter_start
        assert csms.state.anomalies == []

        calls = [json.loads(row.frame) for row in log if row.direction == "in"]
        starts = [c[3] for c in calls if c[0] == 2 and c[2] == "StartTransaction"]
        assert len(starts) == 2
        assert starts[0] == starts[1]  # the same content, sent again
        answers = [json.loads(row.frame)[2] for row in log if row.direction == "out"
                   and json.loads(row.frame)[1] in {c[1] for c in calls
                                                    if c[2] == "StartTransaction"}]
        assert [a["transactionId"] for a in answers] == [lost_transaction_id] * 2

        # After the reconnect: StartTransaction, every MeterValues in order, StopTransaction.
        transaction_calls = [c for c in calls if c[0] == 2 and c[2] in (
            "StartTransaction", "MeterValues", "StopTransaction")]
        last_start = max(i for i, c in enumerate(transaction_calls)
                         if c[2] == "StartTransaction")
        after = transaction_calls[last_start:]
        assert after[0][2] == "StartTransaction"
        assert after[-1][2] == "StopTransaction"
        meter_values = [c[3] for c in after[1:-1]]
        assert {c[2] for c in after[1:-1]} == {"MeterValues"}
        assert all(m["transactionId"] == lost_transaction_id for m in meter_values)
        assert len(meter_values) >= queued_offline - 1
        times = [stamp(m["meterValue"][0]["timestamp"]) for m in meter_values]
        # No sample lost: one every meter interval from the first after the start to the
        # last before the stop, in order.
        interval = datetime.timedelta(seconds=CONFIG.meter_interval)
        assert times[0] - started_at <= interval
        assert stopped_at - times[-1] <= interval + datetime.timedelta(seconds=60)
        assert [b - a for a, b in itertools.pairwise(times)] == (
            [interval] * (len(times) - 1))
        assert len(registers(samples, lost_transaction_id)) == len(meter_values) + 1  # + End
        values = registers(samples, lost_transaction_id)
        assert values == sorted(values)


# -- the CSMS's commands ---------------------------------------------------------------------


def tx_profile(transaction_id: int, limit: float, profile_id: int = 1) -> dict[str, Any]:
    return {
        "connectorId": 1,
        "csChargingProfiles": {
            "chargingProfileId": profile_id,
            "transactionId": transaction_id,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
            },
        },
    }


async def charging(site: VirtualSite, cp: SimChargePoint, car: Ev | None = None) -> int:
    """Start a session on EVSE_1 of ``cp``; its transactionId once the CSMS has it."""
    await cp.plug_in(1, car or Ev(60_000, 20.0, 22_000))
    assert await cp.start_session(1, "TAG-CMD")
    await eventually(lambda: cp.queued == 0)
    transaction_id = site.running_csms.state.open_sessions[(cp.id, 1)]
    transaction = cp.evse(1).transaction
    assert transaction is not None
    assert transaction.transaction_id == transaction_id
    return transaction_id


def evse_status(site: VirtualSite, charger_id: str, connector_id: int) -> str:
    return site.running_csms.state.evses[(charger_id, connector_id)].status


async def test_a_tx_profile_caps_the_power_and_a_zero_limit_suspends(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    async with virtual_site(tmp_path, virtual_clock) as site:
        [cp] = await site.fleet.spawn(1, evses=2)
        await online(cp)
        transaction_id = await charging(site, cp)
        await trio.sleep(120)
        assert evse_status(site, "CP_01", 1) == "Charging"
        session = site.running_csms.state.sessions[transaction_id]
        assert session.power_w == pytest.approx(22_000)

        answer = await site.call("CP_01", "SetChargingProfile", tx_profile(transaction_id, 10.0))
        assert answer == {"status": "Accepted"}
        profile_set = site.now()
        await trio.sleep(CONFIG.meter_interval + 1)
        ceiling = 10.0 * 3 * 230.0
        after = [row for row in await site.samples()
                 if row.transaction_id == transaction_id and row.sample.timestamp
                 and stamp(row.sample.timestamp) > profile_set]
        powers = [row.sample.number for row in after
                  if row.sample.measurand == "Power.Active.Import"]
        currents = [row.sample.number for row in after
                    if row.sample.measurand == "Current.Import"]
        assert powers and currents
        assert all(p is not None and 0 < p <= ceiling + 1e-6 for p in powers), powers
        assert all(c is not None and c <= 10.0 + 0.01 for c in currents), currents
        assert evse_status(site, "CP_01", 1) == "Charging"

        schedule = await site.call("CP_01", "GetCompositeSchedule",
                                   {"connectorId": 1, "duration": 3600,
                                    "chargingRateUnit": "A"})
        assert schedule["status"] == "Accepted"
        assert schedule["connectorId"] == 1
        periods = schedule["chargingSchedule"]["chargingSchedulePeriod"]
        assert periods[0]["startPeriod"] == 0
        assert periods[0]["limit"] == pytest.approx(10.0)
        assert schedule["chargingSchedule"]["chargingRateUnit"] == "A"
        rejected = await site.call("CP_01", "GetCompositeSchedule",
                                   {"connectorId": 9, "duration": 60})
        assert rejected["status"] == "Rejected"

        answer = await site.call("CP_01", "SetChargingProfile", tx_profile(transaction_id, 0.0))
        assert answer == {"status": "Accepted"}
        await eventually(lambda: evse_status(site, "CP_01", 1) == "SuspendedEVSE", within=60)
        assert cp.evse(1).power_w == 0.0
        await trio.sleep(CONFIG.meter_interval + 1)
        assert site.running_csms.state.sessions[transaction_id].power_w == 0.0

        # A TxProfile for a transaction that is not running is refused.
        refused = await site.call("CP_01", "SetChargingProfile",
                                  tx_profile(transaction_id + 100, 16.0, profile_id=2))
        assert refused == {"status": "Rejected"}

        # Clearing the profile lets the EV charge at full power again.
        cleared = await site.call("CP_01", "ClearChargingProfile", {"id": 1})
        assert cleared == {"status": "Accepted"}
        await eventually(lambda: evse_status(site, "CP_01", 1) == "Charging", within=60)
        assert cp.evse(1).power_w == pytest.approx(22_000)
        assert len(cp.profiles_received[1]) == 2


async def test_remote_stop_stops_the_session_with_reason_remote(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    async with virtual_site(tmp_path, virtual_clock) as site:
        [cp] = await site.fleet.spawn(1, evses=1)
        await online(cp)
        transaction_id = await charging(site, cp)
        await trio.sleep(600)
        unknown = await site.call("CP_01", "RemoteStopTransaction",
                                  {"transactionId": transaction_id + 1})
        assert unknown == {"status": "Rejected"}
        answer = await site.call("CP_01", "RemoteStopTransaction",
                                 {"transactionId": transaction_id})
        assert answer == {"status": "Accepted"}
        state = site.running_csms.state
        await eventually(lambda: not state.sessions[transaction_id].open, within=60)
        session = site.running_csms.state.sessions[transaction_id]
        assert session.stop_reason == "Remote"
        assert session.energy_wh > 0
        [record] = cp.sessions
        assert record.stop_reason == "Remote"
        assert record.energy_wh == session.energy_wh
        await eventually(lambda: evse_status(site, "CP_01", 1) == "Finishing", within=60)
        assert cp.evse(1).transaction is None


async def test_change_availability(tmp_path: Path, virtual_clock: trio.testing.MockClock
                                   ) -> None:
    async with virtual_site(tmp_path, virtual_clock) as site:
        [cp] = await site.fleet.spawn(1, evses=2)
        await online(cp)
        transaction_id = await charging(site, cp)

        idle = await site.call("CP_01", "ChangeAvailability",
                               {"connectorId": 2, "type": "Inoperative"})
        assert idle == {"status": "Accepted"}
        await eventually(lambda: evse_status(site, "CP_01", 2) == "Unavailable", within=60)
        back = await site.call("CP_01", "ChangeAvailability",
                               {"connectorId": 2, "type": "Operative"})
        assert back == {"status": "Accepted"}
        await eventually(lambda: evse_status(site, "CP_01", 2) == "Available", within=60)

        busy = await site.call("CP_01", "ChangeAvailability",
                               {"connectorId": 1, "type": "Inoperative"})
        assert busy == {"status": "Scheduled"}
        await trio.sleep(120)
        assert evse_status(site, "CP_01", 1) == "Charging"  # not while the session runs
        await cp.unplug(1)
        await eventually(lambda: evse_status(site, "CP_01", 1) == "Unavailable", within=60)
        assert not site.running_csms.state.sessions[transaction_id].open

        nowhere = await site.call("CP_01", "ChangeAvailability",
                                  {"connectorId": 9, "type": "Inoperative"})
        assert nowhere == {"status": "Rejected"}


async def test_trigger_message(tmp_path: Path, virtual_clock: trio.testing.MockClock) -> None:
    async with virtual_site(tmp_path, virtual_clock) as site:
        [cp] = await site.fleet.spawn(1, evses=2)
        await online(cp)
        transaction_id = await charging(site, cp)
        await trio.sleep(90)  # half-way between meter ticks

        before = len(await site.samples())
        answer = await site.call("CP_01", "TriggerMessage",
                                 {"requestedMessage": "MeterValues", "connectorId": 1})
        assert answer == {"status": "Accepted"}
        await trio.sleep(1)
        triggered = (await site.samples())[before:]
        assert triggered
        assert {row.sample.context for row in triggered} == {"Trigger"}
        assert {row.transaction_id for row in triggered} == {transaction_id}

        triggered_at = site.now()
        requested = ["StatusNotification", "Heartbeat", "BootNotification"]
        for message in requested:
            answer = await site.call("CP_01", "TriggerMessage", {"requestedMessage": message})
            assert answer == {"status": "Accepted"}, message
        await trio.sleep(1)
        with site.hold():
            log = await site.running_csms.store.read_log("CP_01")
        frames = [json.loads(row.frame) for row in log
                  if row.direction == "in" and row.at >= triggered_at]
        sent = [frame[2] for frame in frames if frame[0] == 2]
        assert set(requested) <= set(sent)
        assert sent.count("StatusNotification") >= 3  # connector 0 and both EVSEs
        # The simulator answers every 1.6 trigger now, DiagnosticsStatusNotification too.
        diagnostics = await site.call("CP_01", "TriggerMessage",
                                      {"requestedMessage": "DiagnosticsStatusNotification"})
        assert diagnostics["status"] == "Accepted"
        nowhere = await site.call("CP_01", "TriggerMessage",
                                  {"requestedMessage": "StatusNotification", "connectorId": 9})
        assert nowhere == {"status": "Rejected"}
        await trio.sleep(1)
        assert cp.online


async def test_soft_reset_stops_the_transaction_and_reboots(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    async with virtual_site(tmp_path, virtual_clock) as site:
        [cp] = await site.fleet.spawn(1, evses=1)
        await online(cp)
        transaction_id = await charging(site, cp)
        await trio.sleep(300)
        booted = site.running_csms.state.chargers["CP_01"].booted_at
        answer = await site.call("CP_01", "Reset", {"type": "Soft"})
        assert answer == {"status": "Accepted"}
        state = site.running_csms.state
        await eventually(lambda: cp.connects == 2 and cp.online and cp.queued == 0)
        session = state.sessions[transaction_id]
        assert not session.open
        assert session.stop_reason == "SoftReset"
        assert cp.sessions[0].stop_reason == "SoftReset"
        assert state.chargers["CP_01"].booted_at != booted


async def test_get_and_change_configuration(tmp_path: Path,
                                            virtual_clock: trio.testing.MockClock) -> None:
    async with virtual_site(tmp_path, virtual_clock) as site:
        [cp] = await site.fleet.spawn(1, evses=2)
        await online(cp)
        answer = await site.call("CP_01", "GetConfiguration",
                                 {"key": ["NumberOfConnectors", "Nope", "HeartbeatInterval"]})
        assert answer["configurationKey"] == [
            {"key": "NumberOfConnectors", "readonly": True, "value": "2"},
            {"key": "HeartbeatInterval", "readonly": False,
             "value": str(CONFIG.heartbeat_interval)},
        ]
        assert answer["unknownKey"] == ["Nope"]
        everything = await site.call("CP_01", "GetConfiguration", {})
        assert "unknownKey" not in everything
        assert len(everything["configurationKey"]) > 10

        for key, value, status in [
            ("NumberOfConnectors", "4", "Rejected"),
            ("HeartbeatInterval", "soon", "Rejected"),
            ("Nope", "1", "NotSupported"),
            ("MeterValueSampleInterval", "30", "Accepted"),
        ]:
            answer = await site.call("CP_01", "ChangeConfiguration",
                                     {"key": key, "value": value})
            assert answer == {"status": status}, key
        assert cp.configuration.int_value("MeterValueSampleInterval", 0) == 30
        assert cp.configuration.int_value("NumberOfConnectors", 0) == 2

        # The new sample interval is what the charger meters at from then on.
        transaction_id = await charging(site, cp)
        await trio.sleep(600)
        await cp.unplug(1)
        await eventually(lambda: cp.queued == 0)
        times = sorted({stamp(row.sample.timestamp) for row in await site.samples()
                        if row.transaction_id == transaction_id
                        and row.sample.context == "Sample.Periodic"})
        assert len(times) >= 10
        steps = {b - a for a, b in itertools.pairwise(times[1:])}
        assert steps == {datetime.timedelta(seconds=30)}
