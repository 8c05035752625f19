"""A morning at a workplace car park: EVs arrive between 06:00 and 10:00, stay 2 to 6
hours, and leave; every charger has two EVSEs.

The site's grid connection gives 6 kW per EVSE (``site_limit_kw_per_evse``), less than
the EVs could draw together: the CSMS shares it. Checks: every arrival got a session with
energy, every transaction message reached the CSMS, and the site power the CSMS received
never stayed above the limit for more than one tick.
"""

from __future__ import annotations

from sim.simulator_runner import ScenarioContext

PARAMETERS = {"chargers": 20, "evses": 2, "hours": 8.0, "arrivals_per_evse": 1.0,
              # The grid connection: 6 kW per EVSE unless site_limit_kw is given.
              "site_limit_kw": None, "site_limit_kw_per_evse": 6.0}


async def scenario(ctx: ScenarioContext) -> None:
    p = ctx.params
    chargers = await ctx.fleet.spawn(p["chargers"], evses=p["evses"])
    hours = p["hours"]
    arrivals = ctx.morning(chargers, hours=hours, arrivals_per_evse=p["arrivals_per_evse"])
    await ctx.sleep_until(hours * 3600)
    ctx.check_sessions(chargers, arrivals)
    ctx.check_energy(chargers)
    evses = sum(len(cp.evses) for cp in chargers)
    ctx.note(f"{arrivals} arrivals on {evses} EVSEs over {hours:g} h")
