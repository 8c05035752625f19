"""A charger that does not read is noticed by the stream under its WebSocket.

trio-websocket writes each frame with one ``send_all``. A charger that stopped reading
fills the kernel's buffers, and that call never returns: every later frame to it, and the
CALLs of ours waiting their turn, would wait with it. :class:`StallGuard` wraps the
connection's stream and writes in pieces of :data:`PIECE` bytes; when the socket takes no
piece for ``timeout`` seconds, the stream is broken: trio-websocket aborts the WebSocket,
the session ends, and :attr:`StallGuard.stalled` says why (the connection manager
records it as the reason of the disconnection). A charger on a slow link that keeps
taking bytes is never dropped for it, however long a large frame takes.
"""

from __future__ import annotations

import trio

#: Bytes written at a time: a charger is dropped only if it takes none of these for the
#: whole timeout (fewer than PIECE / timeout bytes per second: 136 B/s at 30 s).
PIECE = 4096


class StallGuard(trio.abc.Stream):
    """``stream``, broken once a write makes no progress for ``timeout`` seconds.

    Attributes:
        stalled: why the stream was broken (``not reading: ...``), else None.
    """

    def __init__(self, stream: trio.abc.Stream, timeout: float) -> None:
        self._stream = stream
        self._timeout = timeout
        self.stalled: str | None = None

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Write ``data``, a piece at a time, each within the timeout.

        Raises:
            trio.BrokenResourceError: a piece was not taken in time (now or before).
        """
        if self.stalled is not None:
            raise trio.BrokenResourceError(self.stalled)
        view = memoryview(data)
        if not view:
            await self._stream.send_all(view)
            return
        for start in range(0, len(view), PIECE):
            with trio.move_on_after(self._timeout) as waited:
                await self._stream.send_all(view[start : start + PIECE])
            if waited.cancelled_caught:
                self.stalled = f"not reading: no bytes taken for {self._timeout:g} s"
                raise trio.BrokenResourceError(self.stalled)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self._stream.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self._stream.aclose()
