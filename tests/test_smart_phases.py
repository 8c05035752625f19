"""Limits per phase (issue #13, point 5), end to end: the real CSMS and simulated chargers
over real loopback WebSockets in virtual time, judged by the current each grid phase
carries under the profiles the chargers accepted, as a 1.6 charger applies them.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from csms.smart.site import GRID_PHASES, ChargerRating, SiteConfig
from fleet_helpers import VirtualSite, eventually, virtual_site
from sim.charge_point import SimChargePoint
from sim.config import ChargerTemplate
from sim.ev import Ev
from sim.metering import drawn_phases

smart_site = functools.partial(virtual_site, watchdog=24 * 3600, call_timeout=30.0)


def amps_in_force(cp: SimChargePoint) -> float:
    """The current per phase EVSE_1's EV may draw under the profiles the charger holds."""
    evse = cp.evse(1)
    tx = evse.transaction
    assert tx is not None
    drawn = drawn_phases(evse)
    limit = cp.profiles.limit(1, now=cp.now(), transaction_start=tx.started_at, phases=drawn)
    watts = evse.max_power_w if limit is None else min(limit, evse.max_power_w)
    return watts / (230.0 * drawn)


def phase_loads(site: SiteConfig, chargers: list[SimChargePoint]) -> dict[str, float]:
    """The current in force on each grid phase, by the chargers' wiring."""
    loads = dict.fromkeys(GRID_PHASES, 0.0)
    for cp in chargers:
        offset = GRID_PHASES.index(site.charger(cp.id).grid_phase)
        for n in range(drawn_phases(cp.evse(1))):
            loads[GRID_PHASES[(offset + n) % 3]] += amps_in_force(cp)
    return loads


class PhaseWatch:
    """The current in force on each grid phase, around every SetChargingProfile a charger
    handles: each that takes a phase above its limit (or further above it) is kept."""

    def __init__(self, site: SiteConfig, chargers: list[SimChargePoint], limit_a: float) -> None:
        self.site, self.chargers, self.limit_a = site, chargers, limit_a
        self.checks = 0
        self.violations: list[dict[str, float]] = []
        for cp in chargers:
            handler = cp.router.get("SetChargingProfile")
            assert handler is not None
            cp.router.register("SetChargingProfile", functools.partial(self._set, handler))

    def loads(self) -> dict[str, float]:
        return phase_loads(self.site, [cp for cp in self.chargers if cp.evse(1).transaction])

    async def _set(self, handler: Any, request: Any) -> Any:
        before = self.loads()
        answer = await handler(request)
        after = self.loads()
        self.checks += 1
        if any(after[p] > max(self.limit_a, before[p]) + 1e-9 for p in GRID_PHASES):
            self.violations.append(after)
        return answer


async def charging(s: VirtualSite, site: SiteConfig, template: ChargerTemplate, ev: Ev,
                   count: int) -> tuple[list[SimChargePoint], PhaseWatch]:
    """``count`` chargers of ``template``, each charging ``ev`` on EVSE_1, watched."""
    s.fleet.config = attrs.evolve(s.fleet.config, chargers={"t": template})
    chargers = await s.fleet.spawn(count, evses=1, template="t")
    await eventually(lambda: all(cp.online and cp.queued == 0 for cp in chargers))
    assert site.limit_a_per_phase is not None
    watch = PhaseWatch(site, chargers, site.limit_a_per_phase)
    for i, cp in enumerate(chargers):
        await cp.plug_in(1, ev)
        assert await cp.start_session(1, f"TAG-{i}")
    return chargers, watch


WALLBOX = ChargerTemplate(max_power_kw=7.4, phases=1, evses=1)
ONE_PHASE_EV = Ev(capacity_wh=60_000, soc=10.0, max_power_w=7_400, phases=1)


@pytest.mark.parametrize(("wiring", "each_a"), [
    # All on the grid's L1: they share its 32 A, 10.6 A each (32 / 3 = 10.67, rounded
    # down). Counted as a three-phase total (22,080 W) each got 32 A: 96 A on L1.
    ({}, 10.6),
    # On L1, L2 and L3: 32 A each.
    ({f"CP_0{i}": ChargerRating(max_power_kw=7.4, phases=1, grid_phase=f"L{i}")
      for i in (1, 2, 3)}, 32.0),
])
async def test_single_phase_wallboxes_share_the_phase_they_are_wired_to(
    tmp_path: Path, virtual_clock: trio.testing.MockClock,
    wiring: dict[str, ChargerRating], each_a: float,
) -> None:
    site = SiteConfig(limit_a_per_phase=32.0, chargers=wiring,
                      default_charger=ChargerRating(max_power_kw=7.4, phases=1))
    async with smart_site(tmp_path, virtual_clock, site=site) as s:
        chargers, watch = await charging(s, site, WALLBOX, ONE_PHASE_EV, 3)
        await trio.sleep(5 * 60)
        assert [amps_in_force(cp) for cp in chargers] == [pytest.approx(each_a)] * 3
        assert all(load <= 32.0 + 1e-9 for load in phase_loads(site, chargers).values())
        # At no instant did a profile take a phase above its 32 A.
        assert watch.checks and not watch.violations


async def test_a_single_phase_ev_on_a_three_phase_charger_counts_on_its_phase(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    # 16 A per phase; CP_02's L1 is wired to the grid's L2.
    site = SiteConfig(limit_a_per_phase=16.0,
                      chargers={"CP_02": ChargerRating(grid_phase="L2")})
    async with smart_site(tmp_path, virtual_clock, site=site) as s:
        chargers, watch = await charging(s, site, ChargerTemplate(evses=1), ONE_PHASE_EV, 2)
        # Until their MeterValues show it, each counts on three phases: 8 A each.
        await trio.sleep(2)
        assert [amps_in_force(cp) for cp in chargers] == [pytest.approx(8.0)] * 2
        # Measured drawing on their L1 only: CP_01 on the grid's L1, CP_02 on L2. Each
        # gets the 16 A of its phase (and is not held at what it draws as if on three).
        await trio.sleep(10 * 60)
        assert [amps_in_force(cp) for cp in chargers] == [pytest.approx(16.0)] * 2
        assert [cp.evse(1).power_w for cp in chargers] == [pytest.approx(16 * 230.0)] * 2
        loads = phase_loads(site, chargers)
        assert loads == {"L1": pytest.approx(16.0), "L2": pytest.approx(16.0), "L3": 0.0}
        assert watch.checks and not watch.violations
