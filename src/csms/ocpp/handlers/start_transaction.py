"""StartTransaction: a session begins; the CSMS chooses its transactionId."""

from __future__ import annotations

from ocpp.v16 import call, call_result
from ocpp.v16.datatypes import IdTagInfo
from ocpp.v16.enums import AuthorizationStatus

from csms.domain.state import start_key
from csms.ocpp.handlers.context import HandlerContext


async def handle(
    ctx: HandlerContext, request: call.StartTransaction
) -> call_result.StartTransaction:
    """Always answer with a transactionId, even for a refused idTag.

    A retransmission (same charger, connector, idTag, meterStart and timestamp) gets the
    transactionId it got the first time and creates nothing.
    """
    state = ctx.state
    key = start_key(
        ctx.charge_point_id,
        request.connector_id,
        request.id_tag,
        request.meter_start,
        request.timestamp,
    )
    known = state.start_keys.get(key)
    if known is not None:
        transaction_id = known
        info = IdTagInfo(status=AuthorizationStatus(state.sessions[known].auth_status))
    else:
        transaction_id = state.next_transaction_id
        info = ctx.start_tag_info(request.id_tag, request.connector_id)
    response = call_result.StartTransaction(transaction_id=transaction_id, id_tag_info=info)
    ctx.record(request, response)
    return response
