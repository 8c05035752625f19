"""BootNotification: the charge point introduces itself; accept it and give the time."""

from __future__ import annotations

from ocpp.v16 import call, call_result
from ocpp.v16.enums import RegistrationStatus

from csms.ocpp.handlers.context import HandlerContext
from ocppj.timestamps import format_timestamp


async def handle(
    ctx: HandlerContext, request: call.BootNotification
) -> call_result.BootNotification:
    """Create or update the charger; answer Accepted, the time and the heartbeat interval."""
    response = call_result.BootNotification(
        current_time=format_timestamp(ctx.now()),
        interval=ctx.config.heartbeat_interval,
        status=RegistrationStatus.accepted,
    )
    ctx.record(request, response)
    return response
