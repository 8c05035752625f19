"""DiagnosticsStatusNotification: where a GetDiagnostics upload has got to."""

from __future__ import annotations

from ocpp.v16 import call, call_result

from csms.ocpp.handlers.context import HandlerContext


async def handle(
    ctx: HandlerContext, request: call.DiagnosticsStatusNotification
) -> call_result.DiagnosticsStatusNotification:
    """Record the charger's last status; the answer is empty."""
    response = call_result.DiagnosticsStatusNotification()
    ctx.record(request, response)
    return response
