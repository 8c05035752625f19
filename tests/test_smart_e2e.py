"""Smart charging end to end: the real CSMS (with a site limit) and simulated charge points
in one trio process, over real loopback WebSockets, in virtual time.

Virtual time is a ``MockClock`` without autojump, driven by
``sim.simulator_runner.drive_virtual_clock``: it jumps only when every task is blocked and
the CSMS's SQLite store has nothing on its thread (pytest-trio's ``autojump_clock`` would
jump in the middle of a commit). What the CSMS did is read back from its message log and
its stored MeterValues, as an operator would.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from ocpp.v16 import call_result
from ocpp.v16.enums import ChargingProfileStatus

from csms.cli import load_site
from csms.smart.profiles import PROFILE_ID_BASE, STACK_LEVEL
from csms.smart.site import SiteConfig
from csms.storage.base import LogRow
from fleet_helpers import VirtualSite, eventually, virtual_site
from ocppj.schemas import validate_request
from sim.behaviour import SlowAnswers
from sim.charge_point import SimChargePoint
from sim.ev import Ev
from sim.report import site_power_seen

#: A virtual-time watchdog per test (time jumps only while every task is blocked).
WATCHDOG = 24 * 3600
TICK = 60.0  # the site's rebalance interval (the default)
THREE_PHASE_W_PER_A = 3 * 230.0


#: A CSMS (given a site model by the test) and a fleet on one virtual clock.
smart_site = functools.partial(virtual_site, watchdog=WATCHDOG, call_timeout=30.0)


async def until_tick_plus(s: VirtualSite, seconds: float) -> None:
    """Sleep until ``seconds`` after the next rebalancing tick (ticks are on the minute)."""
    now = s.now().timestamp()
    await trio.sleep(math.floor(now / TICK) * TICK + TICK + seconds - now)


def frames(log: list[LogRow]) -> list[tuple[LogRow, list[Any]]]:
    """The OCPP frames of the log (not connect/disconnect rows), decoded."""
    return [(row, json.loads(row.frame)) for row in log if row.direction in ("in", "out")]


def profiles_sent(log: list[LogRow]) -> list[tuple[LogRow, dict[str, Any]]]:
    """Every TxProfile the CSMS sent (SetChargingProfile CALLs): (row, payload). The safety
    nets installed at boot are left out (``tests/test_smart_capabilities.py``)."""
    return [(row, frame[3]) for row, frame in frames(log)
            if row.direction == "out" and frame[0] == 2 and frame[2] == "SetChargingProfile"
            and frame[3]["csChargingProfiles"]["chargingProfilePurpose"] == "TxProfile"]


def first_limit(payload: dict[str, Any]) -> float:
    limit: float = payload["csChargingProfiles"]["chargingSchedule"][
        "chargingSchedulePeriod"][0]["limit"]
    return limit


def a_to_w(amps: float) -> float:
    return amps * THREE_PHASE_W_PER_A


# -- 30 EVs, 20 chargers, one site limit ---------------------------------------------------

SITE_LIMIT_KW = 100.0  # 30 x 22 kW = 660 kW of demand; even 30 x 4.14 kW floors do not fit


async def test_thirty_evs_on_twenty_chargers_share_the_site_limit(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    site = SiteConfig(limit_kw=SITE_LIMIT_KW)
    async with smart_site(tmp_path, virtual_clock, site=site) as s:
        chargers = await s.fleet.spawn(20, evses=2)
        await eventually(lambda: all(cp.online for cp in chargers))
        # 30 EVs: EVSE_1 of every charger, EVSE_2 of the first ten.
        slots = [(cp, 1) for cp in chargers] + [(cp, 2) for cp in chargers[:10]]
        for i, (cp, connector) in enumerate(slots):
            await cp.plug_in(connector, Ev(capacity_wh=90_000, soc=10.0, max_power_w=22_000))
            assert await cp.start_session(connector, f"TAG-{i:02d}")
        await eventually(lambda: all(cp.queued == 0 for cp in chargers))
        smart = s.running_csms.smart
        assert smart is not None

        # Saturated: 24 floors fit in 100 kW (24 x 4,140 = 99,360 W), so 6 EVs are paused
        # and 24 run at 100,000 / 24 = 4,166.7 W (6.0 A after rounding down).
        await until_tick_plus(s, 17)
        assert sorted(smart.allocation.values()) == pytest.approx([0.0] * 6
                                                                  + [100_000 / 24] * 24)
        paused = {key for key, watts in smart.allocation.items() if watts == 0}
        for key in paused:  # paused is 0 A, never 1-5 A: the EV stops drawing
            cp = s.fleet.get(key[0])
            assert cp.evse(key[1]).limit_w == 0.0
            assert cp.evse(key[1]).power_w == 0.0
        # The pauses hold over ticks, and rotate every rotation interval (15 min, on the
        # quarter hour): then 6 others are paused.
        await until_tick_plus(s, 17)
        assert {key for key, watts in smart.allocation.items() if watts == 0} == paused
        rotation = site.rotation_interval_s
        await trio.sleep(rotation - s.now().timestamp() % rotation + 17)
        rotated = {key for key, watts in smart.allocation.items() if watts == 0}
        assert len(rotated) == 6
        assert not rotated & paused

        # 15 EVs leave between two ticks; the 15 others get their share at once:
        # 100,000 / 15 = 6,666.7 W, 9.6 A on three phases (6,666.7 / 690 = 9.66, rounded down).
        tick = smart.tick
        leaving = slots[15:]
        staying = slots[:15]
        staying_keys = [(cp.id, connector) for cp, connector in staying]
        left_at = s.now()
        for cp, connector in leaving:
            await cp.unplug(connector)
        await trio.sleep(5)
        assert smart.tick == tick  # no tick happened: this was the session ends' doing
        assert smart.allocation == pytest.approx({key: 100_000 / 15 for key in staying_keys})
        for cp, connector in staying:
            assert cp.evse(connector).limit_w == pytest.approx(a_to_w(9.6)), cp.id
        log = await s.log()
        last_sent = {(row.charger_id, payload["connectorId"]): first_limit(payload)
                     for row, payload in profiles_sent(log) if row.at >= left_at}
        assert {(cp.id, connector): last_sent.get((cp.id, connector))
                for cp, connector in staying} == {key: 9.6 for key in staying_keys}

        await trio.sleep(5 * 60)
        for cp, connector in staying:
            await cp.unplug(connector)
        await eventually(lambda: all(cp.queued == 0 for cp in chargers))
        log = await s.log()
        samples = await s.samples()
        state = s.running_csms.state

    # What the CSMS received: the site limit holds, except for at most one tick.
    seen = site_power_seen(samples, site.limit_w or 0)
    assert seen["longest_over_limit_s"] <= TICK, seen
    assert 90 <= seen["peak_kw"] <= SITE_LIMIT_KW + 1, seen

    # Every profile sent is a schema-valid TxProfile of an open transaction on its connector.
    sent = profiles_sent(log)
    assert len(sent) >= 30
    sessions = state.sessions
    assert len(sessions) == 30
    for row, payload in sent:
        validate_request("SetChargingProfile", payload)
        profile = payload["csChargingProfiles"]
        schedule = profile["chargingSchedule"]
        assert profile["chargingProfilePurpose"] == "TxProfile"
        assert profile["chargingProfileId"] == PROFILE_ID_BASE + payload["connectorId"]
        assert profile["stackLevel"] == STACK_LEVEL
        assert schedule["chargingRateUnit"] == "A"
        [period] = schedule["chargingSchedulePeriod"]
        assert period["startPeriod"] == 0
        assert period["numberPhases"] == 3
        assert period["limit"] == 0 or 6.0 <= period["limit"] <= 31.8
        session = sessions[profile["transactionId"]]
        assert (session.charger_id, session.connector_id) == (row.charger_id,
                                                              payload["connectorId"])
        assert session.started_at <= row.at
        assert session.stopped_at is not None and row.at <= session.stopped_at

    # No profile repeats the limit its session got last, as the charger sees it (in its
    # unit, rounded): such a profile would change nothing at the charger.
    last: dict[int, float] = {}
    repeats = []
    for row, payload in sent:
        tx, limit = payload["csChargingProfiles"]["transactionId"], first_limit(payload)
        if last.get(tx) == limit:
            repeats.append((row.at, row.charger_id, tx, limit))
        last[tx] = limit
    assert repeats == []

    # A session's first profile follows the StartTransaction answer carrying its id.
    answered: dict[int, int] = {}
    for row, frame in frames(log):
        if row.direction == "out" and frame[0] == 3 and "transactionId" in frame[2]:
            answered.setdefault(frame[2]["transactionId"], row.seq)
    first_profile: dict[int, int] = {}
    for row, payload in sent:
        first_profile.setdefault(payload["csChargingProfiles"]["transactionId"], row.seq)
    assert set(first_profile) == set(answered) == set(sessions)
    for tx, seq in first_profile.items():
        assert answered[tx] < seq, tx


# -- chargers that do not take our profiles ---------------------------------------------------


def refuse_profiles(cp: SimChargePoint) -> None:
    """Make ``cp`` answer every SetChargingProfile with Rejected."""

    async def rejected(request: Any) -> Any:
        return call_result.SetChargingProfile(status=ChargingProfileStatus.rejected)

    cp.router.register("SetChargingProfile", rejected)


def ignore_profiles(cp: SimChargePoint) -> None:
    """Make ``cp`` never answer a SetChargingProfile (a charger that hangs)."""
    cp.behaviour = SlowAnswers(math.inf, frozenset({"SetChargingProfile"}))


async def test_a_charger_that_rejects_profiles_is_counted_at_its_maximum(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    site = SiteConfig(limit_kw=40.0)
    async with smart_site(tmp_path, virtual_clock, site=site, stop_fleet=False) as s:
        refuser, *others = await s.fleet.spawn(3, evses=1)
        refuse_profiles(refuser)
        await eventually(lambda: all(cp.online for cp in [refuser, *others]))
        await until_tick_plus(s, 10)
        for i, cp in enumerate([refuser, *others]):
            await cp.plug_in(1, Ev(capacity_wh=90_000, soc=10.0, max_power_w=22_000))
            assert await cp.start_session(1, f"TAG-{i}")
        await trio.sleep(5)
        smart = s.running_csms.smart
        assert smart is not None
        state = s.running_csms.state
        refused = ("CP_01", 1)
        # CP_01 said Rejected: its session is uncontrolled, its 22 kW maximum is fixed load,
        # and the other two share the rest: (40,000 - 22,000) / 2 = 9,000 W, 13.0 A each
        # (9,000 / 690 = 13.04, rounded down).
        assert smart.uncontrolled == {refused: state.open_sessions[refused]}
        assert smart.allocation == {("CP_02", 1): 9000.0, ("CP_03", 1): 9000.0}
        for cp in others:
            assert cp.evse(1).limit_w == pytest.approx(a_to_w(13.0))
        assert refuser.evse(1).limit_w is None  # no profile: it draws what the EV takes
        assert refuser.evse(1).power_w == 22_000.0
        assert state.profiles[refused].status == "Rejected"
        # Each attempt tries every form once (TxProfile in A and W, then a TxDefaultProfile
        # on the connector in A and W), and attempts back off: 60 s, then 120 s, then 240 s
        # (not one per tick, and not never again).
        await trio.sleep(7 * TICK)
        log = await s.log()
        tried = [
            (row.at, p["csChargingProfiles"]["chargingProfilePurpose"],
             p["csChargingProfiles"]["chargingSchedule"]["chargingRateUnit"])
            for row, frame in frames(log)
            if row.charger_id == "CP_01" and frame[0] == 2
            and frame[2] == "SetChargingProfile" and (p := frame[3])["connectorId"] == 1
        ]
        forms = [("TxProfile", "A"), ("TxProfile", "W"),
                 ("TxDefaultProfile", "A"), ("TxDefaultProfile", "W")]
        assert [t[1:] for t in tried] == forms * 4
        starts = [t[0] for t in tried[::4]]
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
        assert gaps == pytest.approx([60.0, 120.0, 240.0], abs=1.0)
        # The others never moved: while CP_01 was being tried again, the increases its
        # retry would have allowed were held back (its 22 kW stayed counted).
        assert smart.allocation == {("CP_02", 1): 9000.0, ("CP_03", 1): 9000.0}
        for cp in others:
            assert cp.evse(1).limit_w == pytest.approx(a_to_w(13.0))

        # The CSMS stops with the sessions open: the store keeps the allocation in force.
        await s.stop_csms()

    # `python -m csms status` reads it from the database file.
    done = await trio.run_process(
        [sys.executable, "-m", "csms", "status", "--db", str(s.db)], capture_stdout=True,
        capture_stderr=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode()
    evse_table = text.split("EVSEs (")[1].split("Open sessions")[0]
    header = evse_table.splitlines()[1]
    assert header.split()[-1] == "allocation"
    rows = {tuple(line.split()[:2]): line for line in evse_table.splitlines()[3:] if line}
    assert rows[("CP_01", "EVSE_1")].endswith("(Rejected)")
    assert rows[("CP_02", "EVSE_1")].endswith("13 A (Accepted)")
    assert rows[("CP_03", "EVSE_1")].endswith("13 A (Accepted)")
    done = await trio.run_process(
        [sys.executable, "-m", "csms", "status", "--db", str(s.db), "--json"],
        capture_stdout=True, check=True,
    )
    evses = {(e["charger_id"], e["evse"]): e for e in json.loads(done.stdout)["evses"]}
    assert evses[("CP_02", "EVSE_1")]["allocation"]["limit"] == 13.0
    assert evses[("CP_02", "EVSE_1")]["allocation"]["unit"] == "A"
    assert evses[("CP_01", "EVSE_1")]["allocation"]["status"] == "Rejected"


async def test_a_charger_that_does_not_answer_is_uncontrolled_and_the_others_adjust_at_once(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    site = SiteConfig(limit_kw=40.0)
    async with smart_site(tmp_path, virtual_clock, site=site, call_timeout=10.0) as s:
        silent, other = await s.fleet.spawn(2, evses=1)
        ignore_profiles(silent)
        await eventually(lambda: silent.online and other.online)
        await until_tick_plus(s, 5)
        await other.plug_in(1, Ev(capacity_wh=90_000, soc=10.0, max_power_w=22_000))
        assert await other.start_session(1, "TAG-OTHER")
        await silent.plug_in(1, Ev(capacity_wh=90_000, soc=10.0, max_power_w=22_000))
        assert await silent.start_session(1, "TAG-SILENT")
        smart = s.running_csms.smart
        assert smart is not None
        tick = smart.tick
        await trio.sleep(1)
        # Both sessions: 40,000 / 2 = 20,000 W each. But CP_01 does not answer: nothing
        # says it took even its safety net, so it may draw its 22 kW, and CP_02's increase
        # to 20,000 W would make 42 kW: it is held back, at its safety net's 6 A.
        assert smart.allocation == {("CP_01", 1): 20_000.0, ("CP_02", 1): 20_000.0}
        assert smart.held == {("CP_02", 1): 20_000.0}
        assert other.evse(1).limit_w == pytest.approx(a_to_w(6.0))
        # The call times out after 10 s: CP_01 is uncontrolled (22 kW of fixed load), and
        # CP_02 drops to 40,000 - 22,000 = 18,000 W (26.0 A) at once (one settle_s after
        # the timeout), not at the next tick.
        await trio.sleep(10 + 2 * site.settle_s)
        assert smart.tick == tick
        open_sessions = s.running_csms.state.open_sessions
        assert smart.uncontrolled == {("CP_01", 1): open_sessions[("CP_01", 1)]}
        assert smart.allocation == {("CP_02", 1): 18_000.0}
        assert other.evse(1).limit_w == pytest.approx(a_to_w(26.0))


# -- configuration ---------------------------------------------------------------------------


def test_the_example_configuration_of_the_docs_loads(tmp_path: Path) -> None:
    docs = Path(__file__).resolve().parents[1] / "docs" / "smart-charging.md"
    example = docs.read_text(encoding="utf-8").split("```yaml\n", 1)[1].split("```", 1)[0]
    config = tmp_path / "csms.yaml"
    config.write_text(example, encoding="utf-8")
    site = load_site(config, None)
    assert site.limit_w == 50_000.0
    assert site.group_limits_w() == {"garage": 15_000.0}
    assert site.group_of("CP_01") == "garage"
    # The default charger's unit is the one the charger reports (None: not configured).
    assert site.rating("CP_01", 2) == (22_000.0, 3, None)
    assert site.rating("CP_02", 1) == (7400.0, 1, "W")
    assert site.rating("CP_05", 2) == (11_000.0, 3, None)  # one EVSE of its own
    assert load_site(config, 80.0).limit_w == 80_000.0  # --site-limit-kw wins


def run_csms(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "csms", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=60, check=False)


def test_a_negative_site_limit_exits_2_naming_the_field(tmp_path: Path) -> None:
    done = run_csms("--site-limit-kw", "-1", cwd=tmp_path)
    assert done.returncode == 2
    assert "limit_kw must be >= 0, got -1.0" in done.stderr
    assert not (tmp_path / "csms.db").exists()  # it never started


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("site:\n  limit_kw: 100\n  groups:\n    feeder:\n      chargers: [CP_01]\n"
         "      limit_kw: -5\n",
         ["site.groups['feeder']", "limit_kw must be >= 0, got -5.0"]),
        ("site:\n  limit_kw: 100\n  chargers:\n    CP_01:\n      phases: 2\n",
         ["site.chargers['CP_01']", "phases must be 1 or 3, got 2"]),
        ("site:\n  limit_kw: 100\n  chargers:\n    CP_01:\n      max_power_kw: 22\n"
         "      bogus: 1\n",
         ["site.chargers['CP_01']", "bogus"]),
        ("site:\n  limit_kw: lots\n", ["site.limit_kw"]),
        ("site:\n  limit_kw: 100\n  limit_a_per_phase: 160\n",
         ["give limit_kw or limit_a_per_phase, not both"]),
        ("site:\n  groups:\n    a:\n      chargers: [CP_01]\n    b:\n      chargers: [CP_01]\n",
         ["site.groups.b.chargers: CP_01 is already in group a"]),
        ("site:\n  limit_kw: 100\n  charge_point_max_profile: \"no\"\n",
         ["site.charge_point_max_profile", "expected true or false, got 'no'"]),
        ("site:\n  limit_kw: 100\n  safe_limit_a_per_phase: .nan\n",
         ["site.safe_limit_a_per_phase", "expected a finite number"]),
        ("site:\n  limit_kw: 100\n  chargers:\n    CP_01:\n      max_stack_level: 1.5\n",
         ["site.chargers['CP_01'].max_stack_level", "expected an integer, got 1.5"]),
        ("site:\n  limit_kw: 100\n  groups:\n    feeder:\n      chargers: [CP_01]\n"
         "      limit_kw: 20\n      limit_a_per_phase: 32\n",
         ["site.groups.feeder: give limit_kw or limit_a_per_phase, not both"]),
        ("site:\n  limit_a_per_phase: 32\n  chargers:\n    CP_01:\n      grid_phase: L4\n",
         ["site.chargers['CP_01']", "grid_phase must be L1, L2 or L3, got 'L4'"]),
        ("site:\n  limit_kw: 100\n  deadband_ratio: 1.5\n",
         ["deadband_ratio must be >= 0 and < 1, got 1.5"]),
        ("site:\n  limit_kw: 100\n  meter_values_sampled_data: ' , '\n",
         ["meter_values_sampled_data must name at least one measurand"]),
    ],
    ids=["negative group limit", "phases", "unknown key", "not a number", "two site limits",
         "charger in two groups", "not a boolean", "not finite", "not an integer",
         "two group limits", "grid phase", "ratio", "no measurand"],
)
def test_a_bad_config_file_exits_2_naming_the_field(
    tmp_path: Path, yaml_text: str, expected: list[str]
) -> None:
    config = tmp_path / "csms.yaml"
    config.write_text(yaml_text, encoding="utf-8")
    done = run_csms("--config", str(config), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("python -m csms: ")
    assert str(config) in done.stderr
    for part in expected:
        assert part in done.stderr
