"""Demand well above the site limit: every EVSE of every charger has an EV that could
draw 22 kW, against a site limit of a fraction of that.

Checks: every session ran and delivered energy; the report shows peak site power
against the site limit.
"""

from __future__ import annotations

from sim.ev import Ev
from sim.simulator_runner import ScenarioContext

PARAMETERS = {"chargers": 10, "evses": 2, "hours": 2.0, "site_limit_kw": 100.0}


async def scenario(ctx: ScenarioContext) -> None:
    p = ctx.params
    chargers = await ctx.fleet.spawn(p["chargers"], evses=p["evses"])
    await ctx.sleep(30)
    for i, cp in enumerate(chargers):
        for connector in cp.evses:
            await cp.plug_in(connector, Ev(capacity_wh=90_000, soc=10.0, max_power_w=22_000))
            await cp.start_session(connector, f"TAG-{i + 1:02d}-{connector}")
    await ctx.sleep(p["hours"] * 3600)
    for cp in chargers:
        for connector in cp.evses:
            await cp.unplug(connector)
    await ctx.sleep(120)
    demand = sum(len(cp.evses) for cp in chargers) * 22.0
    ctx.note(f"demand {demand:.0f} kW against a site limit of {p['site_limit_kw']} kW")
    for cp in chargers:
        ctx.check(cp.queued == 0, f"[delivery] {cp.id}: {cp.queued} transaction messages undelivered")
        ctx.check(all(s.energy_wh > 0 for s in cp.sessions), f"[energy] {cp.id}: a session without energy")
