"""The stream under a charger's WebSocket drops a charger that takes no bytes for the
call timeout, and never one that keeps taking them, however slowly (issue 19, point 2).
Virtual time over a fake link whose speed the test sets."""

from __future__ import annotations

import pytest
import trio

from csms.ocpp.stall import PIECE, StallGuard


class Link(trio.abc.Stream):
    """A socket towards a charger reading ``rate`` bytes per second (0: not at all)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.taken = 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.rate == 0:
            await trio.sleep_forever()
        await trio.sleep(len(data) / self.rate)
        self.taken += len(data)

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.sleep_forever()
        raise AssertionError

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def test_a_charger_that_takes_nothing_is_dropped_after_the_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    guard = StallGuard(Link(rate=0), timeout=30)
    start = trio.current_time()
    with pytest.raises(trio.BrokenResourceError):
        await guard.send_all(b"[2,\"1\",\"Reset\",{\"type\":\"Soft\"}]")
    assert trio.current_time() - start == 30
    assert guard.stalled == "not reading: no bytes taken for 30 s"
    with pytest.raises(trio.BrokenResourceError):  # and stays broken
        await guard.send_all(b"more")


async def test_a_slow_charger_that_keeps_taking_bytes_is_not(
    autojump_clock: trio.abc.Clock,
) -> None:
    # 200 B/s: a 40 KiB frame takes 205 s, far over the 30 s timeout, and each piece of
    # 4 KiB about 20 s: it arrives whole.
    link = Link(rate=200)
    guard = StallGuard(link, timeout=30)
    frame = b"x" * (10 * PIECE)
    start = trio.current_time()
    await guard.send_all(frame)
    assert link.taken == len(frame)
    assert trio.current_time() - start == pytest.approx(len(frame) / 200)
    assert guard.stalled is None


async def test_an_empty_write_passes_through(autojump_clock: trio.abc.Clock) -> None:
    link = Link(rate=100)
    await StallGuard(link, timeout=1).send_all(b"")
    assert link.taken == 0
