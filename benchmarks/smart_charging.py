"""Smart charging: how long the allocator and one rebalancing tick take.

1. **The allocator** (``csms.smart.allocator.allocate``, pure) for ``--evses`` EVSEs
   (default 10,000): a realistic mix (four in five three-phase 22 kW, one in five
   single-phase 7.4 kW; a quarter of the sessions tapering, i.e. measured well below the
   limit they were given; 1 % uncontrolled; chargers in ``--groups`` feeder groups of
   equal size, each limited to 80 % of its share of the site) under three site limits:

   * ``unsaturated``: the site limit is above the total demand (everyone gets its cap);
   * ``saturated``: the site limit is 40 % of the demand; every 6 A floor still fits;
   * ``floor-bound``: the site limit is below the sum of the floors, so sessions are
     admitted greedily in the rotating order and the rest are paused.

   Each case is timed ``--runs`` times; the median and the worst are printed, against the
   50 ms target.

2. **The tick** (``SmartCharging.rebalance()``: read the open sessions from the domain
   state, allocate, apply the deadband, build the TxProfiles that changed and hand them to
   the chargers' senders) with ``--chargers`` chargers (default 1,000) x 2 EVSEs, every
   EVSE with an open session. The domain state is **built directly** (no WebSockets, no
   database): what is timed is the CSMS's own work per tick, which is synchronous and
   runs on the trio thread; sending the profiles happens afterwards on each charger's
   sender task and is what ``benchmarks/rpc_throughput.py`` measures. Two figures:

   * ``first``: nothing sent yet, so every EVSE gets a profile built;
   * ``steady``: every profile was accepted and the allocation did not move beyond the
     deadband, so nothing is built (the usual tick).

Run: ``.venv/bin/python benchmarks/smart_charging.py`` (a few seconds). Always exits 0.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from csms.domain.model import Evse, Session
from csms.domain.state import DomainState
from csms.smart.allocator import Demand, allocate
from csms.smart.service import SmartCharging
from csms.smart.site import ChargerRating, Group, SiteConfig

TARGET_MS = 50.0
THREE_PHASE_MIN = 6 * 3 * 230.0
ONE_PHASE_MIN = 6 * 230.0


def demands(n: int, groups: int, rng: random.Random) -> tuple[list[Demand], dict[str, float]]:
    """``n`` EVSEs on n/2 chargers, and each group's limit (80 % of its members' demand)."""
    result = []
    group_demand: dict[str, float] = {}
    chargers = max(n // 2, 1)
    for i in range(n):
        charger = i // 2
        three_phase = rng.random() < 0.8
        max_w = 22_000.0 if three_phase else 7400.0
        group = f"G{charger * groups // chargers:03d}" if groups else None
        previous = measured = None
        if rng.random() < 0.25:  # tapering: draws well below what it was given
            previous = max_w / 2
            measured = previous * rng.uniform(0.2, 0.6)
        result.append(Demand(
            key=(f"CP_{charger:05d}", i % 2 + 1), max_w=max_w,
            min_w=THREE_PHASE_MIN if three_phase else ONE_PHASE_MIN,
            arrival=rng.uniform(0, 3600), group=group, measured_w=measured,
            previous_w=previous, controlled=rng.random() >= 0.01,
        ))
        if group is not None:
            group_demand[group] = group_demand.get(group, 0.0) + max_w
    return result, {g: 0.8 * w for g, w in group_demand.items()}


def timed(fn: Callable[[], Any], runs: int) -> list[float]:
    """Wall time of ``fn()`` in ms, ``runs`` times (garbage collection off while timing)."""
    times = []
    for _ in range(runs):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1000)
        finally:
            gc.enable()
    return times


def row(name: str, times: list[float], note: str = "") -> str:
    median = statistics.median(times)
    verdict = "ok" if median < TARGET_MS else "ABOVE TARGET"
    return (f"  {name:<12} median {median:8.2f} ms   worst {max(times):8.2f} ms   "
            f"({len(times)} runs, target < {TARGET_MS:.0f} ms: {verdict}){note}")


def bench_allocator(n: int, groups: int, runs: int, rng: random.Random) -> None:
    ds, group_limits = demands(n, groups, rng)
    demand = sum(d.max_w for d in ds)
    floors = sum(d.min_w for d in ds if d.controlled)
    print(f"allocate(): {n:,} EVSEs, {groups} groups, demand {demand / 1e6:.1f} MW, "
          f"floors {floors / 1e6:.2f} MW")
    cases = [
        ("unsaturated", demand * 1.1, {}),
        ("saturated", demand * 0.4, group_limits),
        ("floor-bound", floors * 0.7, group_limits),
    ]
    for name, site, limits in cases:
        result = allocate(ds, site, limits, tick=3)
        paused = sum(1 for w in result.values() if w == 0)
        times = timed(lambda site=site, limits=limits: allocate(ds, site, limits, tick=3), runs)
        print(row(name, times, f"   site {site / 1e6:.2f} MW, {paused:,} paused"))


def smart_charging(chargers: int, groups: int, rng: random.Random) -> SmartCharging:
    """A SmartCharging over a domain state with ``chargers`` x 2 open sessions."""
    at = datetime.datetime(2026, 1, 5, 7, 0, tzinfo=datetime.UTC)
    state = DomainState()
    tx = 0
    ids = [f"CP_{i:05d}" for i in range(chargers)]
    for charger in ids:
        for connector in (1, 2):
            tx += 1
            state.evses[(charger, connector)] = Evse(charger, connector, "Charging")
            state.sessions[tx] = Session(
                transaction_id=tx, charger_id=charger, connector_id=connector,
                id_tag=f"TAG{tx}", auth_status="Accepted", meter_start=0,
                start_timestamp="2026-01-05T06:00:00Z",
                started_at=at - datetime.timedelta(seconds=rng.uniform(0, 3600)),
                power_w=rng.choice([4140.0, 7000.0, 11_000.0, 22_000.0]), samples=10,
            )
            state.open_sessions[(charger, connector)] = tx
    size = -(-chargers // groups) if groups else 0
    site = SiteConfig(
        limit_kw=chargers * 2 * 11.0 * 0.5,  # half of what 11 kW each would need
        chargers={charger: ChargerRating(max_power_kw=22.0) for charger in ids[::10]},
        groups={f"G{g:03d}": Group(chargers=tuple(ids[g * size:(g + 1) * size]),
                                   limit_kw=size * 2 * 11.0 * 0.4)
                for g in range(groups)},
    )
    # The tick reads the domain state only; nothing is sent, so no store, no connections.
    recorder: Any = SimpleNamespace(state=state)
    connections: Any = SimpleNamespace(add_connection_task=lambda task: None)
    return SmartCharging(site, recorder, connections, lambda: at, call_timeout=30.0)


def bench_tick(chargers: int, groups: int, runs: int, rng: random.Random) -> None:
    smart = smart_charging(chargers, groups, rng)
    print(f"SmartCharging.rebalance(): {chargers:,} chargers x 2 EVSEs = {2 * chargers:,} open "
          f"sessions, {groups} groups (domain state built directly, no sockets)")

    def first() -> None:
        smart.ledger.limits.clear()
        smart.rebalance()

    first_times = timed(first, runs)
    # Every profile accepted: the next ticks find nothing beyond the deadband to send.
    state = smart.state
    for key, watts in smart.allocation.items():
        tx = state.open_sessions[key]
        smart.ledger.accepted(key, tx, watts, state.sessions[tx].samples)
    senders = smart.senders.queues.values()  # what the tick handed to the (absent) senders
    for sender in senders:
        sender.wanted.clear()
    steady_times = timed(smart.rebalance, runs)
    queued = sum(len(sender.wanted) for sender in senders)
    print(row("first", first_times, f"   {len(smart.allocation):,} profiles built"))
    print(row("steady", steady_times, f"   {queued:,} profiles built"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--evses", type=int, default=10_000, help="allocator size")
    parser.add_argument("--chargers", type=int, default=1000, help="tick size (x 2 EVSEs)")
    parser.add_argument("--groups", type=int, default=10, help="feeder groups")
    parser.add_argument("--runs", type=int, default=9, help="timed runs per case")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(f"Python {sys.version.split()[0]} on {platform.machine()} "
          f"({platform.processor() or platform.platform()})")
    bench_allocator(args.evses, args.groups, args.runs, rng)
    bench_tick(args.chargers, args.groups, args.runs, rng)
    return 0


if __name__ == "__main__":
    sys.exit(main())
