"""Authorize: is this idTag allowed to charge?"""

from __future__ import annotations

from ocpp.v16 import call, call_result

from csms.ocpp.handlers.context import HandlerContext


async def handle(ctx: HandlerContext, request: call.Authorize) -> call_result.Authorize:
    """idTagInfo from the operator's data and the authorization policy."""
    response = call_result.Authorize(id_tag_info=ctx.id_tag_info(request.id_tag))
    ctx.record(request, response)
    return response
