"""The CSMS WebSocket server over real loopback sockets, with trio-websocket clients and
raw TCP streams for the peers that misbehave below the WebSocket layer.

Synchronisation is by events and ``wait_all_tasks_blocked``, never by sleeping.

The clock is the real one, on purpose: every frame the CSMS sends first waits for a
SQLite commit on aiosqlite's worker thread, and a task waiting on that thread looks
blocked to trio, so ``autojump_clock`` jumps to the next deadline mid-commit (seen here:
watchdogs firing "too slow" on a Heartbeat). The timing claims below are therefore made
with real, generous bounds against a short ``close_timeout``.
"""

from __future__ import annotations

import datetime
import json
import random
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing
import trio_websocket
import wsproto
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

from csms.app import Csms
from csms.config import CsmsConfig

OCPP16 = "ocpp1.6"

BOOT = {"chargePointVendor": "Acme", "chargePointModel": "AC-22"}


def meter_values(connector: int = 1) -> dict[str, Any]:
    return {
        "connectorId": connector,
        "meterValue": [
            {
                "timestamp": "2024-05-01T10:00:00.000Z",
                "sampledValue": [
                    {"value": "1234.5", "unit": "Wh", "measurand": "Energy.Active.Import.Register"},
                    {"value": "16.0", "unit": "A", "measurand": "Current.Import", "phase": "L1"},
                ],
            }
        ],
    }


async def start_csms(nursery: trio.Nursery, **config: Any) -> tuple[Csms, int]:
    service = Csms(CsmsConfig(port=0, **config))
    port: int = await nursery.start(service.serve)
    return service, port


@pytest.fixture
async def csms(nursery: trio.Nursery) -> AsyncIterator[tuple[Csms, int]]:
    service, port = await start_csms(nursery)
    yield service, port
    with trio.fail_after(10):
        await service.shutdown()


def url(port: int, cp_id: str) -> str:
    return f"ws://127.0.0.1:{port}/ocpp/{cp_id}"


def client(port: int, cp_id: str) -> Any:
    return open_websocket_url(url(port, cp_id), subprotocols=[OCPP16])


async def rpc(ws: WebSocketConnection, unique_id: str, action: str, payload: Any) -> Any:
    """Send a CALL and return the next frame, decoded."""
    await ws.send_message(json.dumps([2, unique_id, action, payload]))
    return json.loads(await ws.get_message())


def close_of(closed: pytest.ExceptionInfo[ConnectionClosed]) -> tuple[int, str | None]:
    """The close code and reason a client saw."""
    reason = closed.value.reason
    assert reason is not None
    return reason.code, reason.reason


def assert_time(text: str) -> None:
    assert text.endswith("Z"), text
    datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


async def assert_session_works(ws: WebSocketConnection, tag: str) -> None:
    """BootNotification + Heartbeat + MeterValues, each answered correctly."""
    boot = await rpc(ws, f"{tag}-b", "BootNotification", BOOT)
    assert boot[:2] == [3, f"{tag}-b"], boot
    assert boot[2]["status"] == "Accepted"
    assert boot[2]["interval"] == 300
    assert_time(boot[2]["currentTime"])
    heartbeat = await rpc(ws, f"{tag}-h", "Heartbeat", {})
    assert heartbeat[:2] == [3, f"{tag}-h"], heartbeat
    assert_time(heartbeat[2]["currentTime"])
    assert await rpc(ws, f"{tag}-m", "MeterValues", meter_values()) == [3, f"{tag}-m", {}]


async def wait_until_connected(service: Csms, expected: set[str]) -> None:
    """Let the server settle until exactly ``expected`` charge points are connected."""
    while set(service.connections.connected) != expected:
        await trio.testing.wait_all_tasks_blocked()


# -- raw peers ----------------------------------------------------------------------------


