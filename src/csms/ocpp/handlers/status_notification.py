"""StatusNotification: a connector (or, with id 0, the charge point) changed state."""

from __future__ import annotations

from ocpp.v16 import call, call_result

from csms.ocpp.handlers.context import HandlerContext


async def handle(
    ctx: HandlerContext, request: call.StatusNotification
) -> call_result.StatusNotification:
    """Acknowledge; the answer has no fields."""
    return call_result.StatusNotification()
