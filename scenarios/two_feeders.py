"""A depot on two feeders: the morning of ``morning_rush`` on chargers split between two
feeders, each with its own limit, under a grid connection smaller than the feeders
together.

The first half of the chargers (CP_01 …) hang off feeder ``north``, the rest off
``south``; every EVSE can draw 22 kW. Both constrain: a feeder fills up while the other
has room, and both together meet the site limit. Checks: every arrival got a session
with energy, every transaction message reached the CSMS, and the power the CSMS received
stayed above neither the site's limit nor a feeder's for longer than one tick.
"""

from __future__ import annotations

from typing import Any

from sim.simulator_runner import ScenarioContext

PARAMETERS = {"chargers": 12, "evses": 2, "hours": 8.0, "arrivals_per_evse": 1.0,
              "site_limit_kw": 130.0, "north_kw": 60.0, "south_kw": 90.0}


def site(params: dict[str, Any]) -> dict[str, Any]:
    """The CSMS's ``site:`` section: the two feeders."""
    ids = [f"CP_{n:02d}" for n in range(1, params["chargers"] + 1)]
    half = len(ids) // 2 or 1
    return {"groups": {
        "north": {"chargers": ids[:half], "limit_kw": params["north_kw"]},
        "south": {"chargers": ids[half:], "limit_kw": params["south_kw"]},
    }}


async def scenario(ctx: ScenarioContext) -> None:
    p = ctx.params
    chargers = await ctx.fleet.spawn(p["chargers"], evses=p["evses"])
    hours = p["hours"]
    arrivals = ctx.morning(chargers, hours=hours, arrivals_per_evse=p["arrivals_per_evse"])
    await ctx.sleep_until(hours * 3600)
    ctx.check_sessions(chargers, arrivals)
    ctx.check_energy(chargers)
    ctx.note(f"{arrivals} arrivals; feeders north {p['north_kw']:g} kW, south "
             f"{p['south_kw']:g} kW, site {p['site_limit_kw']:g} kW")
