"""StatusNotification: a connector (or, with id 0, the charge point) changed state."""

from __future__ import annotations

from ocpp.v16 import call, call_result

from csms.ocpp.handlers.context import HandlerContext


async def handle(
    ctx: HandlerContext, request: call.StatusNotification
) -> call_result.StatusNotification:
    """Create the EVSE on first sight and record its status; the answer is empty."""
    response = call_result.StatusNotification()
    ctx.record(request, response)
    return response
