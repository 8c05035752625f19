"""The live charge-point connections, one task each, keyed by charge point id.

A second connection with the id of a live one replaces it: the old WebSocket is closed
(code 1000, "replaced by a new connection") and its session ends; the new one serves.
Nothing that happens on one connection reaches another: every connection's task catches
its own failures, logs them, and ends only itself.
"""

from __future__ import annotations

import datetime
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Protocol

import attrs
import trio
import trio_websocket

from csms.config import CALL_BURST, CsmsConfig
from csms.ocpp.stall import StallGuard
from ocppj import Router, RpcSession
from ocppj.session import FrameObserver, utc_now

log = logging.getLogger("csms.connections")

#: Builds the router that answers one charge point's CALLs.
RouterFactory = Callable[["Connection"], Router]
#: A task that runs beside a connection's session for the connection's lifetime.
ConnectionTask = Callable[["Connection"], Awaitable[None]]


async def _guarded(task: ConnectionTask, conn: Connection) -> None:
    try:
        await task(conn)
    except Exception:
        log.exception("%s: connection task %r failed", conn.charge_point_id, task)


class ConnectionListener(Protocol):
    """Told when a charge point's WebSocket opens and closes (for the message log)."""

    def connected(self, charge_point_id: str, remote: str) -> None:
        """The connection is accepted; its first frame has not been read yet."""

    def disconnected(self, charge_point_id: str, reason: str, *, replaced: bool) -> None:
        """The connection ended; ``replaced`` when a newer one of the same id is live."""


@attrs.define(eq=False)
class Connection:
    """One charge point's live WebSocket and its RPC session."""

    charge_point_id: str
    remote: str
    websocket: trio_websocket.WebSocketConnection
    session: RpcSession | None = None
    #: The stream under the WebSocket: says when the charger stopped reading.
    guard: StallGuard | None = None
    cancel_scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    close_code: int = 1000
    close_reason: str = ""

    def close(self, code: int, reason: str) -> None:
        """Ask this connection's task to close its WebSocket with ``code`` and end."""
        self.close_code, self.close_reason = code, reason
        self.cancel_scope.cancel()


def _peer_close_reason(close: trio_websocket.CloseReason) -> str:
    detail = f"{close.code} {close.name}"
    if close.reason:
        detail += f": {close.reason}"
    return f"peer closed ({detail})"


