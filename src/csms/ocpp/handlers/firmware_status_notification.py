"""FirmwareStatusNotification: where an UpdateFirmware has got to (Downloading … Installed)."""

from __future__ import annotations

from ocpp.v16 import call, call_result

from csms.ocpp.handlers.context import HandlerContext


async def handle(
    ctx: HandlerContext, request: call.FirmwareStatusNotification
) -> call_result.FirmwareStatusNotification:
    """Record the charger's last status; the answer is empty."""
    response = call_result.FirmwareStatusNotification()
    ctx.record(request, response)
    return response
