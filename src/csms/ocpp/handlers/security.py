"""The OCPP 1.6 security extension's charge-point messages: SecurityEventNotification,
LogStatusNotification, SignedFirmwareStatusNotification (recorded, answered empty) and
SignCertificate (Accepted; its CSR is recorded and shown for the operator, who signs it
with the CA of their choice and sends the result with CertificateSigned: this CSMS keeps
no CA key).

Chargers send SecurityEventNotification unsolicited, also to CSMSs that never asked for
the extension, so it is always answered and recorded."""

from __future__ import annotations

from ocpp.v16 import call, call_result
from ocpp.v16.enums import GenericStatus

from csms.ocpp.handlers.context import HandlerContext


async def security_event_notification(
    ctx: HandlerContext, request: call.SecurityEventNotification
) -> call_result.SecurityEventNotification:
    """Record the event (its type, timestamp and techInfo)."""
    response = call_result.SecurityEventNotification()
    ctx.record(request, response)
    return response


async def log_status_notification(
    ctx: HandlerContext, request: call.LogStatusNotification
) -> call_result.LogStatusNotification:
    """Record where a GetLog upload has got to."""
    response = call_result.LogStatusNotification()
    ctx.record(request, response)
    return response


async def signed_firmware_status_notification(
    ctx: HandlerContext, request: call.SignedFirmwareStatusNotification
) -> call_result.SignedFirmwareStatusNotification:
    """Record where a SignedUpdateFirmware has got to."""
    response = call_result.SignedFirmwareStatusNotification()
    ctx.record(request, response)
    return response


async def sign_certificate(
    ctx: HandlerContext, request: call.SignCertificate
) -> call_result.SignCertificate:
    """Accepted: the CSR is recorded for the operator to sign."""
    response = call_result.SignCertificate(status=GenericStatus.accepted)
    ctx.record(request, response)
    return response