class ConnectionManager:
    """Supervises the charge point connections of one CSMS.

    Args:
        config: the CSMS configuration.
        router_factory: builds the handlers for a new connection.
        observer_factory: optionally builds a frame observer (the message log) per connection.
        listener: optionally told of every connection opening and closing.
        clock: the wall clock the sessions stamp frames with.
    """

    def __init__(
        self,
        config: CsmsConfig,
        router_factory: RouterFactory,
        observer_factory: Callable[[str], FrameObserver] | None = None,
        listener: ConnectionListener | None = None,
        clock: Callable[[], datetime.datetime] = utc_now,
    ) -> None:
        self._listener = listener
        self._clock = clock
        self._connection_tasks: list[ConnectionTask] = []
        self._config = config
        self._router_factory = router_factory
        self._observer_factory = observer_factory
        self._connections: dict[str, Connection] = {}
        self._closing = False
        #: trio time by which every closing handshake gives up (set by close_all).
        self._close_deadline = math.inf
        # Every connection task still running, replaced ones included, so that a shutdown
        # can wait for their closing handshakes before it cancels the server.
        self._running: set[Connection] = set()
        self._all_ended = trio.Event()
        self._all_ended.set()

    def get(self, charge_point_id: str) -> Connection | None:
        """The live connection of ``charge_point_id``, if any."""
        return self._connections.get(charge_point_id)

    @property
    def closing(self) -> bool:
        """True once :meth:`close_all` was called (a shutdown)."""
        return self._closing

    @property
    def count(self) -> int:
        """How many charge points are connected now."""
        return len(self._connections)

    @property
    def connected(self) -> list[str]:
        """Ids of the charge points connected now."""
        return list(self._connections)

    def live(self) -> set[Connection]:
        """The connections open now."""
        return set(self._connections.values())

    async def serve(
        self,
        charge_point_id: str,
        websocket: trio_websocket.WebSocketConnection,
        remote: str,
        guard: StallGuard | None = None,
    ) -> None:
        """Run one charge point's connection until it closes. Never raises ``Exception``.

        ``guard``, the stream under ``websocket``, tells a charger that stopped reading
        (it ends the connection; recorded as closed 1001 with its reason)."""
        conn = Connection(charge_point_id, remote, websocket, guard=guard)
        old = self._connections.get(charge_point_id)
        if old is not None:
            log.info(
                "%s: second connection from %s replaces the one from %s",
                charge_point_id,
                remote,
                old.remote,
            )
            old.close(1000, "replaced by a new connection")
        self._connections[charge_point_id] = conn
        if not self._running:
            self._all_ended = trio.Event()
        self._running.add(conn)
        log.info("%s: connected from %s", charge_point_id, remote)
        reason = "peer closed"
        if self._listener is not None:
            self._listener.connected(charge_point_id, remote)
        try:
            with conn.cancel_scope:
                if self._closing:
                    conn.close(1001, "server shutting down")
                observer = None
                if self._observer_factory is not None:
                    observer = self._observer_factory(charge_point_id)
                conn.session = RpcSession(
                    websocket,
                    self._router_factory(conn),
                    name=charge_point_id,
                    call_timeout=self._config.call_timeout,
                    observer=observer,
                    clock=self._clock,
                    call_rate=self._config.max_call_rate,
                    call_burst=CALL_BURST,
                    max_queued_calls=self._config.max_queued_calls,
                    drop_after_timeouts=self._config.drop_after_timeouts or None,
                    # The CSMS's handlers never wait on the charger (what they start
                    # after the answer runs elsewhere): no dispatcher task per connection.
                    answer_in_reader=True,
                )
                await self._run_session(conn, conn.session)
            if conn.cancel_scope.cancelled_caught:
                reason = conn.close_reason
            elif conn.guard is not None and conn.guard.stalled is not None:
                log.warning("%s: dropped: %s", charge_point_id, conn.guard.stalled)
                conn.close_code, conn.close_reason = 1001, conn.guard.stalled
                reason = conn.close_reason
            elif conn.session is not None and conn.session.ended_for is not None:
                conn.close_code, conn.close_reason = conn.session.ended_for
                reason = conn.close_reason
            elif conn.session is not None and conn.session.close_reason is not None:
                reason = _peer_close_reason(conn.session.close_reason)
        except Exception:
            log.exception("%s: connection failed", charge_point_id)
            reason = "internal error"
            conn.close_code, conn.close_reason = 1011, "internal error"
        finally:
            await self._finish(conn, reason)

    async def _run_session(self, conn: Connection, session: RpcSession) -> None:
        """The session, and beside it the connection's own tasks, until the socket closes."""
        if not self._connection_tasks:
            await session.run()
            return
        async with trio.open_nursery() as nursery:
            await nursery.start(session.run)
            for task in self._connection_tasks:
                nursery.start_soon(_guarded, task, conn)
            # session.run returns when the socket closes: then the tasks end too.
            await session.wait_closed()
            nursery.cancel_scope.cancel()

    def add_connection_task(self, task: ConnectionTask) -> None:
        """Run ``task(connection)`` beside every connection's session, for its lifetime.

        A task's exception is logged and ends that task only.
        """
        self._connection_tasks.append(task)

    async def _finish(self, conn: Connection, reason: str) -> None:
        """Forget ``conn``, record its end, and close its WebSocket (even when cancelled)."""
        cp_id = conn.charge_point_id
        current = self._connections.get(cp_id)
        if current is conn:
            del self._connections[cp_id]
        if self._listener is not None:
            try:
                replaced = current is not None and current is not conn
                self._listener.disconnected(cp_id, reason, replaced=replaced)
            except Exception:
                log.exception("%s: recording the disconnection failed", cp_id)
        deadline = trio.current_time() + self._config.close_timeout
        with trio.move_on_at(min(deadline, self._close_deadline)) as cleanup:
            cleanup.shield = True
            await conn.websocket.aclose(conn.close_code, conn.close_reason or None)
        self._running.discard(conn)
        if not self._running:
            self._all_ended.set()
        log.info("%s: disconnected: %s", cp_id, reason)

    async def wait_all_ended(self) -> None:
        """Return once no connection task is running (each has closed its WebSocket)."""
        while self._running:
            await self._all_ended.wait()

    def close_all(self, code: int = 1001, reason: str = "server shutting down",
                  wait: float | None = None) -> None:
        """Close every connection (and any that arrives from now on) with ``code``, all at
        once; each waits at most ``wait`` seconds (default: the close timeout) for its
        charger to answer the close, then its socket is dropped."""
        self._closing = True
        self._close_deadline = trio.current_time() + (
            self._config.close_timeout if wait is None else wait)
        for conn in list(self._connections.values()):
            conn.close(code, reason)
