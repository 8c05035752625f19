"""One charger, one EV, one full session: plug in, authorize, charge, unplug.

The EV (60 kWh, arriving at 20 %) charges at up to 11 kW for three hours, then leaves.
Checks: the session started, delivered energy, and every transaction message reached the
CSMS.
"""

from __future__ import annotations

from sim.ev import Ev
from sim.simulator_runner import ScenarioContext

PARAMETERS = {"chargers": 1, "evses": 1, "hours": 3.0}


async def scenario(ctx: ScenarioContext) -> None:
    chargers = await ctx.fleet.spawn(ctx.params["chargers"], evses=ctx.params["evses"])
    await ctx.sleep(30)  # boot and status notifications
    for cp in chargers:
        await cp.plug_in(1, Ev(capacity_wh=60_000, soc=20.0, max_power_w=11_000))
        started = await cp.start_session(1, f"TAG-{cp.id}")
        ctx.check(started, f"[sessions] {cp.id}: the session did not start")
    await ctx.sleep(ctx.params["hours"] * 3600)
    for cp in chargers:
        await cp.unplug(1)
    await ctx.sleep(120)
    for cp in chargers:
        ctx.check(cp.queued == 0, f"[delivery] {cp.id}: {cp.queued} transaction messages undelivered")
        for session in cp.sessions:
            ctx.check(session.energy_wh > 1000, f"[energy] {cp.id}: only {session.energy_wh} Wh")
            ctx.check(session.transaction_id is not None, f"[sessions] {cp.id}: no transactionId")
