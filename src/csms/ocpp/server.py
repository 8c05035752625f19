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
import urllib.parse

import trio
import trio_websocket

from csms.config import CsmsConfig
from csms.ocpp.admission import BASIC_CHALLENGE, Gate
from csms.ocpp.connection_manager import ConnectionManager
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


def _remote(request: trio_websocket.WebSocketRequest) -> str:
    remote = request.remote
    if isinstance(remote, trio_websocket.Endpoint):
        return f"{remote.address}:{remote.port}"
    return str(remote)


async def serve_ocpp(
    config: CsmsConfig,
    manager: ConnectionManager,
    gate: Gate | None = None,
    *,
    task_status: trio.TaskStatus[trio_websocket.WebSocketServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve OCPP 1.6J until cancelled; reports the listening server when ready."""

    async def handle(request: trio_websocket.WebSocketRequest) -> None:
        try:
            await _handle(request)
        except trio_websocket.ConnectionClosed:
            pass
        except Exception:
            # The handshake itself failed (a peer that vanished, a broken request):
            # the other connections must not notice.
            log.exception("handshake from %s failed", _remote(request))

    async def _handle(request: trio_websocket.WebSocketRequest) -> None:
        remote = _remote(request)
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
            refusal = await gate.admit(cp_id, request.headers, remote)
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
        ws = await request.accept(subprotocol=SUBPROTOCOL)
        await manager.serve(cp_id, ws, remote)

    await trio_websocket.serve_websocket(
        handle,
        config.host,
        config.port,
        ssl_context=None,
        max_message_size=config.max_frame_size,
        connect_timeout=config.close_timeout,
        disconnect_timeout=config.close_timeout,
        task_status=task_status,
    )
