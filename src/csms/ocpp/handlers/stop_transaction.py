"""StopTransaction: a session ends. Never refused, even for an unknown transactionId."""

from __future__ import annotations

from ocpp.v16 import call, call_result

from csms.ocpp.handlers.context import HandlerContext


async def handle(ctx: HandlerContext, request: call.StopTransaction) -> call_result.StopTransaction:
    """Close the session with meterStop and reason; idTagInfo when an idTag was sent."""
    info = None
    if request.id_tag is not None:
        info = ctx.id_tag_info(request.id_tag)
    response = call_result.StopTransaction(id_tag_info=info)
    ctx.record(request, response)
    return response
