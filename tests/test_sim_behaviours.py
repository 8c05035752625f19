"""Charger behaviours (sim.behaviour): the pure decision points, then each behaviour as the
CSMS sees it: the real CSMS with a site limit and simulated chargers over real loopback
WebSockets, in virtual time, read back from the CSMS's message log and stored MeterValues.
"""

from __future__ import annotations

import datetime
import functools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from csms import replay
from csms.api.app import Api
from csms.api.common import ApiError
from csms.smart.site import SiteConfig
from csms.storage.base import LogRow
from fleet_helpers import VirtualSite, eventually, virtual_site
from ocppj.charging import amps_to_watts, round_down_tenth
from ocppj.timestamps import parse_timestamp
from sim.behaviour import (
    IDEAL,
    Behaviour,
    BehaviourError,
    Behaviours,
    IgnoreProfiles,
    MeteredOnly,
    ObeyAfter,
    ObeyFraction,
    OnEvses,
    SlowAnswers,
    behaviour_from_spec,
    combined,
)
from sim.charge_point import SimChargePoint
from sim.config import ChargerTemplate
from sim.ev import Ev

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
EARLY = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
TICK = 60.0
SITE_LIMIT_KW = 11.0
#: One three-phase EVSE alone under an 11 kW site: 11,000 / 690 = 15.94 A, sent as 15.9 A.
ALLOCATED_W = amps_to_watts(round_down_tenth(11_000 / 690), 3)

smart_site = functools.partial(virtual_site, site=SiteConfig(limit_kw=SITE_LIMIT_KW))


# -- the decision points, pure ---------------------------------------------------------------


def test_the_ideal_charger_changes_nothing() -> None:
    sampled = [{"measurand": "Power.Active.Import", "value": "1.0"}]
    assert IDEAL.answer_delay("SetChargingProfile") == 0.0
    assert IDEAL.limit_in_force(1, 7_000.0, NOW) == 7_000.0
    assert IDEAL.limit_in_force(1, None, NOW) is None
    assert IDEAL.sampled_values(1, sampled) is sampled


def test_behaviours_fold_in_order() -> None:
    chain = Behaviours.of([ObeyFraction(2.0), ObeyFraction(0.25)])
    assert chain.limit_in_force(1, 8_000.0, NOW) == 4_000.0
    assert Behaviours.of([ObeyFraction(2.0), IgnoreProfiles()]).limit_in_force(
        1, 8_000.0, NOW
    ) is None
    # The slowest answer wins; an action nobody is slow on is answered at once.
    slow = Behaviours.of([SlowAnswers(5.0), SlowAnswers(math.inf, frozenset({"Reset"}))])
    assert slow.answer_delay("Reset") == math.inf
    assert slow.answer_delay("GetConfiguration") == 5.0
    assert Behaviours().answer_delay("Reset") == 0.0


def test_a_behaviour_from_its_description() -> None:
    assert behaviour_from_spec({"kind": "ignore-profiles"}) == IgnoreProfiles()
    assert behaviour_from_spec({"kind": "obey-fraction", "factor": 2}) == ObeyFraction(2.0)
    assert behaviour_from_spec({"kind": "slow-answers", "delay": "never"}) == SlowAnswers(
        math.inf)
    assert behaviour_from_spec(
        {"kind": "slow-answers", "delay": 45, "actions": "SetChargingProfile, Reset"}
    ) == SlowAnswers(45.0, frozenset({"SetChargingProfile", "Reset"}))
    assert behaviour_from_spec(
        {"kind": "metered-only", "measurands": ["Energy.Active.Import.Register"]}
    ) == MeteredOnly(frozenset({"Energy.Active.Import.Register"}))
    assert combined([]) is IDEAL
    assert combined([IDEAL, ObeyFraction(2.0)]) == ObeyFraction(2.0)


