"""Scale: 300 simulated chargers live through a generated day against one CSMS.

The CSMS (SQLite file, smart charging with a site limit) and the fleet of
:class:`~sim.charge_point.SimChargePoint` (half with one EVSE, half with two) run in one
trio process over real loopback WebSockets, in virtual time (a ``MockClock`` without
autojump, driven by :func:`sim.simulator_runner.drive_virtual_clock`, which never jumps
while the store has work on its thread). Hypothesis draws the day: the seed (arrivals,
stays, EVs), the site limit per EVSE, and how many EVSEs get a visit.

At the end: every arrival got a session and every transaction message was delivered;
transactionIds are unique; each closed session's energy is meterStop - meterStart and
matches what the charger metered; the state rebuilt from the message log equals the live
state and the stored projection; the allocation respects its limits; and the site power
the CSMS received in MeterValues never stayed above the limit for more than one tick.

Figures (2-core CI machine): see docs/fuzzing.md.
"""

from __future__ import annotations

import datetime
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csms.app import Csms
from csms.config import CsmsConfig
from csms.smart.site import SiteConfig
from fuzz_helpers import allocation_violations, session_violations, snapshot
from sim.charge_point import SimChargePoint
from sim.cli import _seed_scheduler
from sim.config import SimConfig
from sim.ev import Ev
from sim.report import site_power_seen
from sim.simulator_runner import VIRTUAL_EPOCH, Fleet, _wait_store_idle, drive_virtual_clock

CHARGERS = 300  # half with one EVSE, half with two: 450 EVSEs
HOURS = 6.0  # the day: arrivals in the first 3 h, everyone gone 10 min before the end
METER_INTERVAL = 600  # seconds of virtual time between MeterValues
HEARTBEAT = 3600


@attrs.frozen
class Day:
    seed: int
    limit_kw_per_evse: float
    visited: float  # share of EVSEs that get a visit


days = st.builds(Day, seed=st.integers(0, 2**32 - 1),
                 limit_kw_per_evse=st.sampled_from([4.0, 6.0, 11.0]),
                 visited=st.sampled_from([0.5, 0.8, 1.0]))


async def _visit(cp: SimChargePoint, connector: int, arrive: float, stay: float, tag: str,
                 ev: Ev, started: list[tuple[str, int]]) -> None:
    await trio.sleep(arrive)
    await cp.plug_in(connector, ev)
    if await cp.start_session(connector, tag):
        started.append((cp.id, connector))
    await trio.sleep(stay)
    await cp.unplug(connector)


async def live_through(day: Day, clock: trio.testing.MockClock) -> dict[str, Any]:
    """Run the day; returns what the checks need (see the module docstring)."""
    t0 = trio.current_time()

    def now() -> datetime.datetime:
        return VIRTUAL_EPOCH + datetime.timedelta(seconds=trio.current_time() - t0)

    rng = random.Random(day.seed)
    evses = CHARGERS // 2 + 2 * (CHARGERS - CHARGERS // 2)
    site = SiteConfig(limit_kw=day.limit_kw_per_evse * evses)
    config = attrs.evolve(SimConfig(), seed=day.seed, meter_interval=METER_INTERVAL,
                          heartbeat_interval=HEARTBEAT)
    out: dict[str, Any] = {"limit_w": site.limit_w}
    with tempfile.TemporaryDirectory(prefix="fuzz-scale-") as tmp:
        csms = Csms(CsmsConfig(port=0, db_path=str(Path(tmp) / "csms.db"), synchronous="OFF",
                               heartbeat_interval=HEARTBEAT, site=site), clock=now)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(csms.serve)
            nursery.start_soon(drive_virtual_clock, clock, lambda: _wait_store_idle(csms))
            async with trio.open_nursery() as fleet_nursery:
                fleet = Fleet(f"ws://127.0.0.1:{port}/ocpp", config, clock=now,
                              rng=random.Random(rng.random()), nursery=fleet_nursery)
                chargers = await fleet.spawn(CHARGERS // 2, evses=1)
                chargers += await fleet.spawn(CHARGERS - CHARGERS // 2, evses=2)
                slots = [(cp, n) for cp in chargers for n in cp.evses]
                slots = rng.sample(slots, k=round(len(slots) * day.visited))
                started: list[tuple[str, int]] = []
                mix = list(config.ev_mix)
                async with trio.open_nursery() as visits:
                    for i, (cp, connector) in enumerate(slots):
                        arrive = rng.uniform(0, 3 * 3600)
                        stay = min(rng.uniform(1800, 4 * 3600), HOURS * 3600 - arrive - 600)
                        spec = rng.choices(mix, weights=[e.weight for e in mix])[0]
                        ev = Ev(capacity_wh=spec.capacity_kwh * 1000,
                                soc=round(rng.uniform(spec.soc_min, spec.soc_max), 1),
                                max_power_w=spec.max_power_kw * 1000)
                        visits.start_soon(_visit, cp, connector, arrive, stay, f"T{i:05d}", ev,
                                          started)
                await trio.sleep(HOURS * 3600 - trio.current_time() + t0)
                out["allocation"] = allocation_violations(csms)
                await fleet.stop()
                fleet_nursery.cancel_scope.cancel()
            out["slots"] = len(slots)
            out["started"] = len(started)
            out["queued"] = {cp.id: cp.queued for cp in chargers if cp.queued}
            out["records"] = [r for cp in chargers for r in cp.sessions]
            snap = await snapshot(csms)
            out["snapshot"] = snap
            out["state"] = csms.state
            out["seen"] = site_power_seen(await csms.store.read_samples(), site.limit_w or 0)
            out["interval"] = site.rebalance_interval_s
            await csms.shutdown()
            nursery.cancel_scope.cancel()
    return out


@settings(max_examples=1 if settings.get_current_profile_name() != "fuzz" else 10,
          deadline=None, suppress_health_check=list(HealthCheck))
@given(day=days)
def test_300_chargers_live_through_a_day(day: Day) -> None:
    _seed_scheduler(day.seed)
    clock = trio.testing.MockClock()
    began = time.perf_counter()
    out = trio.run(live_through, day, clock, clock=clock)
    elapsed = time.perf_counter() - began
    print(f"{CHARGERS} chargers, {HOURS:g} h, {out['slots']} visits: {elapsed:.1f} s")

    assert out["started"] == out["slots"], "some arrivals got no session"
    assert not out["queued"], f"undelivered transaction messages: {out['queued']}"
    state = out["state"]
    records = out["records"]
    ids = [r.transaction_id for r in records]
    assert None not in ids
    assert len(set(ids)) == len(ids) == len(records) == out["slots"]
    assert set(ids) == set(state.sessions), "sessions without a StartTransaction, or lost"
    assert session_violations(state) == []
    for record in records:
        session = state.sessions[record.transaction_id]
        assert not session.open and session.meter_stop is not None, session
        assert session.energy_wh == session.meter_stop - session.meter_start
        # The charger's own count, rounded to whole Wh on the wire.
        assert abs(session.energy_wh - record.energy_wh) <= 1.0, (session, record)
        assert session.energy_wh > 0, session
    snap = out["snapshot"]
    assert snap.replay_diff == [], snap.replay_diff[:20]
    assert snap.live_diff == [], snap.live_diff[:20]
    assert out["allocation"] == []
    seen = out["seen"]
    assert seen["longest_over_limit_s"] <= out["interval"], seen
