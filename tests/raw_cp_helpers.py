"""A raw OCPP-J charge point for the CSMS's end-to-end tests: JSON text over a real
WebSocket, every frame it sent and received kept, so that the CSMS's message log can be
checked against the wire byte for byte.

Test modules subclass :class:`RawChargePoint` with the messages of their scenario.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Self

import attrs
import pytest
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

OCPP16 = "ocpp1.6"


@attrs.define(eq=False)
class Wire:
    """Every text a charge point id sent and received, over all its connections."""

    sent: list[str] = attrs.Factory(list)
    received: list[str] = attrs.Factory(list)


@attrs.define(eq=False)
class RawChargePoint:
    """Sends CALLs one at a time (as OCPP-J requires) and returns the CALLRESULT payloads."""

    cp_id: str
    ws: WebSocketConnection
    wire: Wire

    @classmethod
    @asynccontextmanager
    async def connect(cls, port: int, cp_id: str, wire: Wire) -> AsyncIterator[Self]:
        """Connect as ``cp_id`` to a CSMS on 127.0.0.1:``port``, with ``ocpp1.6``."""
        url = f"ws://127.0.0.1:{port}/ocpp/{cp_id}"
        async with open_websocket_url(url, subprotocols=[OCPP16]) as ws:
            assert ws.subprotocol == OCPP16
            yield cls(cp_id, ws, wire)

    async def exchange(self, action: str, payload: dict[str, Any]) -> list[Any]:
        """Send a CALL; the answer frame, decoded (its uniqueId checked)."""
        unique_id = f"{self.cp_id}-{len(self.wire.sent) + 1}"
        text = json.dumps([2, unique_id, action, payload])
        await self.ws.send_message(text)
        self.wire.sent.append(text)
        answer = await self.ws.get_message()
        assert isinstance(answer, str)
        self.wire.received.append(answer)
        frame: list[Any] = json.loads(answer)
        assert frame[1] == unique_id, frame
        return frame

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send a CALL; the CALLRESULT's payload (anything else fails the test)."""
        frame = await self.exchange(action, payload)
        assert frame[0] == 3, frame
        result: dict[str, Any] = frame[2]
        return result

    async def wait_closed(self, code: int) -> None:
        """Wait until the CSMS closes the connection; it must close with ``code``."""
        with pytest.raises(ConnectionClosed) as closed:
            await self.ws.get_message()
        assert closed.value.reason is not None
        assert closed.value.reason.code == code


#: Answers a CALL of the CSMS: its payload → the CALLRESULT payload (or raises
#: :class:`Refuse` for a CALLERROR).
CallHandler = Callable[[dict[str, Any]], dict[str, Any]]


class Refuse(Exception):
    """Raised by a :data:`CallHandler`: answer with a CALLERROR of this code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@attrs.define(eq=False)
class ServingChargePoint(RawChargePoint):
    """A raw charge point that also answers the CSMS's CALLs, with ``handlers`` by action
    (a CALLERROR NotImplemented for the others), while it waits for its own answers.

    Every CALL it was sent is kept in :attr:`served`: (action, payload, our answer).
    """

    handlers: dict[str, CallHandler] = attrs.Factory(dict)
    served: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = attrs.Factory(list)

    async def exchange(self, action: str, payload: dict[str, Any]) -> list[Any]:
        """Send a CALL; answer the CSMS's CALLs until our answer comes; return it."""
        unique_id = f"{self.cp_id}-{len(self.wire.sent) + 1}"
        await self._send([2, unique_id, action, payload])
        while True:
            frame = await self._receive()
            if frame[0] == 2:
                await self._serve(frame)
                continue
            assert frame[1] == unique_id, frame
            return frame

    async def serve_until(self, done: Callable[[], bool]) -> None:
        """Answer the CSMS's CALLs until ``done()`` holds."""
        while not done():
            frame = await self._receive()
            assert frame[0] == 2, f"an answer to nothing we sent: {frame}"
            await self._serve(frame)

    def served_actions(self, action: str) -> list[dict[str, Any]]:
        """The payloads of the CSMS's ``action`` CALLs so far."""
        return [payload for name, payload, _ in self.served if name == action]

    async def _serve(self, frame: list[Any]) -> None:
        _, unique_id, action, payload = frame
        handler = self.handlers.get(action)
        try:
            if handler is None:
                raise Refuse("NotImplemented")
            answer = handler(payload)
        except Refuse as refused:
            self.served.append((action, payload, None))
            await self._send([4, unique_id, refused.code, f"{action} refused", {}])
            return
        self.served.append((action, payload, answer))
        await self._send([3, unique_id, answer])

    async def _send(self, frame: list[Any]) -> None:
        text = json.dumps(frame)
        await self.ws.send_message(text)
        self.wire.sent.append(text)

    async def _receive(self) -> list[Any]:
        text = await self.ws.get_message()
        assert isinstance(text, str)
        self.wire.received.append(text)
        frame: list[Any] = json.loads(text)
        return frame
