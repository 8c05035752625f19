"""DataTransfer: vendor-specific messages; UnknownVendorId unless a vendor handler exists."""

from __future__ import annotations

from ocpp.v16 import call, call_result
from ocpp.v16.enums import DataTransferStatus

from csms.ocpp.handlers.context import HandlerContext


async def handle(ctx: HandlerContext, request: call.DataTransfer) -> call_result.DataTransfer:
    """Pass the message to the vendor's handler, if one is registered."""
    vendor = ctx.vendors.get(request.vendor_id)
    if vendor is None:
        response = call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)
    else:
        status, data = await vendor(request.message_id, request.data)
        response = call_result.DataTransfer(status=DataTransferStatus(status), data=data)
    ctx.record(request, response)
    return response
