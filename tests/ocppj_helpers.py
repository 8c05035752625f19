"""Shared helpers for the ocppj tests: real loopback WebSockets and running RPC sessions.

Everything here runs over a real trio-websocket connection on 127.0.0.1, port 0, with the
``ocpp1.6`` subprotocol; nothing is mocked. Tests synchronise on :class:`FrameLog` (an
observer that lets a test wait for a frame) and ``trio.testing.wait_all_tasks_blocked``,
never on sleeps.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio
from ocpp.v16 import call, call_result
from trio_websocket import WebSocketConnection, open_websocket_url, serve_websocket

from ocppj import SUBPROTOCOL, Direction, Router, RpcSession

#: Seconds (virtual under ``autojump_clock``) after which a hung test fails.
WATCHDOG = 30

Record = tuple[Direction, str]


class FrameLog:
    """A frame observer that records every frame, in order, and lets a test wait for one.

    ``records`` holds ``(direction, text)``; ``stamps`` the moment the session gave with
    each, at the same index.
    """

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.stamps: list[datetime.datetime] = []
        self._changed = trio.Event()

    async def __call__(self, direction: Direction, text: str, at: datetime.datetime) -> None:
        self.records.append((direction, text))
        self.stamps.append(at)
        self._changed.set()
        self._changed = trio.Event()

    def texts(self, direction: Direction) -> list[str]:
        """The wire texts that went ``direction``, in order."""
        return [text for d, text in self.records if d is direction]

    def frames(self, direction: Direction) -> list[Any]:
        """The decoded frames that went ``direction`` (undecodable text is skipped)."""
        decoded = []
        for text in self.texts(direction):
            try:
                decoded.append(json.loads(text))
            except ValueError:
                continue
        return decoded

    def calls(self, direction: Direction) -> list[list[Any]]:
        """The well-formed-looking CALL frames that went ``direction``."""
        return [f for f in self.frames(direction) if isinstance(f, list) and f[:1] == [2]]

    async def wait_for(self, predicate: Callable[[FrameLog], bool]) -> None:
        """Return once ``predicate(self)`` holds (checked after every frame)."""
        while not predicate(self):
            await self._changed.wait()

    async def wait_count(self, direction: Direction, count: int) -> None:
        """Return once at least ``count`` frames went ``direction``."""
        await self.wait_for(lambda log: len(log.texts(direction)) >= count)


@asynccontextmanager
async def websocket_pair(
    path: str = "/ocpp/CP001",
) -> AsyncIterator[tuple[WebSocketConnection, WebSocketConnection]]:
    """A real loopback WebSocket with subprotocol ``ocpp1.6``: ``(server side, client side)``."""
    async with trio.open_nursery() as nursery:
        accepted_send, accepted_receive = trio.open_memory_channel[WebSocketConnection](1)
        release = trio.Event()

        async def handler(request: Any) -> None:
            ws = await request.accept(subprotocol=SUBPROTOCOL)
            await accepted_send.send(ws)
            # trio-websocket closes the connection when its handler returns.
            await release.wait()

        server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
        url = f"ws://127.0.0.1:{server.port}{path}"
        try:
            async with open_websocket_url(url, subprotocols=[SUBPROTOCOL]) as client:
                server_ws = await accepted_receive.receive()
                assert client.subprotocol == SUBPROTOCOL
                assert server_ws.subprotocol == SUBPROTOCOL
                yield server_ws, client
        finally:
            release.set()
            nursery.cancel_scope.cancel()


def heartbeat_router(current_time: str = "2026-11-24T10:00:00Z") -> Router:
    """A router that answers every Heartbeat at once with ``current_time``."""
    router = Router()

    @router.on("Heartbeat")
    async def heartbeat(request: call.Heartbeat) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=current_time)

    return router


@attrs.define(eq=False)
class Side:
    """One end of a connection: the WebSocket, its running session and its frame log."""

    ws: WebSocketConnection
    session: RpcSession
    log: FrameLog
    finished: trio.Event = attrs.field(factory=trio.Event)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the session; ``finished`` is set once :meth:`RpcSession.run` returned."""
        await self.session.run(task_status=task_status)
        self.finished.set()


