"""Which handler answers which action, for one connection."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from csms.ocpp.handlers import (
    authorize,
    boot_notification,
    data_transfer,
    heartbeat,
    meter_values,
    start_transaction,
    status_notification,
    stop_transaction,
)
from csms.ocpp.handlers.context import HandlerContext
from ocppj import Router

HANDLERS: dict[str, Callable[[HandlerContext, Any], Awaitable[Any]]] = {
    "BootNotification": boot_notification.handle,
    "Heartbeat": heartbeat.handle,
    "StatusNotification": status_notification.handle,
    "Authorize": authorize.handle,
    "StartTransaction": start_transaction.handle,
    "MeterValues": meter_values.handle,
    "StopTransaction": stop_transaction.handle,
    "DataTransfer": data_transfer.handle,
}


def build_router(ctx: HandlerContext) -> Router:
    """A router whose handlers all see ``ctx``."""
    router = Router()
    for action, handler in HANDLERS.items():
        router.register(action, functools.partial(handler, ctx))
    return router
