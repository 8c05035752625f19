"""The stream under a charger's WebSocket drops a charger that takes no bytes for the
call timeout, and never one that keeps taking them, however slowly (issue 19, point 2).
Virtual time over a real socket pair, small buffers, whose far end the test reads."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from csms.ocpp.stall import LOOKS_PER_TIMEOUT, PIECE, StallGuard, StallWatch

TIMEOUT = 30.0


@pytest.fixture
async def pair() -> AsyncIterator[tuple[trio.SocketStream, trio.SocketStream]]:
    """Our end and the charger's, each with the kernel's smallest buffers."""
    ours, theirs = socket.socketpair()
    for sock in (ours, theirs):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, PIECE)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, PIECE)
    streams = (trio.SocketStream(trio.socket.from_stdlib_socket(ours)),
               trio.SocketStream(trio.socket.from_stdlib_socket(theirs)))
    yield streams
    for stream in streams:
        await trio.aclose_forcefully(stream)


@pytest.fixture
async def watch() -> AsyncIterator[StallWatch]:
    """The one task that watches every guard's writes."""
    watch = StallWatch(TIMEOUT)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch.run)
        yield watch
        nursery.cancel_scope.cancel()


async def test_a_charger_that_takes_nothing_is_dropped_after_the_timeout(
    autojump_clock: trio.abc.Clock, pair: tuple[trio.SocketStream, trio.SocketStream],
    watch: StallWatch,
) -> None:
    guard = watch.guard(pair[0])
    start = trio.current_time()
    with pytest.raises(trio.BrokenResourceError):
        # Far more than the buffers hold: the write waits for a reader that never reads.
        await guard.send_all(b"x" * (64 * PIECE))
    # Noticed at the watch's first look at or after the timeout.
    assert TIMEOUT <= trio.current_time() - start <= TIMEOUT * (1 + 1 / LOOKS_PER_TIMEOUT)
    assert guard.stalled == "not reading: no bytes taken for 30 s"
    assert watch.writing == {}
    with pytest.raises(trio.BrokenResourceError):  # and stays broken
        await guard.send_all(b"more")


async def test_a_slow_charger_that_keeps_taking_bytes_is_not(
    autojump_clock: trio.abc.Clock, pair: tuple[trio.SocketStream, trio.SocketStream],
    watch: StallWatch,
) -> None:
    # The charger takes a piece every 10 s (410 B/s: a piece of ours may need two reads,
    # as the kernel counts its own overhead): the frame takes far longer than the 30 s
    # timeout, and it arrives whole.
    frame = bytes(range(256)) * (40 * PIECE // 256)
    guard = watch.guard(pair[0])
    received = bytearray()

    async def read_slowly() -> None:
        while len(received) < len(frame):
            await trio.sleep(10)
            received.extend(await pair[1].receive_some(PIECE))

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_slowly)
        await guard.send_all(frame)
    assert received == frame
    assert trio.current_time() - start > 10 * TIMEOUT
    assert guard.stalled is None
    assert watch.writing == {}


async def test_small_and_empty_writes_pass_through(
    pair: tuple[trio.SocketStream, trio.SocketStream], watch: StallWatch,
) -> None:
    guard = watch.guard(pair[0])
    await guard.send_all(b"")
    await guard.send_all(b"[3,\"1\",{}]")
    assert await pair[1].receive_some() == b"[3,\"1\",{}]"
    assert watch.writing == {}


async def test_a_stream_without_a_socket_under_it_is_refused() -> None:
    ours, _theirs = trio.testing.memory_stream_pair()
    with pytest.raises(TypeError, match="needs a socket"):
        StallGuard(ours, StallWatch(TIMEOUT))
