"""The allocator (pure): golden cases checkable by hand, and properties (hypothesis).

Numbers used throughout: 230 V per phase, the 6 A floor (IEC 61851), so a three-phase
session's minimum is 6 A x 3 x 230 V = 4,140 W and a single-phase one's 6 A x 230 V =
1,380 W; EVSEs are rated 22 kW (3 x 32 A) unless a case says otherwise; the guard band is
the site default, 1.5 kW. Every expected value is a literal with the arithmetic beside it.
"""

from __future__ import annotations

import datetime
from collections import Counter
from types import SimpleNamespace
from typing import Any

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from csms.domain.model import Evse, Session
from csms.domain.state import DomainState
from csms.smart.allocator import Demand, EvseKey, allocate, water_level
from csms.smart.service import SmartCharging
from csms.smart.site import ChargerRating, EvseRating, Group, SiteConfig

THREE_PHASE_MIN = 4140.0  # 6 A x 3 phases x 230 V
ONE_PHASE_MIN = 1380.0  # 6 A x 1 phase x 230 V
GUARD = 1500.0


def ev(charger: str, connector: int = 1, *, max_kw: float = 22.0, phases: int = 3,
       **fields: Any) -> Demand:
    """A session on an EVSE rated ``max_kw`` with the 6 A floor of its phases."""
    return Demand(key=(charger, connector), max_w=max_kw * 1000, min_w=6 * phases * 230.0,
                  **fields)


def fleet(n: int, **fields: Any) -> list[Demand]:
    """``n`` identical three-phase 22 kW sessions, CP_01 … CP_nn, arriving in that order."""
    return [ev(f"CP_{i:02d}", arrival=float(i), **fields) for i in range(1, n + 1)]


# -- golden cases ---------------------------------------------------------------------------

