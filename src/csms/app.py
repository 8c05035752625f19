"""The CSMS as one supervised trio service: the OCPP server and its connections."""

from __future__ import annotations

import logging

import trio
import trio_websocket

from csms.config import CsmsConfig
from csms.ocpp.connection_manager import Connection, ConnectionManager
from csms.ocpp.handlers.context import HandlerContext
from csms.ocpp.handlers.registry import build_router
from csms.ocpp.server import serve_ocpp
from ocppj import Router

log = logging.getLogger("csms")


class Csms:
    """One CSMS instance.

    Start it with ``port = await nursery.start(csms.serve)``; stop it with
    :meth:`shutdown`, which closes every charge point's WebSocket with 1001 and returns
    once the service has ended.
    """

    def __init__(self, config: CsmsConfig) -> None:
        self.config = config
        self.connections = ConnectionManager(config, self._router_for)
        self._cancel_scope: trio.CancelScope | None = None
        self._stopped = trio.Event()

    def _router_for(self, conn: Connection) -> Router:
        return build_router(HandlerContext(conn.charge_point_id, self.config))

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until :meth:`shutdown` or cancellation; reports the listening port."""
        try:
            with trio.CancelScope() as self._cancel_scope:
                async with trio.open_nursery() as nursery:
                    server: trio_websocket.WebSocketServer = await nursery.start(
                        serve_ocpp, self.config, self.connections
                    )
                    log.info(
                        "OCPP 1.6J listening on ws://%s:%d%s{chargePointId}",
                        self.config.host,
                        server.port,
                        self.config.path_prefix,
                    )
                    task_status.started(server.port)
        finally:
            self._stopped.set()

    async def shutdown(self) -> None:
        """Close every connection with 1001 and stop serving; returns when stopped."""
        self.connections.close_all(1001, "server shutting down")
        if self._cancel_scope is not None:
            self._cancel_scope.cancel()
            await self._stopped.wait()
