"""A simulated charger's network link: the TCP (or TLS) stream under its WebSocket, which
the simulated network can break the ways real ones do.

* :meth:`Link.die`: the connection is gone without a WebSocket closing handshake (a
  power cut at the router, a mobile network dropping the charger): the CSMS reads the
  end of the stream and records an abnormal closure (1006).
* :meth:`Link.stall`: TCP stays open, but nothing is read or written until
  :meth:`Link.resume` (a link that lost its radio but not its TCP state): the CSMS's
  frames wait unread and its CALLs go unanswered; the charger's own frames wait unsent.

The WebSocket runs over the link with trio-websocket's public ``wrap_client_stream``.
"""

from __future__ import annotations

import ssl
import urllib.parse
from typing import cast

import trio
import trio_websocket

from ocppj import SUBPROTOCOL


class Link(trio.abc.Stream):
    """The charger's end of the TCP connection, with a switch the network can flip."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self._flowing = trio.Event()
        self._flowing.set()
        self.dead = False

    @property
    def stalled(self) -> bool:
        """Nothing is read or written (see :meth:`stall`)."""
        return not self._flowing.is_set()

    def stall(self) -> None:
        """Stop reading and writing; the TCP connection stays open."""
        if not self.stalled:
            self._flowing = trio.Event()

    def resume(self) -> None:
        """Read and write again (what waited goes first)."""
        self._flowing.set()

    async def wait_flowing(self) -> None:
        """Return once the link reads and writes."""
        await self._flowing.wait()

    async def die(self) -> None:
        """Close the TCP connection without a WebSocket closing handshake."""
        self.dead = True
        self.resume()
        await self._stream.aclose()

    # -- trio.abc.Stream -------------------------------------------------------------------

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._flowing.wait()
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._flowing.wait()
        await self._stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self._stream.receive_some(max_bytes)
        # What arrived during a stall stays unread (in this buffer, as in the kernel's).
        await self._flowing.wait()
        return data

    async def aclose(self) -> None:
        self.resume()
        await self._stream.aclose()


async def open_link(
    nursery: trio.Nursery, url: str, *, connect_timeout: float,
    tls: ssl.SSLContext | None = None, headers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[Link, trio_websocket.WebSocketConnection]:
    """Connect to ``url`` (``ws://`` or ``wss://``) and open the OCPP WebSocket over a
    :class:`Link`; trio-websocket's reader runs in ``nursery``. ``tls``: the context for
    ``wss://`` (default: the system's trust store); ``headers``: extra handshake headers
    (``Authorization``).

    Raises:
        OSError, trio_websocket.HandshakeError, trio.TooSlowError: no connection.
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    resource = parts.path + (f"?{parts.query}" if parts.query else "")
    with trio.fail_after(connect_timeout):
        stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
        if secure:
            secured = trio.SSLStream(stream, tls or ssl.create_default_context(),
                                     server_hostname=host, https_compatible=True)
            await secured.do_handshake()
            stream = secured
        link = Link(stream)
        try:
            # trio-websocket types the stream as a socket or TLS stream; it uses only the
            # trio.abc.Stream methods.
            ws = await trio_websocket.wrap_client_stream(
                nursery, cast(trio.SocketStream, link), host, resource,
                subprotocols=[SUBPROTOCOL], extra_headers=headers,
            )
        except BaseException:
            with trio.CancelScope(shield=True):
                await link.aclose()
            raise
    return link, ws