GOLDEN: list[tuple[str, list[Demand], float | None, dict[str, float], dict[EvseKey, float]]] = [
    (
        "saturation: 20 EVs x 22 kW = 440 kW of demand against 100 kW",
        fleet(20),
        100_000.0,
        {},
        # Everyone fits its 4,140 W floor (20 x 4,140 = 82,800 <= 100,000), so the fill is
        # even: 100,000 / 20 = 5,000 W each.
        {(f"CP_{i:02d}", 1): 5000.0 for i in range(1, 21)},
    ),
    (
        "saturation: 4 EVs against 40 kW",
        fleet(4),
        40_000.0,
        {},
        {(f"CP_{i:02d}", 1): 10_000.0 for i in range(1, 5)},  # 40,000 / 4
    ),
    (
        "no site limit: everyone gets its EVSE's maximum",
        [*fleet(2), ev("CP_03", max_kw=7.4, phases=1)],
        None,
        {},
        {("CP_01", 1): 22_000.0, ("CP_02", 1): 22_000.0, ("CP_03", 1): 7400.0},
    ),
    (
        "tapering: CP_01 was given 11 kW but draws 3 kW",
        [
            ev("CP_01", measured_w=3000.0, previous_w=11_000.0),
            ev("CP_02", measured_w=11_000.0, previous_w=11_000.0),
            ev("CP_03"),
        ],
        33_000.0,
        {},
        {
            ("CP_01", 1): 4500.0,  # capped at measured + guard band: 3,000 + 1,500
            ("CP_02", 1): 14_250.0,  # the rest shared: (33,000 - 4,500) / 2
            ("CP_03", 1): 14_250.0,
        },
    ),
    (
        "tapering, next tick: held at 4.5 kW, still draws clearly less (3.5 kW)",
        [
            # 3,500 < 4,500 - 1,500 / 2 = 3,750: capped again, at 3,500 + 1,500 = 5,000.
            ev("CP_01", measured_w=3500.0, previous_w=4500.0),
            ev("CP_02", measured_w=14_250.0, previous_w=14_250.0),
            ev("CP_03"),
        ],
        33_000.0,
        {},
        {("CP_01", 1): 5000.0, ("CP_02", 1): 14_000.0, ("CP_03", 1): 14_000.0},  # 28,000 / 2
    ),
    (
        "tapering ends: held at 4.5 kW it draws 4 kW, within half a guard band: uncapped",
        [
            # 4,000 >= 3,750: no cap, so it may ramp back to an equal share.
            ev("CP_01", measured_w=4000.0, previous_w=4500.0),
            ev("CP_02", measured_w=14_250.0, previous_w=14_250.0),
            ev("CP_03"),
        ],
        33_000.0,
        {},
        {("CP_01", 1): 11_000.0, ("CP_02", 1): 11_000.0, ("CP_03", 1): 11_000.0},  # 33,000 / 3
    ),
    (
        "group: a 10 kW feeder holds CP_01 and CP_02, below their 10 kW share each",
        [
            ev("CP_01", group="feeder"),
            ev("CP_02", group="feeder"),
            ev("CP_03"),
            ev("CP_04"),
        ],
        40_000.0,
        {"feeder": 10_000.0},
        {
            ("CP_01", 1): 5000.0,  # 10,000 / 2
            ("CP_02", 1): 5000.0,
            ("CP_03", 1): 15_000.0,  # (40,000 - 10,000) / 2
            ("CP_04", 1): 15_000.0,
        },
    ),
    (
        "group with room to spare: its limit does not bind",
        [ev("CP_01", group="feeder"), ev("CP_02")],
        20_000.0,
        {"feeder": 15_000.0},
        {("CP_01", 1): 10_000.0, ("CP_02", 1): 10_000.0},  # 20,000 / 2 (< 15,000)
    ),
    (
        "mixed phases: the fill on top of the floors is equal, the floors are not",
        [ev("CP_01", max_kw=7.4, phases=1, arrival=1.0), ev("CP_02", arrival=2.0)],
        10_000.0,
        {},
        # floors 1,380 + 4,140 = 5,520; (10,000 - 5,520) / 2 = 2,240 on top of each.
        {("CP_01", 1): 3620.0, ("CP_02", 1): 6380.0},  # 1,380 + 2,240; 4,140 + 2,240
    ),
    (
        "mixed phases: the single-phase EVSE reaches its 7.4 kW maximum",
        [ev("CP_01", max_kw=7.4, phases=1, arrival=1.0), ev("CP_02", arrival=2.0)],
        20_000.0,
        {},
        {("CP_01", 1): 7400.0, ("CP_02", 1): 12_600.0},  # 20,000 - 7,400
    ),
    (
        "mixed phases: exactly both floors",
        [ev("CP_01", max_kw=7.4, phases=1, arrival=1.0), ev("CP_02", arrival=2.0)],
        5520.0,  # 1,380 + 4,140
        {},
        {("CP_01", 1): 1380.0, ("CP_02", 1): 4140.0},
    ),
    (
        "mixed phases: 5 kW fits one floor only; the first arrival (three-phase) wins tick 0",
        [ev("CP_01", arrival=1.0), ev("CP_02", max_kw=7.4, phases=1, arrival=2.0)],
        5000.0,
        {},
        # 4,140 + 1,380 = 5,520 > 5,000: CP_02 paused, CP_01 gets all 5,000.
        {("CP_01", 1): 5000.0, ("CP_02", 1): 0.0},
    ),
    (
        "uncontrolled: a charger that refused our profile counts at its 22 kW maximum",
        [ev("CP_01", controlled=False), ev("CP_02"), ev("CP_03")],
        50_000.0,
        {},
        {("CP_02", 1): 14_000.0, ("CP_03", 1): 14_000.0},  # (50,000 - 22,000) / 2
    ),
    (
        "uncontrolled inside a group: it comes off the group's budget too",
        [ev("CP_01", controlled=False, group="feeder"), ev("CP_02", group="feeder"),
         ev("CP_03")],
        100_000.0,
        {"feeder": 30_000.0},
        {("CP_02", 1): 8000.0, ("CP_03", 1): 22_000.0},  # 30,000 - 22,000; CP_03 at max
    ),
    (
        "uncontrolled load above the site limit: the controlled ones are paused",
        [ev("CP_01", controlled=False), ev("CP_02")],
        20_000.0,  # < 22,000 already taken
        {},
        {("CP_02", 1): 0.0},
    ),
    (
        "an EVSE rated below the 6 A floor (0 kW, 3 kW three-phase) gets 0 and takes nothing",
        [ev("CP_01", max_kw=0.0), ev("CP_02", max_kw=3.0), ev("CP_03")],
        10_000.0,
        {},
        {("CP_01", 1): 0.0, ("CP_02", 1): 0.0, ("CP_03", 1): 10_000.0},
    ),
]


