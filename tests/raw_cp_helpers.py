"""A raw OCPP-J charge point for the CSMS's end-to-end tests: JSON text over a real
WebSocket, every frame it sent and received kept, so that the CSMS's message log can be
checked against the wire byte for byte.

Test modules subclass :class:`RawChargePoint` with the messages of their scenario.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
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
