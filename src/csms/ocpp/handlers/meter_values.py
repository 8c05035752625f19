"""MeterValues: sampled values of a connector or a transaction."""

from __future__ import annotations

from ocpp.v16 import call, call_result

from csms.ocpp.handlers.context import HandlerContext


async def handle(ctx: HandlerContext, request: call.MeterValues) -> call_result.MeterValues:
    """Store the samples and update the session's metrics; the answer is empty."""
    response = call_result.MeterValues()
    ctx.record(request, response)
    return response