@pytest.mark.parametrize(("name", "demands", "site", "groups", "expected"), GOLDEN,
                         ids=[case[0] for case in GOLDEN])
def test_golden(name: str, demands: list[Demand], site: float | None,
                groups: dict[str, float], expected: dict[EvseKey, float]) -> None:
    result = allocate(demands, site, groups, tick=0, guard_band_w=GUARD)
    assert result == pytest.approx(expected, abs=1e-6), name


def test_the_worked_example_of_docs_smart_charging() -> None:
    # docs/smart-charging.md, "A worked example": 50 kW site, a 15 kW garage feeder.
    demands = [
        ev("CP_01", 1, group="garage", arrival=1.0),
        ev("CP_01", 2, group="garage", arrival=2.0),
        ev("CP_02", max_kw=7.4, phases=1, measured_w=2000.0, previous_w=7400.0, arrival=3.0),
        ev("CP_03", controlled=False, arrival=4.0),
        ev("CP_04", arrival=5.0),
    ]
    assert allocate(demands, 50_000.0, {"garage": 15_000.0}) == pytest.approx({
        ("CP_01", 1): 7500.0,  # 15,000 / 2: the garage binds
        ("CP_01", 2): 7500.0,
        ("CP_02", 1): 3500.0,  # tapering: 2,000 + 1,500
        ("CP_04", 1): 9500.0,  # 50,000 - 22,000 - 15,000 - 3,500
    })


def test_the_6a_floor_rotates_who_is_paused() -> None:
    # Three three-phase EVs, 9 kW: two floors fit (2 x 4,140 = 8,280), three do not
    # (12,420). Two run at 4,140 + (9,000 - 8,280) / 2 = 4,500 W, one is paused (0, never
    # 1-5 A), and the paused one moves on every tick.
    demands = fleet(3)
    a, b, c = (("CP_01", 1), ("CP_02", 1), ("CP_03", 1))
    expected = [
        {a: 4500.0, b: 4500.0, c: 0.0},  # tick 0: arrival order a, b, c; c left out
        {a: 0.0, b: 4500.0, c: 4500.0},  # tick 1: order b, c, a
        {a: 4500.0, b: 0.0, c: 4500.0},  # tick 2: order c, a, b
        {a: 4500.0, b: 4500.0, c: 0.0},  # tick 3 = tick 0
    ]
    results = [allocate(demands, 9000.0, tick=tick) for tick in range(4)]
    assert results == expected
    paused = Counter(key for result in results[:3] for key, watts in result.items() if watts == 0)
    assert paused == {a: 1, b: 1, c: 1}  # every EV paused equally often over 3 ticks


