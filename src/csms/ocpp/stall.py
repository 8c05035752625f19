"""A charger that does not read is noticed by the stream under its WebSocket.

trio-websocket writes each frame with one ``send_all``. A charger that stopped reading
fills the kernel's buffers, and that call never returns: every later frame to it, and the
CALLs of ours waiting their turn, would wait with it. :class:`StallGuard` wraps the
connection's stream and writes in pieces of :data:`PIECE` bytes; when the socket takes no
piece for ``timeout`` seconds, the socket is closed: the write fails, trio-websocket
aborts the WebSocket, the session ends, and :attr:`StallGuard.stalled` says why (the
connection manager records it as the reason of the disconnection). A charger on a slow
link that keeps taking bytes is never dropped for it, however long a large frame takes.

No write pays for a timer. One :class:`StallWatch` task looks every ``timeout / 4`` s at
the writes still under way and breaks those whose piece began ``timeout`` s ago or more,
so a charger is dropped between ``timeout`` and ``1.25 * timeout`` s after its socket
took its last piece. (A ``move_on_after`` around each piece cost 6.6-8.5 us per frame,
about 4 % of the CSMS's CPU per MeterValues round trip.)
"""

from __future__ import annotations

import trio

#: Bytes written at a time: a charger is dropped only if it takes none of these for the
#: whole timeout (fewer than PIECE / timeout bytes per second: 136 B/s at 30 s).
PIECE = 4096

#: The watch looks this many times per timeout.
LOOKS_PER_TIMEOUT = 4


def _socket_stream(stream: trio.abc.Stream) -> trio.SocketStream:
    """The TCP stream at the bottom of ``stream`` (under TLS, if any)."""
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    if not isinstance(stream, trio.SocketStream):
        raise TypeError(f"a StallGuard needs a socket under its stream, not {stream!r}")
    return stream


class StallWatch:
    """Breaks the streams of its guards whose write makes no progress for ``timeout`` s.

    :meth:`guard` wraps a connection's stream; :meth:`run` is the one task that watches
    them all.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        #: The guards writing now, each with when its current piece began.
        self.writing: dict[StallGuard, float] = {}

    def guard(self, stream: trio.abc.Stream) -> StallGuard:
        """``stream``, watched (a :class:`trio.SocketStream`, or TLS over one)."""
        return StallGuard(stream, self)

    async def run(self) -> None:
        """Watch until cancelled."""
        while True:
            await trio.sleep(self.timeout / LOOKS_PER_TIMEOUT)
            if not self.writing:
                continue
            now = trio.current_time()
            late = [guard for guard, since in self.writing.items()
                    if since + self.timeout <= now]
            for guard in late:
                guard.break_stalled()


class StallGuard(trio.abc.Stream):
    """``stream``, broken once a write makes no progress for its watch's timeout.

    Attributes:
        stalled: why the stream was broken (``not reading: ...``), else None.
    """

    def __init__(self, stream: trio.abc.Stream, watch: StallWatch) -> None:
        self._stream = stream
        self._socket = _socket_stream(stream).socket
        self._watch = watch
        self.stalled: str | None = None

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Write ``data``, a piece at a time, each within the timeout.

        Raises:
            trio.BrokenResourceError: a piece was not taken in time (now or before).
        """
        if self.stalled is not None:
            raise trio.BrokenResourceError(self.stalled)
        writing = self._watch.writing
        try:
            if len(data) <= PIECE:
                writing[self] = trio.current_time()
                await self._stream.send_all(data)
            else:
                view = memoryview(data)
                for start in range(0, len(view), PIECE):
                    writing[self] = trio.current_time()
                    await self._stream.send_all(view[start : start + PIECE])
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            if self.stalled is not None:
                raise trio.BrokenResourceError(self.stalled) from None
            raise
        finally:
            writing.pop(self, None)

    def break_stalled(self) -> None:
        """Close the socket under a write that made no progress: the write fails."""
        if self.stalled is None:
            self.stalled = f"not reading: no bytes taken for {self._watch.timeout:g} s"
            self._socket.close()  # wakes the blocked write (trio.lowlevel.notify_closing)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self._stream.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self._stream.aclose()
