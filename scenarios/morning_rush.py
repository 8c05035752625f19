"""A morning at a workplace car park: EVs arrive between 06:00 and 10:00, stay 2 to 6
hours, and leave; every charger has two EVSEs.

The site's grid connection gives 6 kW per EVSE (``site_limit_kw_per_evse``), less than
the EVs could draw together: the CSMS shares it. Checks: every arrival got a session with
energy, every transaction message reached the CSMS, and the site power the CSMS received
never stayed above the limit for more than one tick.
"""

from __future__ import annotations

from sim.charge_point import SimChargePoint
from sim.simulator_runner import ScenarioContext

PARAMETERS = {"chargers": 20, "evses": 2, "hours": 8.0, "arrivals_per_evse": 1.0,
              # The grid connection: 6 kW per EVSE unless site_limit_kw is given.
              "site_limit_kw": None, "site_limit_kw_per_evse": 6.0}


async def _visit(ctx: ScenarioContext, cp: SimChargePoint, connector: int, arrive: float,
                 stay: float, tag: str) -> None:
    await ctx.sleep_until(arrive)
    await cp.plug_in(connector, ctx.ev())
    started = await cp.start_session(connector, tag)
    ctx.check(started, f"{cp.id} EVSE_{connector}: the session did not start")
    await ctx.sleep(stay)
    await cp.unplug(connector)


async def scenario(ctx: ScenarioContext) -> None:
    p = ctx.params
    chargers = await ctx.fleet.spawn(p["chargers"], evses=p["evses"])
    evses = [(cp, n) for cp in chargers for n in cp.evses]
    arrivals = round(len(evses) * p["arrivals_per_evse"])
    hours = p["hours"]
    slots = ctx.rng.sample(evses, k=min(arrivals, len(evses)))
    for i, (cp, connector) in enumerate(slots):
        arrive = 3600 + ctx.rng.uniform(0, 4 * 3600)  # 06:00 to 10:00
        stay = ctx.rng.uniform(2 * 3600, 6 * 3600)
        # Everyone leaves at least 10 minutes before the end of the run.
        arrive = min(arrive, max(hours * 3600 - 1200, 0))
        stay = max(min(stay, hours * 3600 - arrive - 600), 60)
        ctx.spawn_task(_visit, ctx, cp, connector, arrive, stay, f"TAG-{i + 1:04d}")
    await ctx.sleep_until(hours * 3600)
    started = sum(len(cp.sessions) for cp in chargers)
    ctx.check(started == len(slots), f"{started} sessions for {len(slots)} arrivals")
    for cp in chargers:
        ctx.check(cp.queued == 0, f"{cp.id}: {cp.queued} transaction messages undelivered")
        for session in cp.sessions:
            ctx.check(session.energy_wh > 0, f"{cp.id} {session.evse}: no energy")
    ctx.note(f"{len(slots)} arrivals on {len(evses)} EVSEs over {hours:g} h")
