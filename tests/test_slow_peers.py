"""Slow, deaf and silent peers, seen by one RpcSession (issue 19, points 1, 2 and 4).

A command's deadline covers its wait behind our earlier CALLs; a bounded number may wait;
a CALL that never left is recorded by action, size and hash; a peer that leaves N CALLs
in a row unanswered ends the session. Virtual time (``autojump_clock``) over in-memory
streams: every outcome and its moment is exact.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
from typing import Any

import orjson
import pytest
import trio
import trio.testing

from ocppj import CallTimeout, Direction, NotSent, Router
from ocppj.session import RpcSession

WATCHDOG = 600


class Peer:
    """The far end of a session's stream: it reads what the session sends (unless
    ``deaf``: then every send blocks, as a socket whose buffers are full), answers the
    CALLs whose action is in ``answers``, and may send a CALL of its own."""

    def __init__(self, *, deaf: bool = False, answers: frozenset[str] = frozenset()) -> None:
        self.deaf = deaf
        self.answers = answers
        self.received: list[list[Any]] = []
        self._in_send, self._in_receive = trio.open_memory_channel[str](100)

    async def get_message(self) -> str:
        return await self._in_receive.receive()

    async def send_message(self, message: str | bytes) -> None:
        if self.deaf:
            await trio.sleep_forever()
        frame = json.loads(message)
        self.received.append(frame)
        if frame[0] == 2 and frame[2] in self.answers:
            self._in_send.send_nowait(json.dumps([3, frame[1], {"status": "Accepted"}]))

    def send_call(self, action: str, payload: dict[str, Any]) -> None:
        self._in_send.send_nowait(json.dumps([2, "p1", action, payload]))

    def calls(self) -> list[str]:
        return [frame[2] for frame in self.received if frame[0] == 2]


class Log:
    def __init__(self) -> None:
        self.records: list[tuple[Direction, str]] = []

    async def __call__(self, direction: Direction, text: str, at: datetime.datetime) -> None:
        self.records.append((direction, text))

    def abandoned(self) -> list[dict[str, Any]]:
        return [json.loads(t) for d, t in self.records if d is Direction.ABANDONED]

    def out_calls(self) -> list[str]:
        return [json.loads(t)[2] for d, t in self.records if d is Direction.OUT
                and json.loads(t)[0] == 2]


def _digest(payload: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(payload)).hexdigest()


async def _running(nursery: trio.Nursery, peer: Peer, log: Log, **options: Any) -> RpcSession:
    session = RpcSession(peer, Router(), name="CP", observer=log, **options)
    await nursery.start(session.run)
    return session


async def test_a_deadline_covers_the_wait_behind_an_earlier_call(
    autojump_clock: trio.abc.Clock,
) -> None:
    peer, log = Peer(), Log()
    outcomes: dict[str, Any] = {}
    with trio.fail_after(WATCHDOG):
        async with trio.open_nursery() as nursery:
            session = await _running(nursery, peer, log, call_timeout=30)

            async def first() -> None:
                with pytest.raises(CallTimeout):
                    await session.exchange("Reset", {"type": "Soft"})
                outcomes["first"] = trio.current_time()

            start = trio.current_time()
            nursery.start_soon(first)
            await trio.testing.wait_all_tasks_blocked()
            payload = {"vendorId": "V", "data": "x" * 1000}
            with pytest.raises(NotSent) as info:
                await session.exchange("DataTransfer", payload, timeout=2)
            assert info.value.reason == "deadline"
            assert trio.current_time() - start == 2  # its own deadline, not the first's 30
            await trio.testing.wait_all_tasks_blocked()
            assert outcomes == {}
            nursery.cancel_scope.deadline = start + 100
        assert outcomes["first"] - start == 30
    # It never left, then or later; the log has its summary, not its payload.
    assert peer.calls() == ["Reset"]
    assert log.out_calls() == ["Reset"]
    (not_sent, timeout) = sorted(log.abandoned(), key=lambda r: r["reason"])
    assert not_sent == {
        "uniqueId": not_sent["uniqueId"], "action": "DataTransfer", "reason": "deadline",
        "sent": False, "logged": False,
        "size": len(f'[2,"{not_sent["uniqueId"]}","DataTransfer",') + len(orjson.dumps(payload))
        + 1,
        "sha256": _digest(payload),
    }
    assert timeout["reason"] == "timeout" and timeout["sent"] is True


async def test_only_so_many_calls_wait_for_their_turn(autojump_clock: trio.abc.Clock) -> None:
    peer, log = Peer(), Log()
    with trio.fail_after(WATCHDOG):
        async with trio.open_nursery() as nursery:
            session = await _running(nursery, peer, log, max_queued_calls=2)
            for _ in range(3):  # one outstanding, two waiting
                nursery.start_soon(
                    lambda: session.exchange("ClearCache", {}, timeout=10))
            await trio.testing.wait_all_tasks_blocked()
            start = trio.current_time()
            with pytest.raises(NotSent) as info:
                await session.exchange("ClearCache", {}, timeout=10)
            assert info.value.reason == "queue_full"
            assert trio.current_time() == start  # at once
            nursery.cancel_scope.cancel()
    assert [r["reason"] for r in log.abandoned()][:1] == ["queue_full"]
    assert peer.calls() == ["ClearCache"]


async def test_a_peer_that_answers_nothing_is_dropped_after_three_timeouts(
    autojump_clock: trio.abc.Clock,
) -> None:
    peer, log = Peer(answers=frozenset({"ClearCache"})), Log()
    with trio.fail_after(WATCHDOG):
        async with trio.open_nursery() as nursery:
            session = await _running(nursery, peer, log, drop_after_timeouts=3)
            # An answer in between starts the count again.
            for action in ("Reset", "Reset", "ClearCache", "Reset", "Reset"):
                payload = {"type": "Soft"} if action == "Reset" else {}
                with contextlib.suppress(CallTimeout):
                    await session.exchange(action, payload, timeout=1)
            assert not session.closed
            with pytest.raises(CallTimeout):
                await session.exchange("Reset", {"type": "Soft"}, timeout=1)
            await session.wait_closed()
    assert session.ended_for == (1001, "no answer to 3 CALLs in a row")
    with pytest.raises(NotSent):
        await session.exchange("ClearCache", {})


async def test_a_peer_that_does_not_read_cannot_hold_a_deadline(
    autojump_clock: trio.abc.Clock,
) -> None:
    # Its send hangs (the CSMS's StallGuard ends such a connection, see
    # test_stall_guard.py); the caller's deadline is kept all the same. It may yet arrive,
    # so it is counted as sent.
    peer, log = Peer(deaf=True), Log()
    with trio.fail_after(WATCHDOG):
        async with trio.open_nursery() as nursery:
            session = await _running(nursery, peer, log)
            start = trio.current_time()
            with pytest.raises(CallTimeout):
                await session.exchange("Reset", {"type": "Soft"}, timeout=2)
            assert trio.current_time() - start == 2
            # The next one is written after it (on a WebSocket, behind it): its deadline
            # holds too, and it counts as possibly sent.
            with pytest.raises(CallTimeout):
                await session.exchange("ClearCache", {}, timeout=5)
            assert trio.current_time() - start == 7
            nursery.cancel_scope.cancel()
    assert [(r["reason"], r["sent"]) for r in log.abandoned()] == [("timeout", True)] * 2


async def test_calls_waiting_when_the_peer_is_dropped_are_not_sent(
    autojump_clock: trio.abc.Clock,
) -> None:
    peer, log = Peer(), Log()
    with trio.fail_after(WATCHDOG):
        async with trio.open_nursery() as nursery:
            session = await _running(nursery, peer, log, drop_after_timeouts=2)
            with pytest.raises(CallTimeout):
                await session.exchange("Reset", {"type": "Soft"}, timeout=1)

            async def waiting() -> None:
                with pytest.raises(NotSent) as info:
                    await session.exchange("ClearCache", {}, timeout=60)
                assert info.value.reason == "closed"

            async def second_timeout() -> None:
                with pytest.raises(CallTimeout):
                    await session.exchange("Reset", {"type": "Soft"}, timeout=1)

            async with trio.open_nursery() as inner:
                inner.start_soon(second_timeout)
                await trio.testing.wait_all_tasks_blocked()
                inner.start_soon(waiting)
    assert session.ended_for == (1001, "no answer to 2 CALLs in a row")
    assert peer.calls() == ["Reset", "Reset"]
    assert [r["reason"] for r in log.abandoned()] == ["timeout", "timeout", "not_sent"]
    assert log.abandoned()[-1]["logged"] is False
