"""Which handler answers which action, for one connection."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from csms.ocpp.handlers import (
    authorize,
    boot_notification,
    data_transfer,
    diagnostics_status_notification,
    firmware_status_notification,
    heartbeat,
    meter_values,
    security,
    start_transaction,
    status_notification,
    stop_transaction,
)
from csms.ocpp.handlers.context import HandlerContext
from ocppj import CallError, Failure, Router
from ocppj.routing import BoundRouter
from ocppj.tolerance import tolerate

HANDLERS: dict[str, Callable[[HandlerContext, Any], Awaitable[Any]]] = {
    "BootNotification": boot_notification.handle,
    "Heartbeat": heartbeat.handle,
    "StatusNotification": status_notification.handle,
    "Authorize": authorize.handle,
    "StartTransaction": start_transaction.handle,
    "MeterValues": meter_values.handle,
    "StopTransaction": stop_transaction.handle,
    "DataTransfer": data_transfer.handle,
    "FirmwareStatusNotification": firmware_status_notification.handle,
    "DiagnosticsStatusNotification": diagnostics_status_notification.handle,
    "SecurityEventNotification": security.security_event_notification,
    "LogStatusNotification": security.log_status_notification,
    "SignedFirmwareStatusNotification": security.signed_firmware_status_notification,
    "SignCertificate": security.sign_certificate,
}

#: connectorId and transactionId are 32-bit integers in OCPP 1.6 (``s:int`` in its SOAP
#: schema; the JSON schemas leave integers unbounded). A larger one cannot be an id this
#: CSMS gave out, and it would overflow SQLite's 64-bit integer columns (a transactionId
#: of 2**63 - 1 moves the next id to 2**63) and stop the store's writer, the whole CSMS
#: with it. So it is refused here, before it reaches the domain.
ID_MIN, ID_MAX = -(2**31), 2**31 - 1
_ID_FIELDS = (("connector_id", "connectorId"), ("transaction_id", "transactionId"))


def check_ids(request: Any) -> None:
    """Refuse ``request`` when its connectorId or transactionId is outside 32 bits.

    Raises:
        CallError: PropertyConstraintViolation, naming the field.
    """
    for attribute, name in _ID_FIELDS:
        value = getattr(request, attribute, None)
        # Comparisons, not ``in range(...)``: that is a linear scan for a non-int.
        if isinstance(value, int | float) and not ID_MIN <= value <= ID_MAX:
            raise CallError.from_failure(
                Failure.BAD_VALUE, f"{name} {value} is outside the 32-bit integer range"
            )


async def _checked(
    handler: Callable[[HandlerContext, Any], Awaitable[Any]], ctx: HandlerContext, request: Any
) -> Any:
    check_ids(request)
    return await handler(ctx, request)


#: The handlers, each checking the ids of its request first (bound to a connection's
#: context by its router at each CALL).
_CHECKED: dict[str, Callable[[HandlerContext, Any], Awaitable[Any]]] = {
    action: functools.partial(_checked, handler) for action, handler in HANDLERS.items()
}


def build_router(ctx: HandlerContext) -> Router:
    """A router whose handlers all see ``ctx``."""
    return BoundRouter(_CHECKED, ctx, None if ctx.config.strict_payloads else tolerate)
