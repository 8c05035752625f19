"""The in-force budget end to end (issue #13, point 1): the real CSMS and simulated
chargers over real loopback WebSockets in virtual time, judged from the chargers' side.

Around every SetChargingProfile a charger handles, the test sums the limits really in
force at the chargers (the profiles each accepted, applied as a 1.6 charger does; no limit
at all counts as the EVSE's maximum) and asserts that no profile takes the sum above the
site limit, or further above it. Only a session starting can: it charges under the
charger's safety net (6 A) until the rebalance a moment later makes room for it, lowering
others first (see docs/smart-charging.md, "The in-force budget").
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from csms import inspect, replay
from csms.smart.site import SiteConfig
from fleet_helpers import VirtualSite, eventually, virtual_site
from sim.behaviour import IgnoreProfiles, MeteredOnly, SlowAnswers
from sim.charge_point import SimChargePoint
from sim.ev import Ev
from sim.metering import drawn_phases

smart_site = functools.partial(virtual_site, watchdog=24 * 3600, call_timeout=30.0)
W_PER_A = 3 * 230.0


def in_force_w(cp: SimChargePoint) -> float:
    """What the charger's sessions may draw now under the profiles it holds."""
    total = 0.0
    now = cp.now()
    for evse in cp.evses.values():
        tx = evse.transaction
        if tx is None:
            continue
        limit = cp.profiles.limit(evse.connector_id, now=now, transaction_start=tx.started_at,
                                  phases=drawn_phases(evse))
        total += evse.max_power_w if limit is None else min(limit, evse.max_power_w)
    return total


class InForceWatch:
    """Sums the limits in force at the chargers whenever one of them changes."""

    def __init__(self, chargers: list[SimChargePoint], limit_w: float) -> None:
        self.chargers = chargers
        self.limit_w = limit_w
        self.peak_w = 0.0
        self.checks = 0
        #: Each profile that took the sum above the limit: (before, after by charger).
        #: (Recorded, not asserted: an exception in a handler is the charger's CALLERROR.)
        self.violations: list[tuple[float, dict[str, float]]] = []
        for cp in chargers:
            handler = cp.router.get("SetChargingProfile")
            assert handler is not None
            cp.router.register("SetChargingProfile", functools.partial(self._set, handler))

    def total(self) -> float:
        return sum(in_force_w(cp) for cp in self.chargers)

    async def _set(self, handler: Any, request: Any) -> Any:
        before = self.total()
        answer = await handler(request)
        after = self.total()
        self.checks += 1
        self.peak_w = max(self.peak_w, after)
        if after > max(self.limit_w, before) + 1e-6:
            self.violations.append((before, {cp.id: in_force_w(cp) for cp in self.chargers}))
        return answer

    async def start(self, cp: SimChargePoint, connector_id: int, tag: str) -> None:
        await cp.plug_in(connector_id, Ev(capacity_wh=90_000, soc=10.0, max_power_w=22_000))
        assert await cp.start_session(connector_id, tag)


async def settled(s: VirtualSite, chargers: list[SimChargePoint]) -> None:
    await eventually(lambda: all(cp.online and cp.queued == 0 for cp in chargers))
    await trio.sleep(5)


async def watched_charging(s: VirtualSite, count: int, limit_w: float, tags: list[str]
                           ) -> tuple[list[SimChargePoint], InForceWatch]:
    """``count`` chargers of one EVSE, watched against ``limit_w``; the first ones start a
    session each, with ``tags``, and settle."""
    chargers = await s.fleet.spawn(count, evses=1)
    await settled(s, chargers)
    watch = InForceWatch(chargers, limit_w)
    for cp, tag in zip(chargers, tags, strict=False):
        await watch.start(cp, 1, tag)
    await settled(s, chargers)
    return chargers, watch


