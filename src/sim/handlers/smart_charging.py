"""SetChargingProfile, ClearChargingProfile and GetCompositeSchedule."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ocpp.v16 import call, call_result
from ocpp.v16.enums import (
    ChargingProfileStatus,
    ClearChargingProfileStatus,
    GetCompositeScheduleStatus,
)

from ocppj.payloads import converter
from ocppj.timestamps import format_timestamp

if TYPE_CHECKING:
    from sim.charge_point import SimChargePoint

log = logging.getLogger("sim.charge_point")


async def set_charging_profile(
    cp: SimChargePoint, request: call.SetChargingProfile
) -> call_result.SetChargingProfile:
    """Install the profile if the profile store takes it; the EVs follow it at once."""
    connector_id = request.connector_id
    evse = cp.evses.get(connector_id)
    tx = evse.transaction if evse is not None else None
    now = cp.now()
    cp.advance(now)
    accepted, reason = cp.profiles.set(
        connector_id,
        request.cs_charging_profiles,
        transaction_id=tx.transaction_id if tx is not None else None,
        now=now,
    )
    if accepted:
        if cp.record:
            cp.profiles_received[connector_id].append(
                (now, converter.unstructure(request.cs_charging_profiles))
            )
        cp.after(cp.reevaluate)
    else:
        log.info("%s: SetChargingProfile rejected: %s", cp.id, reason)
    status = ChargingProfileStatus.accepted if accepted else ChargingProfileStatus.rejected
    return call_result.SetChargingProfile(status=status)


async def clear_charging_profile(
    cp: SimChargePoint, request: call.ClearChargingProfile
) -> call_result.ClearChargingProfile:
    """Remove the profiles the request matches; Unknown when none does."""
    cp.advance()
    purpose = request.charging_profile_purpose
    cleared = cp.profiles.clear(
        profile_id=request.id,
        connector_id=request.connector_id,
        purpose=str(purpose.value) if purpose is not None else None,
        stack_level=request.stack_level,
    )
    if cleared:
        cp.after(cp.reevaluate)
    status = ClearChargingProfileStatus.accepted if cleared else ClearChargingProfileStatus.unknown
    return call_result.ClearChargingProfile(status=status)


async def get_composite_schedule(
    cp: SimChargePoint, request: call.GetCompositeSchedule
) -> call_result.GetCompositeSchedule:
    """The schedule the installed profiles make for a connector (0: the whole charger)."""
    connector_id = request.connector_id
    if connector_id != 0 and connector_id not in cp.evses:
        return call_result.GetCompositeSchedule(status=GetCompositeScheduleStatus.rejected)
    evse = cp.evses.get(connector_id)
    tx = evse.transaction if evse is not None else None
    unit = request.charging_rate_unit
    now = cp.now()
    schedule = cp.profiles.composite_schedule(
        connector_id,
        now=now,
        duration=request.duration,
        unit=str(unit.value) if unit is not None else None,
        transaction_start=tx.started_at if tx is not None else None,
        phases=cp.config.phases,
    )
    if schedule is None:
        return call_result.GetCompositeSchedule(status=GetCompositeScheduleStatus.rejected)
    return call_result.GetCompositeSchedule(
        status=GetCompositeScheduleStatus.accepted,
        connector_id=connector_id,
        schedule_start=schedule.get("startSchedule", format_timestamp(now)),
        charging_schedule=schedule,
    )