def test_within_a_rotation_interval_the_pauses_hold_whatever_starts_or_stops() -> None:
    # Five three-phase EVs on 13 kW: three floors fit (12,420 W), two are paused.
    demands = fleet(6)
    first = allocate(demands[:5], 13_000.0, tick=4)
    paused = {k for k, w in first.items() if w == 0}
    assert len(paused) == 2
    # A sixth session starts in the same interval. Without memory the rotation (by the
    # number left out, now 3) would reshuffle who is paused; with it, the three running
    # keep running, the two paused stay paused, and the newcomer waits.
    fresh = allocate(demands, 13_000.0, tick=4)
    assert {k for k, w in fresh.items() if w == 0} - {demands[5].key} != paused
    held = allocate(demands, 13_000.0, tick=4, previous=first)
    assert {k for k, w in held.items() if w == 0} == paused | {demands[5].key}
    # A running session stops: its floor goes to one of the three paused (the first in
    # the rotated order); the two others that ran go on, nobody else moves.
    running = sorted(k for k, w in first.items() if w > 0)
    gone = [d for d in demands if d.key != running[0]]
    after = allocate(gone, 13_000.0, tick=4, previous=held)
    resumed = {k for k, w in after.items() if w > 0} - set(running)
    assert len(resumed) == 1 and resumed <= paused | {demands[5].key}
    assert {k for k, w in after.items() if w > 0} == set(running[1:]) | resumed


def test_rotation_ignores_the_order_of_the_input() -> None:
    demands = fleet(3)
    for tick in range(3):
        assert allocate(demands, 9000.0, tick=tick) == allocate(demands[::-1], 9000.0, tick=tick)


def test_raising_the_site_limit_can_lower_an_allocation_when_the_floor_binds() -> None:
    # The counterexample to an unconditional monotonicity property. At 12 kW only two
    # floors fit (3 x 4,140 = 12,420 > 12,000): CP_01 and CP_02 run, each at 4,140 +
    # (12,000 - 8,280) / 2 = 6,000 W, CP_03 is paused. At 12.42 kW all three floors fit
    # and nothing is left over: CP_01 drops from 6,000 W to 4,140 W.
    demands = fleet(3)
    low = allocate(demands, 12_000.0)
    high = allocate(demands, 12_420.0)
    assert low == {("CP_01", 1): 6000.0, ("CP_02", 1): 6000.0, ("CP_03", 1): 0.0}
    assert high == pytest.approx({key: 4140.0 for key in low})
    assert high[("CP_01", 1)] < low[("CP_01", 1)]


def test_water_level() -> None:
    assert water_level([1.0, 5.0, 5.0], 9.0) == 4.0  # 1 + 4 + 4
    assert water_level([1.0, 2.0], 10.0) == float("inf")  # everything fits
    assert water_level([3.0, 3.0], 0.0) == 0.0
    assert water_level([], 5.0) == float("inf")


# -- demands from the domain state: faults --------------------------------------------------

AT = datetime.datetime(2026, 1, 5, 6, 0, tzinfo=datetime.UTC)


def smart_charging(site: SiteConfig, sessions: list[tuple[EvseKey, str | None, float | None]]
                   ) -> tuple[SmartCharging, DomainState]:
    """A SmartCharging over a hand-built state: (key, EVSE status or None, measured W)."""
    state = DomainState()
    for tx, (key, status, power) in enumerate(sessions, start=1):
        if status is not None:
            state.evses[key] = Evse(key[0], key[1], status)
        state.sessions[tx] = Session(
            transaction_id=tx, charger_id=key[0], connector_id=key[1], id_tag=f"T{tx}",
            auth_status="Accepted", meter_start=0, start_timestamp="2026-01-05T06:00:00Z",
            started_at=AT + datetime.timedelta(seconds=tx), power_w=power,
        )
        state.open_sessions[key] = tx
    # demands() and rebalance() read the state only: no store, no connections needed.
    recorder: Any = SimpleNamespace(state=state)
    connections: Any = SimpleNamespace(add_connection_task=lambda task: None)
    smart = SmartCharging(site, recorder, connections, lambda: AT, call_timeout=30.0)
    return smart, state


