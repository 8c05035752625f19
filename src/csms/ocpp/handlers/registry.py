"""Which handler answers which action, for one connection."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from csms.ocpp.handlers import boot_notification, heartbeat, meter_values, status_notification
from csms.ocpp.handlers.context import HandlerContext
from ocppj import Router

_HANDLERS: dict[str, Callable[[HandlerContext, Any], Awaitable[Any]]] = {
    "BootNotification": boot_notification.handle,
    "Heartbeat": heartbeat.handle,
    "StatusNotification": status_notification.handle,
    "MeterValues": meter_values.handle,
}


def build_router(ctx: HandlerContext) -> Router:
    """A router whose handlers all see ``ctx``."""
    router = Router()
    for action, handler in _HANDLERS.items():
        router.register(action, functools.partial(handler, ctx))
    return router