async def raw_handshake(port: int, cp_id: str) -> tuple[trio.SocketStream, wsproto.WSConnection]:
    """A TCP stream that has completed the WebSocket handshake by hand (wsproto)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    request = Request(host=f"127.0.0.1:{port}", target=f"/ocpp/{cp_id}", subprotocols=[OCPP16])
    await stream.send_all(ws.send(request))
    while True:
        data = await stream.receive_some()
        assert data, "server closed during the handshake"
        ws.receive_data(data)
        for event in ws.events():
            assert isinstance(event, AcceptConnection), event
            assert event.subprotocol == OCPP16
            return stream, ws


async def vanish(stream: trio.SocketStream, *, reset: bool) -> None:
    """Close the TCP stream without a WebSocket close; with ``reset``, by an RST."""
    if reset:
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await stream.aclose()


# -- (a) replacement -----------------------------------------------------------------------


async def test_a_second_connection_with_the_same_id_replaces_the_first(
    csms: tuple[Csms, int],
) -> None:
    service, port = csms
    with trio.fail_after(30):
        async with client(port, "CP-R") as first:
            assert (await rpc(first, "1", "BootNotification", BOOT))[0] == 3
            old = service.connections.get("CP-R")
            assert old is not None
            async with client(port, "CP-R") as second:
                with pytest.raises(ConnectionClosed) as closed:
                    await first.get_message()
                assert close_of(closed) == (1000, "replaced by a new connection")
                # Let the old connection's task finish its cleanup: it must not take the
                # new one out of the manager on its way out.
                await trio.testing.wait_all_tasks_blocked()
                new = service.connections.get("CP-R")
                assert new is not None
                assert new is not old
                assert isinstance(second.local, trio_websocket.Endpoint)
                assert new.remote == f"127.0.0.1:{second.local.port}"
                assert service.connections.connected == ["CP-R"]
                await assert_session_works(second, "after")
                assert new.websocket.closed is None
            await wait_until_connected(service, set())


async def test_the_replaced_connection_can_not_send_any_more(csms: tuple[Csms, int]) -> None:
    service, port = csms
    with trio.fail_after(30):
        async with client(port, "CP-R2") as first, client(port, "CP-R2") as second:
            with pytest.raises(ConnectionClosed):
                await first.get_message()
            with pytest.raises(ConnectionClosed):
                await first.send_message('[2, "late", "Heartbeat", {}]')
            heartbeat = await rpc(second, "2", "Heartbeat", {})
            assert heartbeat[:2] == [3, "2"]
            # A third replaces the second in turn.
            async with client(port, "CP-R2") as third:
                with pytest.raises(ConnectionClosed) as closed:
                    await second.get_message()
                assert close_of(closed) == (1000, "replaced by a new connection")
                await assert_session_works(third, "third")
                await trio.testing.wait_all_tasks_blocked()
                assert service.connections.connected == ["CP-R2"]


async def test_the_charge_point_id_is_the_percent_decoded_last_path_segment(
    csms: tuple[Csms, int],
) -> None:
    service, port = csms
    with trio.fail_after(10):
        async with open_websocket_url(
            f"ws://127.0.0.1:{port}/ocpp/CP%3A01%7Ca@b?token=x", subprotocols=[OCPP16]
        ) as ws:
            assert ws.subprotocol == OCPP16
            await assert_session_works(ws, "pct")
            assert service.connections.connected == ["CP:01|a@b"]


# -- (b) oversized frames ------------------------------------------------------------------


async def test_a_frame_over_max_frame_size_closes_only_that_connection_with_1009(
    nursery: trio.Nursery,
) -> None:
    limit = 1024
    service, port = await start_csms(nursery, max_frame_size=limit)
    with trio.fail_after(30):
        async with client(port, "BIG") as big, client(port, "BYSTANDER") as bystander:
            await assert_session_works(bystander, "before")
            # Exactly at the limit is still accepted (JSON whitespace pads the frame).
            head = '[2, "edge", "Heartbeat", {}'
            at_limit = head + " " * (limit - len(head) - 1) + "]"
            assert len(at_limit) == limit
            await big.send_message(at_limit)
            assert json.loads(await big.get_message())[:2] == [3, "edge"]
            # One character more closes the connection.
            await big.send_message(head + " " * (limit - len(head)) + "]")
            with pytest.raises(ConnectionClosed) as closed:
                await big.get_message()
            assert close_of(closed)[0] == 1009
            await wait_until_connected(service, {"BYSTANDER"})
            await assert_session_works(bystander, "after")
            assert bystander.closed is None


# -- (c) isolation -------------------------------------------------------------------------

#: Frames with no readable uniqueId: nobody to answer, the connection stays.
UNREADABLE: list[str | bytes] = [
    "not json at all",
    '[2, "trunc", "Heartbeat", {"a": ',
    "",
    "[]",
    "{}",
    '"a string"',
    "[2]",
    "[null, null, null, null]",
    '[2, {"id": 1}, "Heartbeat", {}]',
    '[2, true, "Heartbeat", {}]',
    "[" * 5000 + "]" * 5000,
    "[1e999999, 1]",
    b"\xff\xfe\x00 binary junk",
]

#: Broken CALLs with a readable uniqueId, and the 1.6 code each must get.
ANSWERED: list[tuple[str, str]] = [
    ('[2, "g1", "Heartbeat"]', "ProtocolError"),
    ('[2, "g2", 42, {}]', "FormationViolation"),
    ('[2, "g3", "Heartbeat", [1, 2]]', "FormationViolation"),
    ('[9, "g4"]', "FormationViolation"),
    ('[2, "g5", "Heartbeat", {"x": 1}]', "FormationViolation"),
    ('[2, "g6", "NoSuchAction", {}]', "NotImplemented"),
    (
        '[2, "g7", "MeterValues", {"connectorId": 1, "meterValue": []}]',
        "OccurenceConstraintViolation",
    ),
    (
        '[2, "g8", "BootNotification", {"chargePointVendor": null, "chargePointModel": "M"}]',
        "TypeConstraintViolation",
    ),
]


class Countdown:
    """An event set once ``tick`` has been called ``n`` times."""

    def __init__(self, n: int) -> None:
        self.left = n
        self.done = trio.Event()
        if n == 0:
            self.done.set()

    def tick(self) -> None:
        self.left -= 1
        if self.left == 0:
            self.done.set()


async def test_isolation_of_200_concurrent_connections(csms: tuple[Csms, int]) -> None:
    """Garbage, vanishing peers and half handshakes do not touch the well-behaved ones."""
    service, port = csms
    kinds = (
        ["good"] * 120
        + ["garbage"] * 30
        + ["mid-frame"] * 20
        + ["handshake-then-vanish"] * 20
        + ["half-handshake"] * 10
    )
    assert len(kinds) == 200
    # Interleaved, so that every kind of peer is in flight next to every other kind.
    random.Random(1009).shuffle(kinds)
    good_ids = {f"good-{i}" for i, kind in enumerate(kinds) if kind == "good"}
    garbage_ids = {f"garbage-{i}" for i, kind in enumerate(kinds) if kind == "garbage"}
    go = trio.Event()
    hostile = Countdown(len(kinds) - len(good_ids) - len(garbage_ids))
    talked = Countdown(len(good_ids) + len(garbage_ids))
    checked = trio.Event()

    async def good(i: int) -> None:
        await go.wait()
        async with client(port, f"good-{i}") as ws:
            await assert_session_works(ws, f"g{i}")
            talked.tick()
            await hostile.done.wait()
            # Still answered after every hostile peer has done its worst.
            assert (await rpc(ws, f"g{i}-late", "Heartbeat", {}))[:2] == [3, f"g{i}-late"]
            await checked.wait()

    async def garbage(i: int) -> None:
        await go.wait()
        async with client(port, f"garbage-{i}") as ws:
            for frame in UNREADABLE:
                await ws.send_message(frame)
            for frame, code in ANSWERED:
                reply = json.loads(await send_then_receive(ws, frame))
                expected_id = json.loads(frame)[1]
                # The reply to each broken CALL comes next: nothing was sent for garbage.
                assert reply[:3] == [4, expected_id, code], (frame, reply)
            await assert_session_works(ws, f"x{i}")
            talked.tick()
            await checked.wait()

    async def mid_frame(i: int) -> None:
        await go.wait()
        try:
            stream, ws = await raw_handshake(port, f"mid-frame-{i}")
            frame = ws.send(TextMessage(data=json.dumps([2, "m", "BootNotification", BOOT])))
            await stream.send_all(frame[: len(frame) // 2])
            await vanish(stream, reset=i % 2 == 0)
        finally:
            hostile.tick()

    async def handshake_then_vanish(i: int) -> None:
        await go.wait()
        try:
            stream, _ = await raw_handshake(port, f"vanish-{i}")
            await vanish(stream, reset=i % 2 == 0)
        finally:
            hostile.tick()

    async def half_handshake(i: int) -> None:
        await go.wait()
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
            request = ws.send(
                Request(host="127.0.0.1", target=f"/ocpp/half-{i}", subprotocols=[OCPP16])
            )
            await stream.send_all(request[: len(request) // 2])
            await vanish(stream, reset=i % 2 == 0)
        finally:
            hostile.tick()

    roles = {
        "good": good,
        "garbage": garbage,
        "mid-frame": mid_frame,
        "handshake-then-vanish": handshake_then_vanish,
        "half-handshake": half_handshake,
    }

    async def guarded(kind: str, i: int) -> None:
        try:
            await roles[kind](i)
        except Exception as exc:
            exc.add_note(f"peer {i} ({kind})")
            raise

    start = trio.current_time()
    with trio.fail_after(20):
        async with trio.open_nursery() as peers:
            for i, kind in enumerate(kinds):
                peers.start_soon(guarded, kind, i)
            go.set()
            await talked.done.wait()
            await hostile.done.wait()
            # Every vanished peer is gone from the manager, every live one is there.
            await wait_until_connected(service, good_ids | garbage_ids)
            for cp_id in garbage_ids:
                conn = service.connections.get(cp_id)
                assert conn is not None
                assert conn.session is not None
                stats = conn.session.statistics()
                assert stats.unreadable_frames == len(UNREADABLE), (cp_id, stats)
                assert stats.errors_sent == len(ANSWERED), (cp_id, stats)
            # The server still takes new charge points.
            async with client(port, "newcomer") as ws:
                await assert_session_works(ws, "new")
                assert "newcomer" in service.connections.connected
            checked.set()
        await wait_until_connected(service, set())
    assert trio.current_time() - start < 10


async def send_then_receive(ws: WebSocketConnection, frame: str) -> str | bytes:
    await ws.send_message(frame)
    return await ws.get_message()


# -- (d) shutdown --------------------------------------------------------------------------


async def test_shutdown_closes_every_websocket_with_1001(nursery: trio.Nursery) -> None:
    close_timeout = 5.0
    service, port = await start_csms(nursery, close_timeout=close_timeout)
    codes: dict[str, tuple[int, str | None]] = {}
    connected = Countdown(5)

    async def charge_point(cp_id: str) -> None:
        async with client(port, cp_id) as ws:
            await assert_session_works(ws, cp_id)
            connected.tick()
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
            codes[cp_id] = close_of(closed)

    with trio.fail_after(20):
        async with trio.open_nursery() as peers:
            for n in range(5):
                peers.start_soon(charge_point, f"CP-{n}")
            await connected.done.wait()
            assert len(service.connections.connected) == 5
            before = trio.current_time()
            await service.shutdown()
            # Peers that answer the closing handshake must not make shutdown wait out
            # close_timeout (it did, when the server was cancelled before the closes).
            assert trio.current_time() - before < close_timeout / 2
        assert codes == {f"CP-{n}": (1001, "server shutting down") for n in range(5)}
        assert service.connections.connected == []
        with pytest.raises(trio_websocket.HandshakeError):
            async with client(port, "too-late"):
                pass


async def test_shutdown_is_bounded_by_a_peer_that_never_answers_the_close(
    nursery: trio.Nursery,
) -> None:
    close_timeout = 0.5
    service, port = await start_csms(nursery, close_timeout=close_timeout)
    with trio.fail_after(20):
        stream, deaf = await raw_handshake(port, "DEAF")
        async with client(port, "POLITE") as polite:
            await wait_until_connected(service, {"DEAF", "POLITE"})
            before = trio.current_time()
            async with trio.open_nursery() as n:
                n.start_soon(service.shutdown)
                with pytest.raises(ConnectionClosed) as closed:
                    await polite.get_message()
                # The polite peer is told at once, not after the deaf one's timeout.
                assert trio.current_time() - before < close_timeout
                assert close_of(closed) == (1001, "server shutting down")
            elapsed = trio.current_time() - before
        # Shutdown waited for the deaf peer, but no longer than its close_timeout
        # (plus the time to close the store).
        assert close_timeout * 0.9 <= elapsed < close_timeout + 2.0
        # The deaf peer was sent its 1001 too, then its TCP stream was closed.
        while chunk := await stream.receive_some():
            deaf.receive_data(chunk)
        closes = [e for e in deaf.events() if isinstance(e, CloseConnection)]
        assert [(e.code, e.reason) for e in closes] == [(1001, "server shutting down")]
        await stream.aclose()


async def test_a_charge_point_that_stops_answering_pings_is_closed_and_recorded(
    nursery: trio.Nursery,
) -> None:
    # A deaf peer (its link died without a close: it reads nothing, answers nothing) is
    # pinged after ping_interval of silence and closed after ping_timeout without a pong;
    # a live peer that only answers pings, and one that keeps talking, stay connected.
    interval, timeout = 0.3, 0.3
    service, port = await start_csms(nursery, ping_interval=interval, ping_timeout=timeout,
                                     close_timeout=0.2)
    with trio.fail_after(20):
        stream, deaf = await raw_handshake(port, "DEAF")
        async with client(port, "QUIET") as quiet, client(port, "CHATTY") as chatty:
            await wait_until_connected(service, {"DEAF", "QUIET", "CHATTY"})
            start = trio.current_time()
            talked = 0
            while "DEAF" in service.connections.connected:
                # CHATTY talks more often than the interval: it is never pinged.
                await rpc(chatty, f"h{talked}", "Heartbeat", {})
                talked += 1
                await trio.testing.wait_all_tasks_blocked(cushion=interval / 3)
            elapsed = trio.current_time() - start
            assert interval + timeout <= elapsed < interval + timeout + 2.0
            assert set(service.connections.connected) == {"QUIET", "CHATTY"}
            assert await rpc(quiet, "q", "Heartbeat", {}) != []  # QUIET still served
        charger = service.state.chargers["DEAF"]
        assert not charger.connected
        assert charger.disconnect_reason == f"no pong within {timeout:g} s"
        # What the deaf peer was sent, had it been listening: pings, then a 1001 close.
        data = b""
        with trio.move_on_after(1):
            while chunk := await stream.receive_some():
                data += chunk
        deaf.receive_data(data)
        events = list(deaf.events())
        kinds = [type(e).__name__ for e in events]
        assert kinds[0] == "Ping" and "Ping" not in kinds[kinds.index("CloseConnection"):]
        close = next(e for e in events if isinstance(e, CloseConnection))
        assert (close.code, close.reason) == (1001, f"no pong within {timeout:g} s")
        await stream.aclose()