def test_faulted_and_unavailable_evses_get_nothing_and_give_their_share_back() -> None:
    site = SiteConfig(limit_kw=30.0)
    smart, state = smart_charging(site, [
        (("CP_01", 1), "Charging", 10_000.0),
        (("CP_01", 2), "Faulted", 0.0),
        (("CP_02", 1), "Unavailable", None),
        (("CP_02", 2), "SuspendedEVSE", 0.0),
        (("CP_03", 1), None, None),  # no StatusNotification yet: counts
    ])
    keys = [d.key for d in smart.demands()]
    assert sorted(keys) == [("CP_01", 1), ("CP_02", 2), ("CP_03", 1)]
    assert smart.rebalance() == {("CP_01", 1): 10_000.0, ("CP_02", 2): 10_000.0,
                                 ("CP_03", 1): 10_000.0}  # 30,000 / 3
    # The fault clears: CP_01 EVSE_2 is back, and the 30 kW is shared four ways.
    state.evses[("CP_01", 2)] = Evse("CP_01", 2, "Charging")
    assert smart.rebalance() == pytest.approx(
        {("CP_01", 1): 7500.0, ("CP_01", 2): 7500.0, ("CP_02", 2): 7500.0, ("CP_03", 1): 7500.0}
    )


def test_demands_carry_the_site_model() -> None:
    site = SiteConfig(
        limit_kw=50.0,
        chargers={"CP_01": ChargerRating(max_power_kw=7.4, phases=1, unit="W",
                                         evses={2: EvseRating(max_power_kw=3.7)})},
        groups={"feeder": Group(chargers=("CP_02",), limit_kw=20.0)},
    )
    smart, _ = smart_charging(site, [
        (("CP_01", 1), "Charging", 7000.0),
        (("CP_01", 2), "Charging", 3000.0),
        (("CP_02", 1), "Charging", 11_000.0),
    ])
    smart.uncontrolled[("CP_02", 1)] = 3  # refused the profile for transaction 3
    by_key = {d.key: d for d in smart.demands()}
    assert by_key[("CP_01", 1)].max_w == 7400.0
    assert by_key[("CP_01", 1)].min_w == ONE_PHASE_MIN
    assert by_key[("CP_01", 2)].max_w == 3700.0  # the EVSE's own rating
    assert by_key[("CP_01", 2)].measured_w == 3000.0
    assert by_key[("CP_02", 1)].min_w == THREE_PHASE_MIN  # the default charger: 22 kW, 3 ph
    assert by_key[("CP_02", 1)].group == "feeder"
    assert by_key[("CP_02", 1)].controlled is False
    assert by_key[("CP_01", 1)].arrival < by_key[("CP_01", 2)].arrival  # started earlier
    # A new session on the same EVSE is controlled again (the refusal was for tx 3 only).
    smart.uncontrolled[("CP_02", 1)] = 2
    assert {d.key: d for d in smart.demands()}[("CP_02", 1)].controlled is True


# -- properties -----------------------------------------------------------------------------

CHARGERS = [f"CP_{i:02d}" for i in range(1, 9)]
GROUP_OF = {"CP_01": "g1", "CP_02": "g1", "CP_03": "g1", "CP_04": "g2", "CP_05": "g2"}
WATTS = st.floats(0, 50_000, allow_nan=False)
MAX_W = st.one_of(st.sampled_from([0.0, 3000.0, 3700.0, 7400.0, 11_000.0, 22_000.0]), WATTS)
SITE = st.one_of(st.none(), st.floats(0, 300_000, allow_nan=False))
GROUP_LIMITS = st.fixed_dictionaries(
    {}, optional={"g1": st.floats(0, 80_000), "g2": st.floats(0, 80_000)}
)


