"""WebSocket pings on silence: a charge point that vanished without closing is noticed.

A charger whose power or mobile link drops sends no close frame and no TCP reset; its
connection would look alive until the kernel gives up on it, hours later. After
``interval`` seconds in which nothing came from the charge point, the CSMS pings it; no
pong within ``timeout`` closes the connection (1001, "no pong within N s"), which is
logged and recorded as a disconnection. A charger that talks (heartbeats, meter values)
is never pinged.
"""

from __future__ import annotations

import logging

import trio
import trio_websocket

from csms.ocpp.connection_manager import Connection, ConnectionTask

log = logging.getLogger("csms.keepalive")


def keepalive(interval: float, timeout: float) -> ConnectionTask:
    """A connection task that pings after ``interval`` s of silence, and closes the
    connection when the pong takes longer than ``timeout`` s."""

    async def ping_on_silence(conn: Connection) -> None:
        session = conn.session
        assert session is not None  # connection tasks start beside a running session
        last_pong = trio.current_time()
        while True:
            quiet_until = max(session.last_read_at, last_pong) + interval
            if trio.current_time() < quiet_until:
                await trio.sleep_until(quiet_until)
                continue
            with trio.move_on_after(timeout):
                try:
                    await conn.websocket.ping()
                except trio_websocket.ConnectionClosed:
                    return
                last_pong = trio.current_time()
                continue
            log.warning("%s: no pong within %g s; closing", conn.charge_point_id, timeout)
            conn.close(1001, f"no pong within {timeout:g} s")
            return

    return ping_on_silence
