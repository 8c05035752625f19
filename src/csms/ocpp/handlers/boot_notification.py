"""BootNotification: the charge point introduces itself; its registration decides the
answer (Accepted, or Pending until an operator accepts it), with the time."""

from __future__ import annotations

from ocpp.v16 import call, call_result
from ocpp.v16.enums import RegistrationStatus

from csms.ocpp.handlers.context import HandlerContext
from ocppj.timestamps import format_timestamp

#: Seconds a Pending or Rejected charge point waits before its next BootNotification (an
#: operator's acceptance also triggers one at once).
RETRY_BOOT_INTERVAL = 60


async def handle(
    ctx: HandlerContext, request: call.BootNotification
) -> call_result.BootNotification:
    """Create or update the charger; answer its registration status, the time and the
    heartbeat interval (Accepted) or when to boot again (Pending, Rejected)."""
    status = RegistrationStatus(ctx.registry.boot_status(ctx.charge_point_id))
    interval = ctx.config.heartbeat_interval
    if status is not RegistrationStatus.accepted:
        interval = min(interval, RETRY_BOOT_INTERVAL)
    response = call_result.BootNotification(
        current_time=format_timestamp(ctx.now()), interval=interval, status=status,
    )
    ctx.record(request, response)
    return response