@st.composite
def demand_sets(draw: st.DrawFn, *, max_size: int = 16,
                controlled: st.SearchStrategy[bool] | None = None) -> list[Demand]:
    keys = draw(st.lists(st.tuples(st.sampled_from(CHARGERS), st.integers(1, 2)),
                         unique=True, max_size=max_size))
    result = []
    for key in keys:
        phases = draw(st.sampled_from([0, 1, 3]))  # 0: DC, no floor
        max_w = draw(MAX_W)
        result.append(Demand(
            key=key,
            max_w=max_w,
            min_w=6 * phases * 230.0,
            arrival=draw(st.integers(0, 5)),
            group=GROUP_OF.get(key[0]),
            measured_w=draw(st.none() | st.floats(0, max_w)),
            previous_w=draw(st.none() | st.floats(0, max_w)),
            controlled=draw(controlled if controlled is not None
                            else st.sampled_from([True, True, True, False])),
        ))
    return result


def _fixed(demands: list[Demand], group: str | None = None) -> float:
    """The uncontrolled load (at its maximum), site-wide or in one group."""
    return sum(d.max_w for d in demands
               if not d.controlled and (group is None or d.group == group))


def _floors_fit(demands: list[Demand], site: float | None, groups: dict[str, float]) -> bool:
    """Whether every controlled session that can charge gets its floor (nobody paused)."""
    live = [d for d in demands if d.controlled and d.min_w <= d.max_w]
    if site is not None and sum(d.min_w for d in live) > site - _fixed(demands):
        return False
    return all(sum(d.min_w for d in live if d.group == g) <= limit - _fixed(demands, g)
               for g, limit in groups.items())


TOLERANCE = 1e-6  # W, float rounding of sums


@given(demand_sets(), SITE, GROUP_LIMITS, st.integers(0, 50))
def test_the_site_and_every_group_limit_hold(
    demands: list[Demand], site: float | None, groups: dict[str, float], tick: int
) -> None:
    result = allocate(demands, site, groups, tick=tick)
    if site is not None:
        assert sum(result.values()) <= max(site - _fixed(demands), 0.0) + TOLERANCE
    for group, limit in groups.items():
        members = sum(w for key, w in result.items() if GROUP_OF.get(key[0]) == group)
        assert members <= max(limit - _fixed(demands, group), 0.0) + TOLERANCE


@given(demand_sets(), SITE, GROUP_LIMITS, st.integers(0, 50))
def test_every_allocation_is_0_or_between_the_floor_and_the_maximum(
    demands: list[Demand], site: float | None, groups: dict[str, float], tick: int
) -> None:
    result = allocate(demands, site, groups, tick=tick)
    assert set(result) == {d.key for d in demands if d.controlled}  # uncontrolled: no limit
    for d in demands:
        if d.controlled:
            watts = result[d.key]
            assert 0.0 <= watts <= d.max_w + TOLERANCE
            assert watts == 0.0 or watts >= d.min_w - TOLERANCE  # never 1-5 A


@given(demand_sets(controlled=st.just(True), max_size=10), st.integers(2, 6),
       st.sampled_from([None, "g1", "g2"]), st.sampled_from([1, 3]),
       st.sampled_from([7400.0, 22_000.0]), st.none() | st.floats(0, 7400),
       SITE, GROUP_LIMITS)
def test_equal_demands_get_equal_shares(
    others: list[Demand], copies: int, group: str | None, phases: int, max_w: float,
    measured: float | None, site: float | None, groups: dict[str, float],
) -> None:
    twins = [Demand(key=(f"EQ_{i}", 1), max_w=max_w, min_w=6 * phases * 230.0,
                    arrival=float(i), group=group, measured_w=measured, previous_w=max_w)
             for i in range(copies)]
    demands = others + twins
    assume(_floors_fit(demands, site, groups))
    result = allocate(demands, site, groups)
    shares = [result[twin.key] for twin in twins]
    assert max(shares) - min(shares) <= 1.0


@given(demand_sets(), st.floats(0, 300_000), st.floats(0, 100_000), GROUP_LIMITS,
       st.integers(0, 50))