@pytest.mark.parametrize(("spec", "message"), [
    ("ignore-profiles", "a behaviour is a mapping with a kind"),
    ({"kind": "sulk"}, "unknown behaviour 'sulk'"),
    ({"kind": "obey-fraction"}, "obey-fraction: factor must be a number >= 0, got None"),
    ({"kind": "obey-fraction", "factor": True}, "factor must be a number"),
    ({"kind": "slow-answers", "delay": -1}, "delay must be a number >= 0 or 'never'"),
    ({"kind": "metered-only", "measurands": []}, "measurands must be a list of names"),
    ({"kind": "metered-only", "measurands": [1]}, "measurands must be a list of names"),
    ({"kind": "ignore-profiles", "factor": 2}, "unknown setting(s) factor"),
])
def test_a_bad_description_says_what_is_wrong(spec: Any, message: str) -> None:
    with pytest.raises(BehaviourError) as caught:
        behaviour_from_spec(spec)
    assert message in str(caught.value)


def test_a_behaviour_on_some_evses_only() -> None:
    on_two = OnEvses(ObeyFraction(2.0), frozenset({2}))
    assert on_two.limit_in_force(1, 1_000.0, NOW) == 1_000.0
    assert on_two.limit_in_force(2, 1_000.0, NOW) == 2_000.0
    sampled = [{"measurand": "Power.Active.Import"}, {"measurand": ENERGY}]
    energy_only = behaviour_from_spec(
        {"kind": "metered-only", "measurands": [ENERGY], "evses": [1]})
    assert energy_only.sampled_values(1, sampled) == [{"measurand": ENERGY}]
    assert energy_only.sampled_values(2, sampled) == sampled
    assert behaviour_from_spec({"kind": "ignore-profiles", "evses": 2}) == OnEvses(
        IgnoreProfiles(), frozenset({2}))
    for spec, message in [
        ({"kind": "slow-answers", "delay": 5, "evses": [1]}, "answers are the charger's"),
        ({"kind": "ignore-profiles", "evses": [0]}, "evses must be EVSE numbers"),
        ({"kind": "ignore-profiles", "evses": []}, "evses must be EVSE numbers"),
    ]:
        with pytest.raises(BehaviourError, match=message):
            behaviour_from_spec(spec)


def test_obey_after_keeps_the_old_limit_for_its_delay() -> None:
    slow = ObeyAfter(60.0)
    at = functools.partial(datetime.timedelta)
    assert slow.limit_in_force(1, None, NOW) is None  # no profile yet: none enforced
    assert slow.limit_in_force(1, 4_000.0, NOW + at(seconds=10)) is None
    assert slow.limit_in_force(1, 4_000.0, NOW + at(seconds=69)) is None
    assert slow.limit_in_force(1, 4_000.0, NOW + at(seconds=70)) == 4_000.0
    assert slow.limit_in_force(1, 11_000.0, NOW + at(seconds=80)) == 4_000.0
    assert slow.limit_in_force(2, 7_000.0, NOW + at(seconds=80)) == 7_000.0  # its own
    assert slow.limit_in_force(1, 11_000.0, NOW + at(seconds=140)) == 11_000.0
    assert behaviour_from_spec({"kind": "obey-after", "delay": 60}) == ObeyAfter(60.0)


def test_slow_answers_only_for_the_actions_named() -> None:
    slow = SlowAnswers(45.0, frozenset({"SetChargingProfile"}))
    assert slow.answer_delay("SetChargingProfile") == 45.0
    assert slow.answer_delay("GetConfiguration") == 0.0


def test_a_new_behaviour_is_one_class() -> None:
    class NoPower(Behaviour):
        def sampled_values(
            self, connector_id: int, sampled: list[dict[str, Any]]
        ) -> list[dict[str, Any]]:
            return [s for s in sampled if s.get("measurand") != "Power.Active.Import"]

    sampled = [{"measurand": "Power.Active.Import"}, {"measurand": "Current.Import"}]
    assert Behaviours.of([NoPower()]).sampled_values(1, sampled) == [
        {"measurand": "Current.Import"}
    ]


# -- as the CSMS sees it ------------------------------------------------------------------------


def frames(log: list[LogRow]) -> list[tuple[LogRow, list[Any]]]:
    """The frames in and out (not the summaries of our CALLs that never left)."""
    decoded = [(row, json.loads(row.frame)) for row in log if row.direction in ("in", "out")]
    return [(row, f) for row, f in decoded if isinstance(f, list)]


