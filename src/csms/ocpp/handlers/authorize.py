"""Authorize: is this idTag allowed to charge?"""

from __future__ import annotations

from ocpp.v16 import call, call_result
from ocpp.v16.datatypes import IdTagInfo
from ocpp.v16.enums import AuthorizationStatus

from csms.ocpp.handlers.context import HandlerContext


async def handle(ctx: HandlerContext, request: call.Authorize) -> call_result.Authorize:
    """idTagInfo from the authorization policy."""
    status = AuthorizationStatus(ctx.policy.status(request.id_tag))
    response = call_result.Authorize(id_tag_info=IdTagInfo(status=status))
    ctx.record(request, response)
    return response