def test_raising_the_site_limit_never_lowers_an_allocation_when_every_floor_fits(
    demands: list[Demand], low: float, raise_by: float, groups: dict[str, float], tick: int
) -> None:
    # Conditional: see test_raising_the_site_limit_can_lower_an_allocation_when_the_floor_binds.
    assume(_floors_fit(demands, low, groups))
    before = allocate(demands, low, groups, tick=tick)
    after = allocate(demands, low + raise_by, groups, tick=tick)
    for key, watts in before.items():
        assert after[key] >= watts - TOLERANCE, key


@given(st.data(), demand_sets(), SITE, GROUP_LIMITS, st.integers(0, 50))
def test_the_order_of_the_demands_does_not_matter(
    data: st.DataObject, demands: list[Demand], site: float | None, groups: dict[str, float],
    tick: int,
) -> None:
    shuffled = data.draw(st.permutations(demands))
    assert allocate(shuffled, site, groups, tick=tick) == allocate(demands, site, groups,
                                                                  tick=tick)


@given(st.integers(1, 10), st.data())
def test_over_n_ticks_every_session_is_paused_equally_often(n: int, data: st.DataObject) -> None:
    # n identical three-phase sessions, a budget for k floors (plus less than one more):
    # n - k are paused each tick, and over n ticks each one n - k times.
    k = data.draw(st.integers(0, n))
    spare = data.draw(st.floats(0, THREE_PHASE_MIN - 1))
    demands = fleet(n)
    results = [allocate(demands, k * THREE_PHASE_MIN + spare, tick=t) for t in range(n)]
    for result in results:
        assert sum(1 for w in result.values() if w == 0) == n - k
    paused = Counter(key for result in results for key, w in result.items() if w == 0)
    assert all(paused[d.key] == n - k for d in demands), paused


@given(demand_sets(controlled=st.just(True)), SITE, GROUP_LIMITS, st.integers(0, 50),
       st.data())
def test_who_ran_keeps_running_while_their_floors_fit(
    demands: list[Demand], site: float | None, groups: dict[str, float], tick: int,
    data: st.DataObject,
) -> None:
    previous = allocate(demands, site, groups, tick=tick)
    # Some sessions leave, some arrive; the limits stay.
    stay = [d for d in demands if data.draw(st.booleans())]
    arrivals = data.draw(demand_sets(controlled=st.just(True), max_size=4))
    now = stay + [d for d in arrivals if d.key not in {s.key for s in stay}]
    result = allocate(now, site, groups, tick=tick, previous=previous)
    ran = [d for d in stay if previous[d.key] > 0 and d.min_w <= d.max_w]
    budget = float("inf") if site is None else site
    if sum(d.min_w for d in ran) <= budget and all(
        sum(d.min_w for d in ran if d.group == g) <= limit for g, limit in groups.items()
    ):
        assert all(result[d.key] > 0 or d.min_w == 0 for d in ran)


# -- limits per phase (issue #13, point 5) -------------------------------------------------------


def phase_scopes(site: SiteConfig, demands: list[Demand], unit: str = "A",
                 drawn: dict[EvseKey, tuple[int, ...]] | None = None) -> list[Any]:
    """The site's current limit on each grid phase, weighted as the service weighs it."""
    (amps, _), = site.phase_limits_a()
    weights = {d.key: site.phase_weights(*d.key, unit, (drawn or {}).get(d.key))
               for d in demands}
    return [(amps, {k: w[phase] for k, w in weights.items() if phase in w})
            for phase in ("L1", "L2", "L3")]