def tx_profile_calls(log: list[LogRow]) -> list[tuple[LogRow, list[Any]]]:
    """The CSMS's SetChargingProfile CALLs of TxProfiles (not the safety nets at boot)."""
    return [
        (row, f)
        for row, f in frames(log)
        if f[0] == 2
        and f[2] == "SetChargingProfile"
        and f[3]["csChargingProfiles"]["chargingProfilePurpose"] == "TxProfile"
    ]


async def charging_alone(s: VirtualSite, behaviour: Behaviour) -> SimChargePoint:
    """One single-EVSE charger with ``behaviour``, an EV charging at up to 22 kW."""
    (cp,) = await s.fleet.spawn(1, evses=1)
    # Online, and its safety nets installed (connector 0): what follows is the session's.
    await eventually(lambda: cp.online and len(cp.profiles_received[0]) == 2)
    cp.behaviour = behaviour
    await cp.plug_in(1, Ev(capacity_wh=90_000, soc=10.0, max_power_w=22_000))
    assert await cp.start_session(1, "TAG-1")
    return cp


async def last_power_seen(s: VirtualSite) -> tuple[datetime.datetime, float]:
    """The last Power.Active.Import the CSMS stored for CP_01's transaction, and when it
    was metered."""
    powers = [
        (parse_timestamp(row.sample.timestamp), row.sample.number)
        for row in await s.samples()
        if row.sample.measurand == "Power.Active.Import" and row.transaction_id is not None
    ]
    assert powers
    at, watts = powers[-1]
    assert at is not None and watts is not None
    return at, watts


def limit_in_force_at(cp: SimChargePoint, at: datetime.datetime) -> float:
    """The limit of the last profile ``cp`` accepted on EVSE_1 before ``at``, in W."""
    profiles = [p for received, p in cp.profiles_received[1] if received < at]
    schedule = profiles[-1]["chargingSchedule"]
    assert schedule["chargingRateUnit"] == "A"
    return amps_to_watts(schedule["chargingSchedulePeriod"][0]["limit"], 3)


@pytest.mark.parametrize(
    ("behaviour", "metered"),
    [
        (IDEAL, lambda limit_w: limit_w),
        (IgnoreProfiles(), lambda limit_w: 22_000.0),
        (ObeyFraction(1.5), lambda limit_w: 1.5 * limit_w),
        (ObeyFraction(0.8), lambda limit_w: 0.8 * limit_w),
    ],
    ids=["ideal", "ignore-profiles", "overshoot", "undershoot"],
)
async def test_profile_compliance_is_what_the_meter_values_show(
    tmp_path: Path,
    virtual_clock: trio.testing.MockClock,
    behaviour: Behaviour,
    metered: Callable[[float], float],
) -> None:
    async with smart_site(tmp_path, virtual_clock) as s:
        cp = await charging_alone(s, behaviour)
        # The profile goes out and is Accepted whatever the charger then does with it ...
        await eventually(lambda: bool(cp.profiles_received[1]))
        await trio.sleep(2 * TICK)
        log = frames(await s.log())
        sent = [f[1] for _, f in log if f[0] == 2 and f[2] == "SetChargingProfile"]
        answers = {f[1]: f[2] for _, f in log if f[0] == 3}
        assert sent and all(answers[uid] == {"status": "Accepted"} for uid in sent)
        # ... and the MeterValues the CSMS receives show what it really draws under the
        # limit in force when it metered. (The CSMS may lower the allocation of an EV that
        # draws less than it was given, never above what a lone EV gets.)
        at, watts = await last_power_seen(s)
        limit_w = limit_in_force_at(cp, at)
        assert limit_w <= ALLOCATED_W + 0.01
        assert watts == pytest.approx(metered(limit_w), abs=0.1)