async def test_a_charger_offline_counts_at_the_limit_it_holds(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    site = SiteConfig(limit_kw=22.0)
    async with smart_site(tmp_path, virtual_clock, site=site) as s:
        chargers, watch = await watched_charging(s, 3, 22_000.0, ["TAG-1", "TAG-2"])
        cp1, cp2, cp3 = chargers
        # 11,000 W each: 15.9 A (11,000 / 690 = 15.94, rounded down).
        assert cp1.evse(1).limit_w == pytest.approx(15.9 * W_PER_A)

        # CP_01's network fails for 10 minutes; it goes on charging at 15.9 A. CP_03 starts
        # meanwhile: the CSMS cannot lower CP_01, so CP_02 and CP_03 share what is left:
        # (22,000 - 10,971) / 2 = 5,514 W (7.9 A) each, not 22,000 / 3.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cp1.go_offline, 600.0)
            await trio.sleep(30)
            await watch.start(cp3, 1, "TAG-3")
            await trio.sleep(60)
            smart = s.running_csms.smart
            assert smart is not None
            # It counts at what it enforces: 15.9 A, 10,971 W.
            assert smart.bounds[("CP_01", 1)] == pytest.approx(15.9 * W_PER_A)
            assert cp1.evse(1).limit_w == pytest.approx(15.9 * W_PER_A)
            assert cp2.evse(1).limit_w == pytest.approx(7.9 * W_PER_A)
            assert cp3.evse(1).limit_w == pytest.approx(7.9 * W_PER_A)
        # Back online: CP_01 confirms its decrease to 22,000 / 3 = 7,333 W before the
        # others get theirs (10.6 A each in the end).
        await settled(s, chargers)
        for cp in chargers:
            assert cp.evse(1).limit_w == pytest.approx(10.6 * W_PER_A)
        assert watch.checks > 8
        assert watch.violations == []
        assert watch.total() <= 22_000.0


async def test_decreases_are_confirmed_before_the_increases_go_out(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    site = SiteConfig(limit_kw=40.0)
    async with smart_site(tmp_path, virtual_clock, site=site) as s:
        chargers, watch = await watched_charging(s, 2, 40_000.0, ["TAG-SLOW"])
        slow, other = chargers
        assert slow.evse(1).limit_w == pytest.approx(31.8 * W_PER_A)  # 22 kW, its maximum
        # The slow charger takes 20 s to apply and answer each profile. When the second
        # session starts, both are to get 20,000 W: the slow one's decrease goes out at
        # once (forced by the site limit: 10 % below its share, 18,000 W, 26.0 A, so the
        # next arrival finds room), the other's increase (from its 6 A safety net) only
        # once the decrease is confirmed; until then 22,000 + 20,000 W would be in force.
        slow.behaviour = SlowAnswers(20.0, frozenset({"SetChargingProfile"}))
        await watch.start(other, 1, "TAG-OTHER")
        await trio.sleep(10)
        smart = s.running_csms.smart
        assert smart is not None
        assert smart.held == {("CP_02", 1): 20_000.0}
        assert other.evse(1).limit_w == pytest.approx(6.0 * W_PER_A)
        await trio.sleep(30)
        assert slow.evse(1).limit_w == pytest.approx(26.0 * W_PER_A)
        assert other.evse(1).limit_w == pytest.approx(28.9 * W_PER_A)
        assert smart.held == {}
        assert watch.violations == []
        assert watch.peak_w <= 40_000.0  # no start pushed it over: 22,000 + 4,140 fit


async def test_a_session_its_charger_lost_in_a_reboot_is_closed_and_its_share_goes_back(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    site = SiteConfig(limit_kw=22.0)
    async with smart_site(tmp_path, virtual_clock, site=site) as s:
        chargers, watch = await watched_charging(s, 2, 22_000.0, ["TAG-1", "TAG-2"])
        forgetful, other = chargers
        state = s.running_csms.state
        lost = state.open_sessions[("CP_01", 1)]
        assert other.evse(1).limit_w == pytest.approx(15.9 * W_PER_A)  # 11,000 W each
        # CP_01 reboots and forgets its transaction: no StopTransaction will ever come; it
        # reports its connector Available. The CSMS closes the session as Orphaned, keeps
        # the evidence, and gives its share to CP_02 (22,000 W, 31.8 A).
        await forgetful.reboot(lose_transactions=True)
        await settled(s, chargers)
        session = state.sessions[lost]
        assert (session.open, session.stop_reason) == (False, "Orphaned")
        [anomaly] = [a for a in state.anomalies if a.kind == "orphaned"]
        assert anomaly.transaction_id == lost
        assert "reported Available" in anomaly.detail
        assert "after a BootNotification" in anomaly.detail
        assert other.evse(1).limit_w == pytest.approx(31.8 * W_PER_A)
        assert watch.violations == []
        log = await s.log()
    # The message log alone rebuilds the same: the closing came from an OCPP message.
    rebuilt = replay.rebuild(log).state
    assert rebuilt.sessions[lost] == session
    assert [a for a in rebuilt.anomalies if a.kind == "orphaned"] == [anomaly]


async def test_an_energy_only_charger_whose_ev_is_full_gives_its_headroom_back(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    site = SiteConfig(limit_kw=22.0)
    async with smart_site(tmp_path, virtual_clock, site=site) as s:
        chargers = await s.fleet.spawn(2, evses=1)
        energy_only, other = chargers
        # Its meter reports the energy register only: no Power.Active.Import at all.
        energy_only.behaviour = MeteredOnly(frozenset({"Energy.Active.Import.Register"}))
        await settled(s, chargers)
        await energy_only.plug_in(1, Ev(capacity_wh=20_000, soc=96.0, max_power_w=22_000,
                                        taper_from_soc=99.0))
        assert await energy_only.start_session(1, "TAG-FULL")
        await other.plug_in(1, Ev(capacity_wh=90_000, soc=10.0, max_power_w=22_000))
        assert await other.start_session(1, "TAG-OTHER")
        await settled(s, chargers)
        assert other.evse(1).limit_w == pytest.approx(15.9 * W_PER_A)  # 11,000 W each
        # Its EV fills up within minutes. The CSMS derives its power from the register
        # (0 W once full), caps it at its 6 A floor, and gives CP_02 the rest:
        # 22,000 - 4,140 = 17,860 W, 25.8 A.
        await eventually(lambda: energy_only.evse(1).ev is not None
                         and energy_only.evse(1).ev.full)  # type: ignore[union-attr]
        await trio.sleep(3 * 60)
        tx = s.running_csms.state.open_sessions[("CP_01", 1)]
        session = s.running_csms.state.sessions[tx]
        assert session.power_from_energy and session.power_w == 0.0
        assert other.evse(1).limit_w == pytest.approx(25.8 * W_PER_A)


async def test_a_charger_that_ignores_its_profile_is_counted_at_what_it_draws(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    site = SiteConfig(limit_kw=30.0)
    async with smart_site(tmp_path, virtual_clock, site=site) as s:
        chargers = await s.fleet.spawn(2, evses=1)
        unruly, other = chargers
        unruly.behaviour = IgnoreProfiles()  # accepts every profile, enforces none
        await settled(s, chargers)
        for i, cp in enumerate(chargers):
            await cp.plug_in(1, Ev(capacity_wh=90_000, soc=10.0, max_power_w=22_000))
            assert await cp.start_session(1, f"TAG-{i}")
        await settled(s, chargers)
        # 15,000 W each (21.7 A), as far as the profiles go; CP_01 draws its 22 kW anyway.
        assert other.evse(1).limit_w == pytest.approx(21.7 * W_PER_A)
        assert unruly.evse(1).power_w == 22_000.0
        # From its first reading, though its charger may still be applying its profile,
        # it draws clearly more than that and than the safety net: it counts at its draw
        # at once, and CP_02 is lowered to fit before its own next reading.
        await trio.sleep(60)
        assert other.evse(1).limit_w <= 11.5 * W_PER_A
        assert unruly.evse(1).power_w + other.evse(1).power_w <= 30_000.0
        # Two readings past the minute it may take to apply its profile show it drawing
        # clearly more than it accepted: it is non-compliant, counts at its 22 kW, and
        # CP_02 gets the rest, 8,000 W (11.5 A), at the next tick.
        await trio.sleep(3 * 60)
        state = s.running_csms.state
        tx = state.open_sessions[("CP_01", 1)]
        assert state.sessions[tx].non_compliant
        [anomaly] = [a for a in state.anomalies if a.kind == "non_compliant"]
        assert anomaly.transaction_id == tx and "21.7 A" in anomaly.detail
        assert other.evse(1).limit_w == pytest.approx(11.5 * W_PER_A)
        assert unruly.evse(1).power_w + other.evse(1).power_w <= 30_000.0
        # The operator sees it.
        [evse] = [e for e in inspect.render_json(state)["evses"] if e["charger_id"] == "CP_01"]
        assert evse["allocation"]["non_compliant"] is True
        assert "non-compliant" in inspect.render_text(state)
        # It was sent its limit again once before being counted at its draw.
        log = await s.log()
        sent = [row for row in log if row.charger_id == "CP_01" and row.direction == "out"
                and '"SetChargingProfile"' in row.frame and '"TxProfile"' in row.frame]
        assert len(sent) == 2


async def test_a_full_ev_gives_its_floor_back_until_it_draws_again(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    site = SiteConfig(limit_kw=22.0)  # idle_release_s: 600
    async with smart_site(tmp_path, virtual_clock, site=site) as s:
        chargers = await s.fleet.spawn(2, evses=1)
        full, other = chargers
        await settled(s, chargers)
        await full.plug_in(1, Ev(capacity_wh=20_000, soc=96.0, max_power_w=22_000,
                                 taper_from_soc=99.0))
        assert await full.start_session(1, "TAG-FULL")
        await other.plug_in(1, Ev(capacity_wh=90_000, soc=10.0, max_power_w=22_000))
        assert await other.start_session(1, "TAG-OTHER")
        def ev() -> Ev:
            car = full.evse(1).ev
            assert car is not None
            return car

        await eventually(lambda: ev().full, within=3600)
        # Full: the guard band brings it down to its 6 A floor, CP_02 gets 25.8 A ...
        await trio.sleep(3 * 60)
        assert full.evse(1).limit_w == pytest.approx(6.0 * W_PER_A)
        assert other.evse(1).limit_w == pytest.approx(25.8 * W_PER_A)
        # ... and after ten minutes of drawing nothing, the floor too: 22 kW, 31.8 A.
        await trio.sleep(10 * 60)
        assert other.evse(1).limit_w == pytest.approx(31.8 * W_PER_A)
        assert full.evse(1).limit_w == pytest.approx(6.0 * W_PER_A)  # its limit stays
        # It draws again (the driver turned the heating on): from its next reading it
        # counts again, and as it draws all of its floor, the guard band lets it ramp up:
        # 11,000 W each (15.9 A) two minutes later, CP_02's decrease confirmed first.
        full.evse(1).ev = attrs.evolve(ev(), soc=90.0)
        await trio.sleep(2 * 60)
        assert full.evse(1).power_w > 0
        assert other.evse(1).limit_w == pytest.approx(15.9 * W_PER_A)
        assert full.evse(1).limit_w == pytest.approx(15.9 * W_PER_A)


async def test_a_restarted_csms_budgets_by_the_limits_its_chargers_accepted(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    site = SiteConfig(limit_kw=22.0)
    async with smart_site(tmp_path, virtual_clock, site=site) as s:
        chargers, watch = await watched_charging(s, 3, 22_000.0, ["TAG-1", "TAG-2"])
        cp1, _, cp3 = chargers
        assert cp1.evse(1).limit_w == pytest.approx(15.9 * W_PER_A)
        sent_before = len(tx_profiles(await s.log()))

        # The CSMS restarts; the chargers go on at 15.9 A and come back.
        await s.stop_csms()
        await trio.sleep(60)
        await s.start_csms()
        await settled(s, chargers)
        smart = s.running_csms.smart
        assert smart is not None
        # It counts them at what they accepted before the restart (10,971 W each, as the
        # recorded answers say), not at their 22 kW maximum, and sends them nothing new.
        assert smart.bounds == {("CP_01", 1): pytest.approx(15.9 * W_PER_A),
                                ("CP_02", 1): pytest.approx(15.9 * W_PER_A)}
        assert len(tx_profiles(await s.log())) == sent_before
        # A third session: the others are lowered first, 10.6 A each in the end.
        await watch.start(cp3, 1, "TAG-3")
        await settled(s, chargers)
        assert [cp.evse(1).limit_w for cp in chargers] == [pytest.approx(10.6 * W_PER_A)] * 3
        assert watch.checks and not watch.violations
        # Replay rebuilds the same limits in force.
        rebuilt = replay.rebuild(await s.log()).state
        for tx, session in s.running_csms.state.sessions.items():
            assert rebuilt.sessions[tx].limit == session.limit


def tx_profiles(log: list[Any]) -> list[Any]:
    return [row for row in log if row.direction == "out" and '"SetChargingProfile"' in row.frame
            and '"TxProfile"' in row.frame]


async def test_a_restarted_csms_counts_an_increase_that_was_never_answered(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    site = SiteConfig(limit_kw=22.0)
    async with smart_site(tmp_path, virtual_clock, site=site) as s:
        chargers, watch = await watched_charging(s, 3, 22_000.0, ["TAG-1", "TAG-2"])
        cp1, cp2, cp3 = chargers
        # CP_01 stops answering SetChargingProfile; CP_02's session ends, so CP_01 is sent
        # 31.8 A (22 kW): no answer within the 30 s call timeout.
        cp1.behaviour = SlowAnswers(math.inf, frozenset({"SetChargingProfile"}))
        await cp2.stop_session(1)
        await trio.sleep(60)
        tx = s.running_csms.state.open_sessions[("CP_01", 1)]
        uncertain = s.running_csms.state.sessions[tx].uncertain
        assert uncertain is not None and uncertain.limit == 31.8

        # After a restart the CSMS still counts it: CP_01 may be enforcing 31.8 A
        # (21,942 W). CP_03 starts; CP_01's safety net and share (11 kW) go out and are
        # not answered either (30 s each), so CP_03 gets what is left: not even its
        # floor, it is paused.
        await s.stop_csms()
        await s.start_csms()
        await eventually(lambda: all(cp.online for cp in chargers))
        await watch.start(cp3, 1, "TAG-3")
        await trio.sleep(90)
        smart = s.running_csms.smart
        assert smart is not None
        assert smart.bounds[("CP_01", 1)] == pytest.approx(31.8 * W_PER_A)
        assert cp3.evse(1).limit_w == 0.0
        assert not watch.violations
        # The operator sees it.
        state = s.running_csms.state
        assert "15.9 A (Accepted), 31.8 A unanswered" in inspect.render_text(state)
        [evse] = [e for e in inspect.render_json(state)["evses"] if e["charger_id"] == "CP_01"]
        assert evse["allocation"]["unanswered_w"] == pytest.approx(31.8 * W_PER_A)
        rebuilt = replay.rebuild(await s.log()).state
        assert rebuilt.sessions[tx].uncertain == s.running_csms.state.sessions[tx].uncertain
