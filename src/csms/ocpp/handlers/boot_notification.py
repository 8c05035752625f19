"""BootNotification: the charge point introduces itself; we accept it and give the time."""

from __future__ import annotations

from ocpp.v16 import call, call_result
from ocpp.v16.enums import RegistrationStatus

from csms.ocpp.handlers.context import HandlerContext, ocpp_timestamp


async def handle(
    ctx: HandlerContext, request: call.BootNotification
) -> call_result.BootNotification:
    """Accept the charge point; ``interval`` is the configured heartbeat interval."""
    return call_result.BootNotification(
        current_time=ocpp_timestamp(ctx.now()),
        interval=ctx.config.heartbeat_interval,
        status=RegistrationStatus.accepted,
    )