async def test_a_charger_that_obeys_late_meters_the_old_limit_meanwhile(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    async with smart_site(tmp_path, virtual_clock) as s:
        cp = await charging_alone(s, ObeyAfter(180.0))
        await eventually(lambda: bool(cp.profiles_received[1]))
        got = cp.profiles_received[1][0][0]  # when the session's first TxProfile arrived
        await trio.sleep(6 * TICK)
        powers = [(parse_timestamp(row.sample.timestamp), row.sample.number)
                  for row in await s.samples()
                  if row.sample.measurand == "Power.Active.Import"
                  and row.transaction_id is not None]
        late = [w for t, w in powers if t is not None and got < t < got + datetime.timedelta(
            seconds=180)]
        obeyed = [(t, w) for t, w in powers if t is not None
                  and t > got + datetime.timedelta(seconds=240)]
        # Until its delay is up it draws under the safety net (6 A: 4,140 W), not the
        # profile; afterwards, what the profile it got 180 s before allows.
        assert late and all(w == pytest.approx(amps_to_watts(6.0, 3), abs=0.1) for w in late)
        assert obeyed
        at, watts = obeyed[-1]
        assert watts > amps_to_watts(6.0, 3) + 100
        assert watts == pytest.approx(
            limit_in_force_at(cp, at - datetime.timedelta(seconds=180)), abs=0.1)


async def test_a_behaviour_on_one_evse_leaves_the_other_ideal(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    async with smart_site(tmp_path, virtual_clock) as s:
        (cp,) = await s.fleet.spawn(1, evses=2)
        await eventually(lambda: cp.online and len(cp.profiles_received[0]) == 2)
        cp.behaviour = behaviour_from_spec({"kind": "ignore-profiles", "evses": [2]})
        for n in (1, 2):
            await cp.plug_in(n, Ev(capacity_wh=90_000, soc=10.0, max_power_w=22_000))
            assert await cp.start_session(n, f"TAG-{n}")
        await trio.sleep(5 * TICK)
        last: dict[int, float] = {}
        for row in await s.samples():
            if row.sample.measurand == "Power.Active.Import" and row.sample.number is not None:
                last[row.connector_id] = row.sample.number
        # EVSE 1 meters what its profile allows; EVSE 2 what its EV wants, 22 kW.
        assert last[1] <= SITE_LIMIT_KW * 1000
        assert last[1] == pytest.approx(limit_in_force_at_evse(cp, 1, s.now()), abs=0.1)
        assert last[2] == pytest.approx(22_000.0, abs=0.1)


def limit_in_force_at_evse(cp: SimChargePoint, connector: int, at: datetime.datetime) -> float:
    profiles = [p for received, p in cp.profiles_received[connector] if received < at]
    period = profiles[-1]["chargingSchedule"]["chargingSchedulePeriod"][0]
    return amps_to_watts(period["limit"], 3)


async def test_a_charger_takes_no_more_periods_than_it_says(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    async with virtual_site(tmp_path, virtual_clock) as s:
        s.fleet.config = attrs.evolve(s.fleet.config, chargers={
            "default": ChargerTemplate(evses=1, max_periods=2, max_stack_level=3)})
        (cp,) = await s.fleet.spawn(1)
        await eventually(lambda: cp.online)
        keys = await s.call("CP_01", "GetConfiguration", {"key": [
            "ChargingScheduleMaxPeriods", "ChargeProfileMaxStackLevel"]})
        assert {k["key"]: k["value"] for k in keys["configurationKey"]} == {
            "ChargingScheduleMaxPeriods": "2", "ChargeProfileMaxStackLevel": "3"}

        def profile(periods: int, stack_level: int) -> dict[str, Any]:
            return {"connectorId": 1, "csChargingProfiles": {
                "chargingProfileId": 5, "stackLevel": stack_level,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Relative",
                "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [
                    {"startPeriod": 600 * i, "limit": 16.0} for i in range(periods)]}}}

        for periods, level, status in [(2, 3, "Accepted"), (3, 0, "Rejected"),
                                       (1, 4, "Rejected")]:
            answer = await s.call("CP_01", "SetChargingProfile", profile(periods, level))
            assert answer == {"status": status}, (periods, level)


async def test_an_answer_later_than_the_csms_waits_arrives_after_it_gave_up(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    async with smart_site(tmp_path, virtual_clock, call_timeout=30.0) as s:
        cp = await charging_alone(s, SlowAnswers(45.0, frozenset({"SetChargingProfile"})))
        await eventually(lambda: bool(cp.profiles_received[1]))
        # Other CALLs are answered at once.
        called = trio.current_time()
        answer = await s.call("CP_01", "GetConfiguration", {"key": ["NumberOfConnectors"]})
        assert answer["configurationKey"][0]["value"] == "1"
        assert trio.current_time() == called
        log = await s.log()
        (out_row, out), *_ = tx_profile_calls(log)
        (answer_row,) = [row for row, f in frames(log) if f[0] == 3 and f[1] == out[1]]
        (abandoned,) = [row for row in log if row.direction == "abandoned"]
        assert json.loads(abandoned.frame)["uniqueId"] == out[1]
        assert (abandoned.at - out_row.at).total_seconds() == pytest.approx(30.0, abs=0.01)
        assert (answer_row.at - out_row.at).total_seconds() == pytest.approx(45.0, abs=0.01)
        # The CSMS honours it: the limit is in force for the domain, and the session is
        # controlled again before its retry (60 s after the timeout) is due.
        state = s.running_csms.state
        tx = state.open_sessions[("CP_01", 1)]
        limit = state.sessions[tx].limit
        sent = out[3]["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]
        assert limit is not None and limit.limit == sent["limit"] and limit.status == "Accepted"
        smart = s.running_csms.smart
        assert smart is not None and smart.uncontrolled == {}
        assert replay.rebuild(log).state.sessions[tx].limit == limit


async def test_a_charger_that_never_answers(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    async with smart_site(tmp_path, virtual_clock, call_timeout=30.0, stop_fleet=False) as s:
        await charging_alone(s, SlowAnswers(math.inf, frozenset({"SetChargingProfile"})))
        await trio.sleep(10 * TICK)
        log = await s.log()
        sent = [f[1] for _, f in tx_profile_calls(log)]
        answered = {f[1] for _, f in frames(log) if f[0] in (3, 4)}
        assert sent
        assert not set(sent) & answered
        abandoned = [json.loads(r.frame)["uniqueId"] for r in log if r.direction == "abandoned"]
        assert set(sent) <= set(abandoned)
        ours = {f[1]: f[2] for _, f in frames(log) if f[0] == 2}
        assert {ours[unique_id] for unique_id in abandoned} == {"SetChargingProfile"}
        # Three in a row unanswered: the CSMS dropped it (it reconnects).
        dropped = [json.loads(r.frame).get("reason") for r in log if r.direction == "disconnect"]
        assert "no answer to 3 CALLs in a row" in dropped
        await s.stop_csms()


async def test_an_unanswered_profile_holds_an_operator_command_no_longer_than_its_deadline(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    # Smart charging's SetChargingProfile waits in the same line as the operator's
    # commands, under the same rule: a command asked while the profile waits 30 s for an
    # answer gets its own deadline, not the profile's.
    async with smart_site(tmp_path, virtual_clock, call_timeout=30.0, stop_fleet=False) as s:
        await charging_alone(s, SlowAnswers(math.inf, frozenset({"SetChargingProfile"})))
        state = s.running_csms.state
        await eventually(lambda: any(
            state.sessions[tx].pending is not None for tx in state.open_sessions.values()))
        start = trio.current_time()
        with pytest.raises(ApiError) as refused:
            await Api(s.running_csms).exchange("CP_01", "GetConfiguration", {}, 5.0)
        assert trio.current_time() - start == pytest.approx(5.0, abs=0.01)
        assert (refused.value.status, refused.value.extra["reason"]) == (503, "deadline")
        log = await s.log()
        (given_up,) = [json.loads(r.frame) for r in log if r.direction == "abandoned"
                       and json.loads(r.frame)["action"] == "GetConfiguration"]
        assert (given_up["reason"], given_up["sent"]) == ("deadline", False)
        assert given_up["uniqueId"] not in {f[1] for _, f in frames(log) if f[0] == 2}
        await s.stop_csms()


# -- metering ----------------------------------------------------------------------------------

ENERGY = "Energy.Active.Import.Register"


async def periodic_measurands(s: VirtualSite, since: datetime.datetime) -> set[str]:
    """The measurands of the Sample.Periodic values the CSMS stored, metered after ``since``."""
    measurands = set()
    for row in await s.samples():
        at = parse_timestamp(row.sample.timestamp)
        if row.sample.context == "Sample.Periodic" and at is not None and at > since:
            measurands.add(row.sample.measurand)
    return measurands


@pytest.mark.parametrize("measures", [ENERGY, "Current.Import"],
                         ids=["energy-only", "current-only"])
async def test_a_meter_that_measures_one_thing_reports_only_that(
    tmp_path: Path, virtual_clock: trio.testing.MockClock, measures: str
) -> None:
    async with smart_site(tmp_path, virtual_clock) as s:
        await charging_alone(s, MeteredOnly(frozenset({measures})))
        await trio.sleep(3 * TICK)
        assert await periodic_measurands(s, EARLY) == {measures}
        if measures == "Current.Import":  # per phase, as a three-phase meter measures it
            phases = {row.sample.phase for row in await s.samples()
                      if row.sample.context == "Sample.Periodic"}
            assert phases == {"L1", "L2", "L3"}


async def test_the_csms_chooses_the_measurands_with_meter_values_sampled_data(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    async with smart_site(tmp_path, virtual_clock) as s:
        await charging_alone(s, IDEAL)
        await trio.sleep(2 * TICK)
        assert await periodic_measurands(s, EARLY) == {
            ENERGY, "Power.Active.Import", "Current.Import", "SoC"
        }
        answer = await s.call(
            "CP_01",
            "ChangeConfiguration",
            {"key": "MeterValuesSampledData", "value": f"{ENERGY},Power.Active.Import"},
        )
        assert answer == {"status": "Accepted"}
        changed = s.now()
        await trio.sleep(2 * TICK)
        assert await periodic_measurands(s, changed) == {ENERGY, "Power.Active.Import"}


# -- a clean close ----------------------------------------------------------------------------


async def test_a_stopping_charger_closes_its_websocket_with_a_handshake(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    async with virtual_site(tmp_path, virtual_clock) as s:
        chargers = await s.fleet.spawn(3, evses=1)
        await eventually(lambda: all(cp.online for cp in chargers))
        await s.fleet.stop()
        await eventually(lambda: not any(cp.online for cp in chargers))
        await trio.sleep(1)
        log = await s.log()
        reasons = [json.loads(r.frame)["reason"] for r in log if r.direction == "disconnect"]
        assert reasons == ["peer closed (1000 NORMAL_CLOSURE)"] * 3


# -- clock skew -------------------------------------------------------------------------------


async def test_a_charger_whose_clock_is_behind_stamps_its_messages_so_and_keeps_its_cap(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    site = SiteConfig(limit_kw=SITE_LIMIT_KW, safe_limit_a_per_phase=None)
    async with virtual_site(tmp_path, virtual_clock, site=site, stop_fleet=False) as s:
        late = ChargerTemplate(evses=1, clock_skew_s=-7200.0)
        s.fleet.config = attrs.evolve(s.fleet.config, chargers={"late": late})
        (cp,) = await s.fleet.spawn(1, template="late")
        await eventually(lambda: cp.online and len(cp.profiles_received[0]) == 1)
        # What the CSMS sees: timestamps two hours before it received them.
        log = await s.log()
        stamped = [
            (row.at, parse_timestamp(f[3]["timestamp"]))
            for row, f in frames(log)
            if f[0] == 2 and f[2] == "StatusNotification"
        ]
        assert stamped
        for received, sent in stamped:
            assert sent is not None
            assert (received - sent).total_seconds() == pytest.approx(7200.0, abs=1.0)
        # The ChargePointMaxProfile starts a day back: in force on its late clock at once.
        await s.stop_csms()
        await eventually(lambda: not cp.online)
        await cp.plug_in(1, Ev(capacity_wh=90_000, soc=10.0, max_power_w=22_000))
        assert await cp.start_session(1, "TAG-1")
        await trio.sleep(60)
        assert cp.evse(1).limit_w == pytest.approx(ALLOCATED_W)  # 11 kW, as 15.9 A
