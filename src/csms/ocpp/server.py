"""The OCPP 1.6J WebSocket endpoint: ``ws://HOST:PORT{prefix}{chargePointId}``.

The handshake is checked here and nowhere else:

* a path outside the prefix, or without an id, is refused with HTTP 404;
* an id that is not valid (see :mod:`ocppj.identity`) is refused with HTTP 400, the
  reason in the body and the log;
* then the :class:`~csms.ocpp.admission.Gate` checks registration and credentials (401,
  403 or 404, the reason in the body and the log);
* a client that does not offer the ``ocpp1.6`` subprotocol gets the handshake completed
  without a subprotocol and the socket closed at once (1002), as OCPP-J 1.6 prescribes;
* otherwise ``ocpp1.6`` is accepted and the connection goes to the
  :class:`~csms.ocpp.connection_manager.ConnectionManager`.

Each connection runs in its own task under trio-websocket's handler nursery; this module
makes sure no exception of one connection can escape into that nursery.
"""

from __future__ import annotations

import logging
import ssl
import urllib.parse
from typing import Any

import trio
import trio_websocket
from attrs import frozen

from csms.config import CsmsConfig
from csms.ocpp.admission import BASIC_CHALLENGE, Gate
from csms.ocpp.connection_manager import ConnectionManager
from csms.ocpp.stall import StallGuard, StallWatch
from csms.ocpp.tls import peer_common_name
from ocppj import SUBPROTOCOL
from ocppj.identity import BadChargePointId, decode_charge_point_id

log = logging.getLogger("csms.server")


def charge_point_segment(path: str, prefix: str) -> str | None:
    """The (still percent-encoded) id segment of a request path; None: not our path."""
    path = urllib.parse.urlsplit(path).path
    if not path.startswith(prefix):
        return None
    raw = path[len(prefix) :]
    if not raw or "/" in raw:
        return None
    return raw


@frozen
class Peer:
    """What the transport says about a connecting client."""

    tls: bool = False
    #: The subject commonName of its verified client certificate (profile 3).
    certificate_name: str | None = None
    #: Its place among the pending handshakes, given back once the handshake is done.
    slot: HandshakeSlot | None = None
    #: The stream under its WebSocket, which notices a charger that does not read.
    guard: StallGuard | None = None
    #: Its address, ``host:port``.
    remote: str = "?"


class HandshakeSlot:
    """One pending handshake; :meth:`release` (idempotent) gives its place back."""

    def __init__(self, owner: PendingHandshakes) -> None:
        self._owner: PendingHandshakes | None = owner

    def release(self) -> None:
        if self._owner is not None:
            self._owner.count -= 1
            self._owner = None