def make_side(
    ws: WebSocketConnection, router: Router | None, *, name: str, call_timeout: float = 30.0,
    answer_in_reader: bool = False,
) -> Side:
    """A session on ``ws`` observed by a fresh :class:`FrameLog` (not yet running)."""
    log = FrameLog()
    session = RpcSession(ws, router or Router(), name=name, call_timeout=call_timeout,
                         observer=log, answer_in_reader=answer_in_reader)
    return Side(ws, session, log)


@attrs.define(eq=False)
class Pair:
    """Two RpcSessions over one loopback WebSocket: the CSMS (server) and the charge point."""

    csms: Side
    cp: Side


@asynccontextmanager
async def session_pair(
    csms_router: Router | None = None,
    cp_router: Router | None = None,
    *,
    call_timeout: float = 30.0,
) -> AsyncIterator[Pair]:
    """Both sides running; on exit the sessions are cancelled and the socket closed."""
    async with websocket_pair() as (server_ws, client_ws), trio.open_nursery() as nursery:
        pair = Pair(
            make_side(server_ws, csms_router, name="csms", call_timeout=call_timeout),
            make_side(client_ws, cp_router, name="CP001", call_timeout=call_timeout),
        )
        await nursery.start(pair.csms.run)
        await nursery.start(pair.cp.run)
        yield pair
        nursery.cancel_scope.cancel()


@attrs.define(eq=False)
class RawPeer:
    """A session on the server side, and the client side driven frame by frame by the test."""

    server: Side
    client: WebSocketConnection

    async def send(self, text: str) -> None:
        """Send ``text`` as one WebSocket text message."""
        await self.client.send_message(text)

    async def receive(self) -> Any:
        """The next message from the session, decoded."""
        return json.loads(await self.client.get_message())

    async def exchange(self, text: str) -> Any:
        """Send ``text`` and return the next message from the session, decoded."""
        await self.send(text)
        return await self.receive()


@asynccontextmanager
async def raw_peer(
    router: Router | None = None, *, call_timeout: float = 30.0, answer_in_reader: bool = False
) -> AsyncIterator[RawPeer]:
    """A running server-side session facing a raw client WebSocket."""
    async with websocket_pair() as (server_ws, client_ws), trio.open_nursery() as nursery:
        side = make_side(server_ws, router, name="csms", call_timeout=call_timeout,
                         answer_in_reader=answer_in_reader)
        await nursery.start(side.run)
        yield RawPeer(side, client_ws)
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def raw_csms(
    cp_router: Router | None = None, *, call_timeout: float = 30.0
) -> AsyncIterator[tuple[Side, WebSocketConnection]]:
    """A running charge-point (client-side) session facing a raw server WebSocket."""
    async with websocket_pair() as (server_ws, client_ws), trio.open_nursery() as nursery:
        side = make_side(client_ws, cp_router, name="CP001", call_timeout=call_timeout)
        await nursery.start(side.run)
        yield side, server_ws
        nursery.cancel_scope.cancel()


# -- example payloads from the OCPP 1.6 JSON schemas ------------------------------------

EXAMPLE_TIME = "2026-11-24T10:00:00Z"


def example_payload(node: dict[str, Any], *, full: bool, root: dict[str, Any] | None = None) -> Any:
    """A value valid against the schema ``node``: required properties only, or all of them.

    Strings take their first enum value (else a date-time or ``"x"``), numbers 1, arrays
    one item; ``full`` fills every optional property too, to exercise every field name.
    """
    root = root or node
    if "$ref" in node:
        *_, name = node["$ref"].split("/")
        return example_payload(root["definitions"][name], full=full, root=root)
    kind = node.get("type")
    if "enum" in node:
        return node["enum"][0]
    if kind == "object":
        properties: dict[str, Any] = node.get("properties", {})
        wanted = properties if full else node.get("required", [])
        return {name: example_payload(properties[name], full=full, root=root) for name in wanted}
    if kind == "array":
        return [example_payload(node["items"], full=full, root=root)]
    if kind == "string":
        formats = {"date-time": EXAMPLE_TIME, "uri": "https://example.com/x"}
        return formats.get(node.get("format", ""), "x")
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return True
    raise AssertionError(f"no example for schema node {node!r}")
