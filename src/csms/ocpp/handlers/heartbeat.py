"""Heartbeat: note the charger alive; answer the server time."""

from __future__ import annotations

from ocpp.v16 import call, call_result

from csms.ocpp.handlers.context import HandlerContext
from ocppj.timestamps import format_timestamp


async def handle(ctx: HandlerContext, request: call.Heartbeat) -> call_result.Heartbeat:
    """The server time, for the charge point to set its clock by."""
    response = call_result.Heartbeat(current_time=format_timestamp(ctx.now()))
    ctx.record(request, response)
    return response