class PendingHandshakes:
    """Counts the connections whose WebSocket handshake is not done, up to ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit, self.count, self.dropped = limit, 0, 0

    def enter(self) -> HandshakeSlot | None:
        if self.count >= self.limit:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("%d pending handshakes: %d connections dropped unread so far",
                            self.limit, self.dropped)
            return None
        self.count += 1
        return HandshakeSlot(self)


class Accepting:
    """Whether the OCPP server takes new connections. :meth:`stop` is a shutdown's first
    step: the listening sockets close (a charger that connects now is refused by the
    kernel, and one in the accept backlog is reset); the live connections are not
    touched. A handshake already under way is answered 503 once the connection manager
    is closing (see :func:`_handshake`)."""

    def __init__(self) -> None:
        self.scope = trio.CancelScope()

    def stop(self) -> None:
        self.scope.cancel()


async def serve_ocpp(
    config: CsmsConfig,
    manager: ConnectionManager,
    gate: Gate | None = None,
    *,
    tls: ssl.SSLContext | None = None,
    accepting: Accepting | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve OCPP 1.6J (over TLS with ``tls``) until cancelled; reports the port.

    Each TCP connection runs in its own task under :func:`trio.serve_listeners`; the
    WebSocket is opened with trio-websocket's public :func:`wrap_server_stream`, so that
    the TLS stream (its client certificate) stays in hand. ``accepting.stop()`` closes
    the listening sockets and leaves the connections running.
    """
    accepting = accepting if accepting is not None else Accepting()

    pending = PendingHandshakes(config.max_pending_handshakes)
    stalls = StallWatch(config.call_timeout)

    async def connection(stream: trio.abc.Stream) -> None:
        slot = pending.enter()
        if slot is None:
            # A flood of half-open connections: this one is dropped unread.
            await trio.aclose_forcefully(stream)
            return
        try:
            async with trio.open_nursery() as nursery:
                request = None
                guard = stalls.guard(stream)
                with trio.move_on_after(config.close_timeout):
                    request = await trio_websocket.wrap_server_stream(
                        nursery, guard, max_message_size=config.max_frame_size
                    )
                if request is not None:
                    peer = Peer(tls is not None, peer_common_name(stream), slot, guard,
                                _stream_remote(stream))
                    await handle(request, peer)
                nursery.cancel_scope.cancel()
        except Exception:
            # A TLS handshake that failed (an untrusted client certificate), a peer
            # that vanished: the other connections must not notice.
            log.info("connection from %s ended before the handshake completed",
                     _stream_remote(stream), exc_info=True)
        finally:
            slot.release()
            await trio.aclose_forcefully(stream)

    async def handle(request: trio_websocket.WebSocketRequest, peer: Peer) -> None:
        try:
            await _handshake(config, manager, gate, request, peer)
        except trio_websocket.ConnectionClosed:
            pass
        except Exception:
            # The handshake itself failed (a peer that vanished, a broken request):
            # the other connections must not notice.
            log.exception("handshake from %s failed", peer.remote)

    listeners: list[trio.abc.Listener[Any]] = list(
        await trio.open_tcp_listeners(config.port, host=config.host)
    )
    port = listeners[0].socket.getsockname()[1]  # type: ignore[attr-defined]
    if tls is not None:
        listeners = [trio.SSLListener(listener, tls, https_compatible=True)
                     for listener in listeners]
    async def accept(*, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        # serve_listeners closes its listeners when cancelled; the connections run in
        # the outer nursery, so stopping to accept leaves them alone.
        with accepting.scope:
            await trio.serve_listeners(connection, listeners, handler_nursery=nursery,
                                       task_status=task_status)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stalls.run)
        await nursery.start(accept)
        task_status.started(port)
        await trio.sleep_forever()


async def _handshake(
    config: CsmsConfig,
    manager: ConnectionManager,
    gate: Gate | None,
    request: trio_websocket.WebSocketRequest,
    peer: Peer,
) -> None:
    """Check one WebSocket handshake; refuse it, or accept it and serve the connection."""
    remote = peer.remote
    segment = charge_point_segment(request.path, config.path_prefix)
    if segment is None:
        log.info("refused %s: no charge point id in path %r", remote, request.path)
        await request.reject(404, body=b"unknown path\n")
        return
    try:
        cp_id = decode_charge_point_id(segment, relaxed=config.relaxed_ids)
    except BadChargePointId as exc:
        log.warning("refused %s: %s", remote, exc)
        await request.reject(400, body=f"{exc}\n".encode())
        return
    if gate is not None:
        refusal = await gate.admit(
            cp_id, request.headers, remote, tls=peer.tls,
            certificate_name=peer.certificate_name,
        )
        if refusal is not None:
            log.warning("refused %s (%s): %s", cp_id, remote, refusal.reason)
            headers = [BASIC_CHALLENGE] if refusal.status == 401 else None
            await request.reject(
                refusal.status, extra_headers=headers, body=f"{refusal.reason}\n".encode()
            )
            return
    if SUBPROTOCOL not in request.proposed_subprotocols:
        log.info(
            "refused %s (%s): subprotocol %s not offered (offered: %s)",
            cp_id,
            remote,
            SUBPROTOCOL,
            ", ".join(request.proposed_subprotocols) or "none",
        )
        ws = await request.accept()
        await ws.aclose(1002, f"subprotocol {SUBPROTOCOL} required")
        return
    if manager.get(cp_id) is None and manager.count >= config.max_connections:
        log.warning("refused %s (%s): %d connections already", cp_id, remote,
                    config.max_connections)
        await request.reject(503, body=b"too many connections\n")
        return
    if manager.closing:
        # Shutting down (perhaps since this handshake's checks began): no handshake
        # completes after the signal.
        await request.reject(503, body=b"shutting down\n")
        return
    ws = await request.accept(subprotocol=SUBPROTOCOL)
    if peer.slot is not None:
        peer.slot.release()  # the handshake is done: no longer pending
    await manager.serve(cp_id, ws, remote, peer.guard)


def _stream_remote(stream: trio.abc.Stream) -> str:
    transport = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
    if not isinstance(transport, trio.SocketStream):
        return "?"
    try:
        host, port = transport.socket.getpeername()[:2]
    except OSError:
        return "?"
    return f"{host}:{port}"