def test_three_single_phase_wallboxes_on_one_phase_share_its_32_a() -> None:
    site = SiteConfig(limit_a_per_phase=32.0,
                      default_charger=ChargerRating(max_power_kw=7.4, phases=1))
    demands = [ev(f"CP_{i}", max_kw=7.4, phases=1, arrival=float(i)) for i in range(1, 4)]
    result = allocate(demands, None, phase_scopes=phase_scopes(site, demands))
    # 32 A on L1 for all three: 32 x 230 / 3 = 2,453.3 W (10.67 A) each. Counted as a
    # three-phase total (22,080 W) each got its 7,360 W: 96 A on L1.
    assert result == {d.key: pytest.approx(32 * 230 / 3) for d in demands}
    # Wired to L1, L2 and L3: 32 A each.
    wired = attrs.evolve(site, chargers={
        f"CP_{i}": ChargerRating(max_power_kw=7.4, phases=1, grid_phase=f"L{i}")
        for i in range(1, 4)})
    result = allocate(demands, None, phase_scopes=phase_scopes(wired, demands))
    assert result == {d.key: pytest.approx(32 * 230) for d in demands}


def test_a_single_phase_ev_counts_on_its_phase_by_the_chargers_wiring() -> None:
    site = SiteConfig(limit_a_per_phase=16.0,
                      chargers={"CP_2": ChargerRating(grid_phase="L2")})
    demands = [ev("CP_1", arrival=1.0), ev("CP_2", arrival=2.0)]
    # Not yet measured: both on three phases, 8 A each (8 x 690 = 5,520 W).
    result = allocate(demands, None, phase_scopes=phase_scopes(site, demands))
    assert result == {d.key: pytest.approx(8 * 690) for d in demands}
    # Measured on their L1 only: CP_1 on the grid's L1, CP_2 (rotated) on L2: 16 A each.
    drawn = {d.key: (1,) for d in demands}
    result = allocate(demands, None,
                      phase_scopes=phase_scopes(site, demands, drawn=drawn))
    assert result == {d.key: pytest.approx(16 * 690) for d in demands}
    # A limit in W is the total: one phase carries all of it.
    assert site.phase_weights("CP_2", 1, "W", (1,)) == {"L2": pytest.approx(1 / 230)}
    assert site.phase_weights("CP_2", 1, "A", None) == {
        "L2": pytest.approx(1 / 690), "L3": pytest.approx(1 / 690), "L1": pytest.approx(1 / 690)}


@given(demand_sets(), SITE, GROUP_LIMITS, st.integers(0, 50))
def test_progressive_filling_is_the_same_max_min_fair_allocation(
    demands: list[Demand], site: float | None, groups: dict[str, float], tick: int
) -> None:
    # A per-phase scope that never binds switches to progressive filling: same shares.
    everyone = {d.key: 1.0 for d in demands}
    plain = allocate(demands, site, groups, tick=tick)
    progressive = allocate(demands, site, groups, tick=tick, phase_scopes=[(1e12, everyone)])
    assert progressive == {k: pytest.approx(w, abs=1e-6) for k, w in plain.items()}


@given(demand_sets(), st.floats(0, 200), st.integers(0, 50), st.data())
def test_every_phase_limit_holds(
    demands: list[Demand], amps: float, tick: int, data: st.DataObject
) -> None:
    site = SiteConfig(limit_a_per_phase=amps, chargers={
        key[0]: ChargerRating(phases=data.draw(st.sampled_from([1, 3])),
                              grid_phase=data.draw(st.sampled_from(["L1", "L2", "L3"])))
        for key in {d.key for d in demands}})
    demands = [attrs.evolve(d, min_w=6 * site.rating(*d.key)[1] * 230.0) for d in demands]
    scopes = phase_scopes(site, demands)
    result = allocate(demands, None, tick=tick, phase_scopes=scopes)
    for limit, members in scopes:
        fixed = sum(members.get(d.key, 0.0) * d.fixed_load_w for d in demands if not d.controlled)
        load = sum(members.get(k, 0.0) * w for k, w in result.items())
        assert load <= max(limit - fixed, 0.0) + 1e-6
