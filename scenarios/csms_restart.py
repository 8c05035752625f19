"""The CSMS is killed in the middle of a busy morning and comes back a minute later on the
same database; the fleet reconnects.

A workplace morning (arrivals 06:00-10:00, stays of 2-6 hours) on 4 kW per EVSE of grid
connection. At 08:30 the CSMS dies: every connection drops without a closing handshake.
The chargers go on charging under the limits they accepted, queue their transaction
messages and retry with backoff; 60 s later a new CSMS process starts on the same
database and port (in-process: a new CSMS on the same file; against an external CSMS the
scenario cannot restart it and says so).

Checks: the site power the CSMS received never stays above the limit for longer than one
tick; every session is closed at the CSMS with the energy the charger measured (nothing
acknowledged before the crash is lost); nothing is recorded twice; every arrival got a
session; no transaction message is left undelivered or given up.
"""

from __future__ import annotations

from sim.simulator_runner import ScenarioContext

PARAMETERS = {"chargers": 20, "evses": 2, "hours": 7.0, "arrivals_per_evse": 1.0,
              "restart_at_h": 3.5, "down_s": 60.0,
              "site_limit_kw": None, "site_limit_kw_per_evse": 4.0}


async def _crash(ctx: ScenarioContext) -> None:
    await ctx.sleep_until(ctx.params["restart_at_h"] * 3600)
    if await ctx.restart_csms(ctx.params["down_s"]):
        ctx.note(f"the CSMS was killed at {ctx.params['restart_at_h']:g} h and back "
                 f"{ctx.params['down_s']:g} s later")


async def scenario(ctx: ScenarioContext) -> None:
    p = ctx.params
    chargers = await ctx.fleet.spawn(p["chargers"], evses=p["evses"])
    ctx.check_records()
    ctx.spawn_task(_crash, ctx)
    hours = p["hours"]
    arrivals = ctx.morning(chargers, hours=hours, arrivals_per_evse=p["arrivals_per_evse"])
    await ctx.sleep_until(hours * 3600)
    ctx.check_sessions(chargers, arrivals)
    reconnected = sum(1 for cp in chargers if cp.connects >= 2)
    ctx.check(reconnected == len(chargers),
              f"[reconnected] {reconnected} of {len(chargers)} chargers reconnected")
