"""A saturated morning in which part of the fleet loses its network for half an hour.

A workplace morning (arrivals 06:00-10:00, stays of 2-6 hours) on a grid connection of
4 kW per EVSE, which the EVs saturate. At 08:30 a third of the chargers (one network
segment) drop off at once, without a closing handshake; at 09:00 the segment is back and
each charger reconnects with backoff and delivers what it queued, stamped when it
happened. They go on charging meanwhile, under the last limits they accepted.

Checks: the site power the CSMS received (once the queued MeterValues are in) never stays
above the limit for longer than one tick; every session is closed at the CSMS with the
energy the charger measured; nothing is recorded twice; every arrival got a session; no
transaction message is left undelivered.
"""

from __future__ import annotations

from sim.charge_point import SimChargePoint
from sim.simulator_runner import ScenarioContext

PARAMETERS = {"chargers": 24, "evses": 2, "hours": 7.0, "arrivals_per_evse": 1.0,
              "partitioned_share": 0.34, "partition_at_h": 3.5, "partition_minutes": 30.0,
              "site_limit_kw": None, "site_limit_kw_per_evse": 4.0}


async def _partition(ctx: ScenarioContext, segment: list[SimChargePoint]) -> None:
    p = ctx.params
    await ctx.sleep_until(p["partition_at_h"] * 3600)
    for cp in segment:
        await cp.go_offline(p["partition_minutes"] * 60)


async def scenario(ctx: ScenarioContext) -> None:
    p = ctx.params
    chargers = await ctx.fleet.spawn(p["chargers"], evses=p["evses"])
    ctx.check_records()
    segment = sorted(ctx.rng.sample(chargers, k=round(len(chargers) * p["partitioned_share"])),
                     key=lambda cp: cp.id)
    ctx.spawn_task(_partition, ctx, segment)
    ctx.note(f"offline for {p['partition_minutes']:g} min from {p['partition_at_h']:g} h in: "
             + ", ".join(cp.id for cp in segment))
    hours = p["hours"]
    arrivals = ctx.morning(chargers, hours=hours, arrivals_per_evse=p["arrivals_per_evse"])
    await ctx.sleep_until(hours * 3600)
    ctx.check_sessions(chargers, arrivals)
