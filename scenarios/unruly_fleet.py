"""A depot morning where about a third of the chargers misbehave the way real ones do.

Like ``morning_rush`` (arrivals 06:00-10:00, stays of 2-6 hours; a grid connection of
4 kW per EVSE, tighter), but one charger in three is unruly, each in one way, assigned
from the seed: it overshoots its limit by half, ignores profiles, obeys only after three minutes,
answers SetChargingProfile after 45 s (past the CSMS's call timeout), meters energy only,
loses its network for 15 minutes mid-morning, stalls for 5 minutes, or reboots and
forgets its transaction.

Checks, what the CSMS must guarantee whatever its chargers do: the site power the CSMS
received never stays above the limit for longer than one tick; every session the
chargers ran is closed at the CSMS with the energy the charger's own meter measured;
nothing is recorded twice; every arrival got a session; no transaction message is left
undelivered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sim.behaviour import IgnoreProfiles, MeteredOnly, ObeyAfter, ObeyFraction, SlowAnswers
from sim.charge_point import SimChargePoint
from sim.simulator_runner import ScenarioContext

PARAMETERS = {"chargers": 24, "evses": 2, "hours": 7.0, "arrivals_per_evse": 1.0,
              "unruly_share": 0.34, "site_limit_kw": None, "site_limit_kw_per_evse": 4.0}

ENERGY = "Energy.Active.Import.Register"


def _misbehaviours(ctx: ScenarioContext) -> list[tuple[str, Callable[[SimChargePoint],
                                                                     Awaitable[None]]]]:
    async def behave(cp: SimChargePoint, behaviour: object) -> None:
        cp.behaviour = behaviour  # type: ignore[assignment]

    async def later(cp: SimChargePoint, at_s: float, action: Callable[[], Awaitable[None]]
                    ) -> None:
        await ctx.sleep_until(at_s)
        await action()

    return [
        ("overshoots by half", lambda cp: behave(cp, ObeyFraction(1.5))),
        ("ignores profiles", lambda cp: behave(cp, IgnoreProfiles())),
        ("obeys after 3 minutes", lambda cp: behave(cp, ObeyAfter(180.0))),
        ("answers SetChargingProfile after 45 s",
         lambda cp: behave(cp, SlowAnswers(45.0, frozenset({"SetChargingProfile"})))),
        ("meters energy only", lambda cp: behave(cp, MeteredOnly(frozenset({ENERGY})))),
        ("offline 08:00-08:15",
         lambda cp: later(cp, 3 * 3600, lambda: cp.go_offline(900))),
        ("stalled 08:30-08:35",
         lambda cp: later(cp, 3.5 * 3600, lambda: cp.go_offline(300, stall=True))),
        ("reboots at 09:00, forgetting its transactions",
         lambda cp: later(cp, 4 * 3600, lambda: cp.reboot(lose_transactions=True))),
    ]


async def scenario(ctx: ScenarioContext) -> None:
    p = ctx.params
    chargers = await ctx.fleet.spawn(p["chargers"], evses=p["evses"])
    ctx.check_records()
    unruly = ctx.rng.sample(chargers, k=round(len(chargers) * p["unruly_share"]))
    ways = _misbehaviours(ctx)
    for i, cp in enumerate(sorted(unruly, key=lambda c: c.id)):
        name, make = ways[i % len(ways)]
        ctx.spawn_task(make, cp)
        ctx.note(f"{cp.id} {name}")
    hours = p["hours"]
    arrivals = ctx.morning(chargers, hours=hours, arrivals_per_evse=p["arrivals_per_evse"])
    await ctx.sleep_until(hours * 3600)
    ctx.check_sessions(chargers, arrivals)
