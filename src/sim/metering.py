"""The meter physics of a simulated charge point: energy integrated over time, the power
each EV draws under the limit in force, and the MeterValues a charger reports. Pure: time
enters as ``now``, nothing here sends or sleeps."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from ocppj.charging import MIN_CURRENT_A, NOMINAL_VOLTAGE_V
from ocppj.timestamps import format_timestamp
from sim.behaviour import Behaviour
from sim.charger_state import SimEvse
from sim.ev import current_per_phase, power_drawn, step
from sim.evse import Action
from sim.profiles import ProfileStore


def advance(
    evses: Iterable[SimEvse],
    profiles: ProfileStore,
    behaviour: Behaviour,
    now: datetime.datetime,
) -> list[int]:
    """Integrate every EVSE's energy up to ``now`` and recompute its power.

    Returns the connectors whose OCPP status changed.
    """
    changed = []
    for evse in evses:
        if evse.updated_at is not None and evse.ev is not None and evse.power_w > 0:
            seconds = (now - evse.updated_at).total_seconds()
            evse.ev, energy = step(evse.ev, evse.power_w, seconds)
            evse.register_wh += energy
        evse.updated_at = now
        if repower(evse, profiles, behaviour, now):
            changed.append(evse.connector_id)
    return changed


def repower(
    evse: SimEvse, profiles: ProfileStore, behaviour: Behaviour, now: datetime.datetime
) -> bool:
    """Set ``evse``'s power from its EV, its maximum and the limit in force.

    Below the 6 A minimum an EV does not charge, so such a limit pauses it
    (SuspendedEVSE); an EV that takes nothing is SuspendedEV. Returns whether the EVSE's
    state changed.
    """
    tx = evse.transaction
    if tx is None or evse.ev is None or not evse.fsm.transaction_possible:
        evse.power_w = 0.0
        return False
    phases = drawn_phases(evse)
    # A limit in A is per phase: it allows a single-phase EV a third of the watts.
    asked = profiles.limit(
        evse.connector_id, now=now, transaction_start=tx.started_at, phases=phases
    )
    evse.limit_w = asked
    limit = behaviour.limit_in_force(evse.connector_id, asked, now)
    floor_w = MIN_CURRENT_A * phases * NOMINAL_VOLTAGE_V
    if limit is not None and limit < floor_w:
        limit = 0.0
    evse_max_w = evse.max_power_w * phases / evse.phases
    evse.power_w = power_drawn(evse.ev, evse_max_w, limit)
    tx.peak_power_w = max(tx.peak_power_w, evse.power_w)
    if evse.power_w > 0:
        target = Action.RESUME
    elif limit == 0.0:
        target = Action.SUSPEND_EVSE
    else:
        target = Action.SUSPEND_EV
    before = evse.fsm.state
    evse.fsm = evse.fsm.next(target)
    return evse.fsm.state != before


def drawn_phases(evse: SimEvse) -> int:
    """The phases current flows on: the EVSE's, or fewer if its EV's charger has fewer."""
    if evse.ev is None:
        return evse.phases
    return max(1, min(evse.phases, evse.ev.phases))


def meter_payload(
    evse: SimEvse,
    context: str,
    behaviour: Behaviour,
    now: datetime.datetime,
    measurands: frozenset[str] | None = None,
) -> dict[str, Any]:
    """A MeterValues payload for ``evse`` as of ``now`` (with its transactionId if known),
    with the ``measurands`` asked for (None: every one it has)."""
    sampled: list[dict[str, Any]] = [
        {
            "value": f"{evse.register_wh:.1f}",
            "context": context,
            "measurand": "Energy.Active.Import.Register",
            "location": "Outlet",
            "unit": "Wh",
        },
        {
            "value": f"{evse.power_w:.1f}",
            "context": context,
            "measurand": "Power.Active.Import",
            "location": "Outlet",
            "unit": "W",
        },
    ]
    drawn = drawn_phases(evse)
    amps = current_per_phase(evse.power_w, drawn)
    for index, phase in enumerate(("L1", "L2", "L3")[: evse.phases]):
        sampled.append(
            {
                "value": f"{amps if index < drawn else 0.0:.2f}",
                "context": context,
                "measurand": "Current.Import",
                "phase": phase,
                "location": "Outlet",
                "unit": "A",
            }
        )
    if evse.ev is not None:
        sampled.append(
            {
                "value": f"{evse.ev.soc:.1f}",
                "context": context,
                "measurand": "SoC",
                "location": "EV",
                "unit": "Percent",
            }
        )
    if measurands is not None:
        sampled = [s for s in sampled if s["measurand"] in measurands]
    sampled = behaviour.sampled_values(evse.connector_id, sampled)
    payload: dict[str, Any] = {
        "connectorId": evse.connector_id,
        "meterValue": [{"timestamp": format_timestamp(now), "sampledValue": sampled}],
    }
    tx = evse.transaction
    if tx is not None and tx.transaction_id is not None:
        payload["transactionId"] = tx.transaction_id
    return payload
