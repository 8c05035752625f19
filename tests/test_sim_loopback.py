"""The virtual-time runs' loopback sockets: every effect is at the in-process peer before
the sender's task lets trio run anything else, so a busy machine cannot reorder a virtual
instant (the byte-for-byte test under a CPU hog is in test_sim_scenarios)."""

from __future__ import annotations

import socket

import trio
import trio.socket
import trio.testing

from sim.loopback import LoopbackSockets


async def _pair(
    sockets: LoopbackSockets,
) -> tuple[trio.SocketListener, trio.SocketStream, trio.SocketStream]:
    trio.socket.set_custom_socket_factory(sockets)
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listener.socket.getsockname()[1]
    client = await trio.open_tcp_stream("127.0.0.1", port)
    server = await listener.accept()
    return listener, client, server


async def test_sent_bytes_are_readable_at_the_peer_when_send_returns() -> None:
    sockets = LoopbackSockets()
    listener, client, server = await _pair(sockets)
    for size in (1, 4096, 200_000):
        payload = bytes(size)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.send_all, payload)
            received = 0
            while received < size:
                chunk = await server.receive_some(65536)
                received += len(chunk)
        assert received == size
    await client.send_all(b"x")
    assert server.socket.is_readable()  # no checkpoint in between: already delivered
    assert await server.receive_some(10) == b"x"
    await client.aclose()
    assert server.socket.is_readable()  # the end of stream too
    assert await server.receive_some(10) == b""
    await server.aclose()
    await listener.aclose()
    assert sockets.timeouts == 0


async def test_a_connection_is_in_the_accept_queue_when_connect_returns() -> None:
    sockets = LoopbackSockets()
    trio.socket.set_custom_socket_factory(sockets)
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1", backlog=64)
    port = listener.socket.getsockname()[1]
    clients: list[trio.SocketStream] = []

    async def connect() -> None:
        clients.append(await trio.open_tcp_stream("127.0.0.1", port))

    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(connect)
    assert listener.socket.is_readable()
    accepted = [await listener.accept() for _ in range(20)]
    assert not listener.socket.is_readable()
    for client, server in zip(clients, sorted(
        accepted, key=lambda s: [c.socket.getsockname() for c in clients].index(
            s.socket.getpeername())
    ), strict=True):
        await client.send_all(b"hello")
        assert await server.receive_some(5) == b"hello"
    for stream in (*clients, *accepted):
        await stream.aclose()
    await listener.aclose()
    assert sockets.timeouts == 0


async def test_a_peer_outside_the_run_is_never_waited_for() -> None:
    sockets = LoopbackSockets()
    trio.socket.set_custom_socket_factory(sockets)
    # A listener the factory did not make (as another process's would be).
    outside = socket.create_server(("127.0.0.1", 0))
    outside.setblocking(False)
    port = outside.getsockname()[1]
    client = await trio.open_tcp_stream("127.0.0.1", port)
    peer, _ = outside.accept()
    await client.send_all(b"ping")
    assert peer.recv(4) == b"ping"
    await client.aclose()
    peer.close()
    outside.close()
    assert sockets.waits == 0
    assert sockets.timeouts == 0


async def test_a_stalled_peer_does_not_hold_the_sender(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A peer that stops reading (a stalled charger): once its window is full the bytes
    # wait in the sender's queue, which is not "in flight"; the sender blocks as usual.
    sockets = LoopbackSockets()
    listener, client, server = await _pair(sockets)
    sent = 0
    with trio.move_on_after(1):  # jumps once the sender blocks
        while True:
            await client.send_all(bytes(65536))
            sent += 65536
    assert sent > 0
    assert sockets.timeouts == 0
    for stream in (client, server, listener):
        await stream.aclose()
