"""A fault in the middle of a session, then recovery.

EVSE_1 charges; after 30 minutes it reports GroundFailure (the charger stops the
transaction); 15 minutes later the fault clears, and a new session charges to the end.
Checks: the faulted session was stopped, the EVSE recovered, both sessions have energy.
"""

from __future__ import annotations

from sim.ev import Ev
from sim.evse import EvseState
from sim.simulator_runner import ScenarioContext

PARAMETERS = {"chargers": 1, "evses": 2, "fault_after_s": 1800, "recover_after_s": 900}


async def scenario(ctx: ScenarioContext) -> None:
    p = ctx.params
    [cp] = await ctx.fleet.spawn(1, evses=p["evses"])
    await ctx.sleep(30)
    ev = Ev(capacity_wh=60_000, soc=30.0, max_power_w=11_000)
    await cp.plug_in(1, ev)
    ctx.check(await cp.start_session(1, "TAG-FAULT"), "[sessions] first session did not start")
    await ctx.sleep(p["fault_after_s"])
    await cp.fault(1, "GroundFailure")
    evse = cp.evse(1)
    ctx.check(evse.fsm.state is EvseState.FAULTED, f"[fault] EVSE_1 is {evse.fsm.state}, not Faulted")
    ctx.check(evse.transaction is None, "[fault] the faulted EVSE still has a transaction")
    await ctx.sleep(p["recover_after_s"])
    await cp.clear_fault(1)
    ctx.check(evse.fsm.state is EvseState.PREPARING, f"[recovery] after recovery EVSE_1 is {evse.fsm.state}")
    ctx.check(await cp.start_session(1, "TAG-FAULT"), "[recovery] second session did not start")
    await ctx.sleep(1800)
    await cp.unplug(1)
    await ctx.sleep(120)
    reasons = [s.stop_reason for s in cp.sessions]
    ctx.check(reasons == ["Other", "EVDisconnected"], f"[stop-reasons] stop reasons {reasons}")
    ctx.check(all(s.energy_wh > 0 for s in cp.sessions), "[energy] a session without energy")
    ctx.check(cp.queued == 0, f"[delivery] {cp.queued} transaction messages undelivered")
