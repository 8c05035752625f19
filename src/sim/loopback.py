"""Loopback TCP that looks synchronous to trio: for virtual-time runs, where both ends of
every connection (the fleet and the embedded CSMS) live in this one process.

Why. On an idle machine the kernel hands a loopback segment to the receiving socket inside
the sender's own ``send()`` system call, so by trio's next look at its sockets the peer is
readable. On a busy one the kernel may leave that work to its ``ksoftirqd`` thread, which
runs when the scheduler lets it: the peer becomes readable one or more trio loop turns
later, so it wakes in another batch, after other tasks of the same virtual instant, and
trio's scheduler draws one random number per turn. Wall-clock timing then decides the
order of events at one virtual instant, and the same seed gives another report.

How. Every TCP socket created in the run comes from :class:`LoopbackSockets` (installed
with trio's public :func:`trio.socket.set_custom_socket_factory`). It performs sends,
receives, connects, accepts and closes itself, with trio's public ``wait_readable`` and
``wait_writable``, and after each one, before it lets trio run anything else, waits (in
real time, spinning; microseconds unless the machine is busy) until the kernel shows the
effect at the peer socket of this process: the bytes in its receive queue, the
connection in the listener's accept queue, the end of stream. A peer outside the process
(a real-time run against another CSMS) is never waited for. Linux only (the ioctls below);
elsewhere nothing is waited for, as before.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket as stdlib_socket
import sys
import termios
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio
import trio.lowlevel
import trio.socket

log = logging.getLogger("sim.loopback")

#: Real seconds to wait for the kernel before giving up on one delivery (and logging it).
SETTLE_LIMIT_S = 5.0

_SIOCINQ = termios.FIONREAD
_SIOCOUTQNSD = 0x894B  # Linux: bytes in the send queue not yet handed to the network
_NO_BYTES = bytes(4)
# struct tcp_info: tcpi_state is byte 0; tcpi_unacked (bytes 24-27) is, for a listener,
# its accept queue length.
_TCP_STATE_SYN_SENT = 2
#: States in which the end of stream from the peer has not arrived yet.
_TCP_STATES_OPEN = frozenset({1, 4, 5})  # ESTABLISHED, FIN_WAIT1, FIN_WAIT2

Address = tuple[str, int]
T = TypeVar("T")


def _address(raw: Any) -> Address:
    return (str(raw[0]), int(raw[1]))


# What the spin calls allocates no object the cyclic garbage collector tracks (no tuples,
# lists or closures): however long the kernel makes it spin, the collector then runs at
# the same points of the run, and memory (whose addresses break ties between timers due
# at the same instant, in trio) is laid out the same.


def _ioctl_int(fd: int, request: int) -> int:
    return int.from_bytes(fcntl.ioctl(fd, request, _NO_BYTES), sys.byteorder, signed=True)


def _tcp_state(end: _LoopbackSocket) -> int:
    return end.sock.getsockopt(stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_INFO, 8)[0]


class LoopbackSockets(trio.abc.SocketFactory):
    """The socket factory of a virtual-time run; :attr:`waits` counts the deliveries that
    were not complete when the sender looked (how busy the machine was)."""

    def __init__(self) -> None:
        self._ends: dict[tuple[Address, Address], _LoopbackSocket] = {}
        self._listeners: dict[int, _LoopbackSocket] = {}
        self.waits = 0
        self.timeouts = 0

    def socket(
        self,
        family: stdlib_socket.AddressFamily | int = stdlib_socket.AF_INET,
        type: stdlib_socket.SocketKind | int = stdlib_socket.SOCK_STREAM,
        proto: int = 0,
    ) -> trio.socket.SocketType:
        """A trio socket; TCP ones are watched."""
        sock = stdlib_socket.socket(family, type, proto)
        if type != stdlib_socket.SOCK_STREAM or family not in (
            stdlib_socket.AF_INET, stdlib_socket.AF_INET6
        ):
            return trio.socket.from_stdlib_socket(sock)
        return _LoopbackSocket(self, sock)

    # -- bookkeeping ---------------------------------------------------------------------

    def _connected(self, end: _LoopbackSocket, local: Address, peer: Address) -> None:
        end.local, end.peer = local, peer
        self._ends[(local, peer)] = end
        listener = self._listeners.get(peer[1])
        if listener is not None:
            listener.pending += 1
            self._settle(lambda: listener.accept_queue() >= listener.pending)

    def _accepted(
        self, listener: _LoopbackSocket, end: _LoopbackSocket, local: Address, peer: Address
    ) -> None:
        listener.pending = max(0, listener.pending - 1)
        end.local, end.peer = local, peer
        self._ends[(local, peer)] = end
        client = self.peer_of(end)
        if client is not None:  # what the client sent before we accepted
            self._settle(lambda: _delivered(client, end))

    def listens_on(self, address: Any) -> bool:
        """Whether a listener of this run has ``address``'s port."""
        return int(address[1]) in self._listeners

    def _listening(self, end: _LoopbackSocket, local: Address) -> None:
        end.local = local
        self._listeners[local[1]] = end

    def _forget(self, end: _LoopbackSocket) -> None:
        if end.local is not None and end.peer is not None:
            self._ends.pop((end.local, end.peer), None)
        if end.local is not None and self._listeners.get(end.local[1]) is end:
            del self._listeners[end.local[1]]

    def peer_of(self, end: _LoopbackSocket) -> _LoopbackSocket | None:
        """The other end of ``end``'s connection, if it is a socket of this run."""
        if end.peer is None or end.local is None:
            return None
        return self._ends.get((end.peer, end.local))

    def _settle(self, done: Callable[[], bool]) -> None:
        """Spin (without letting trio run) until ``done()``: the kernel caught up."""
        try:
            if done():
                return
            self.waits += 1
            deadline = time.monotonic() + SETTLE_LIMIT_S
            while not done():
                if time.monotonic() > deadline:
                    self.timeouts += 1
                    log.warning("loopback delivery not seen after %.0f s", SETTLE_LIMIT_S,
                                stack_info=True)
                    return
                os.sched_yield()
        except OSError:  # not Linux, or the socket went away: nothing to wait for
            return


def _taken(receiver: _LoopbackSocket) -> int:
    """The bytes that reached ``receiver``: read, or waiting in its receive queue."""
    return receiver.received + _ioctl_int(receiver.fd, _SIOCINQ)


def _delivered(sender: _LoopbackSocket, receiver: _LoopbackSocket) -> bool:
    """Everything ``sender`` sent is in ``receiver``'s hands, its receive queue, or still
    in ``sender``'s own queue (the receiver's window is full: nothing is in flight)."""
    if receiver.closed or sender.closed:
        return True
    return _taken(receiver) + _ioctl_int(sender.fd, _SIOCOUTQNSD) >= sender.sent


def _writable(end: _LoopbackSocket) -> bool:
    """``end``'s connect finished (or failed)."""
    return _tcp_state(end) != _TCP_STATE_SYN_SENT


def _arrived(sender: _LoopbackSocket, receiver: _LoopbackSocket) -> bool:
    """Every byte ``sender`` sent is at ``receiver`` (nothing queued before a FIN)."""
    return _taken(receiver) >= sender.sent


def _hung_up(receiver: _LoopbackSocket) -> bool:
    """``receiver`` has seen its peer close (end of stream or reset)."""
    if receiver.closed:
        return True
    return _tcp_state(receiver) not in _TCP_STATES_OPEN


class _LoopbackSocket(trio.socket.SocketType):
    """A trio socket whose every effect has reached its in-process peer when it returns."""

    def __init__(self, sockets: LoopbackSockets, sock: stdlib_socket.socket) -> None:
        super().__init__()
        self.sockets = sockets
        self.sock = sock
        self._trio = trio.socket.from_stdlib_socket(sock)  # non-blocking from here on
        self.fd = sock.fileno()
        self.local: Address | None = None
        self.peer: Address | None = None
        self.sent = 0
        self.received = 0
        self.closed = False
        self.pending = 0  # a listener's connections completed but not yet accepted

    def accept_queue(self) -> int:
        """A listener's accept queue length (Linux ``TCP_INFO``)."""
        info = self.sock.getsockopt(stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_INFO, 28)
        return int.from_bytes(info[24:28], sys.byteorder)

    # -- what trio's SocketStream, SocketListener and open_tcp_* use --------------------

    @property
    def family(self) -> stdlib_socket.AddressFamily:
        return self.sock.family

    @property
    def type(self) -> stdlib_socket.SocketKind:
        return self.sock.type

    @property
    def proto(self) -> int:
        return self.sock.proto

    @property
    def did_shutdown_SHUT_WR(self) -> bool:
        return self._trio.did_shutdown_SHUT_WR

    def fileno(self) -> int:
        return self.sock.fileno()

    def getsockname(self) -> Any:
        return self.sock.getsockname()

    def getpeername(self) -> Any:
        return self.sock.getpeername()

    def setsockopt(self, *args: Any) -> None:
        self.sock.setsockopt(*args)

    def getsockopt(self, *args: Any) -> Any:
        return self.sock.getsockopt(*args)

    def is_readable(self) -> bool:
        return self._trio.is_readable()

    async def wait_writable(self) -> None:
        await self._trio.wait_writable()

    async def bind(self, address: Any) -> None:
        await self._trio.bind(address)

    def listen(self, backlog: int = min(stdlib_socket.SOMAXCONN, 128)) -> None:
        self.sock.listen(backlog)
        self.sockets._listening(self, _address(self.sock.getsockname()))

    def __enter__(self) -> _LoopbackSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def detach(self) -> int:
        self.sockets._forget(self)
        self.closed = True
        return self._trio.detach()

    async def connect(self, address: Any) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        local_peer = self.sockets.listens_on(address)
        try:
            self.sock.connect(address)
        except BlockingIOError:
            # A listener of this process: the handshake is the kernel's alone; once it
            # is done, nothing was yielded to trio (which could have accepted already).
            if local_peer:
                self.sockets._settle(lambda: _writable(self))
            if not (local_peer and _settled(lambda: _writable(self))):
                await trio.lowlevel.wait_writable(self.sock)
            error = self.sock.getsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_ERROR)
            if error:
                message = f"Error connecting to {address!r}: {os.strerror(error)}"
                raise OSError(error, message) from None
        self.sockets._connected(
            self, _address(self.sock.getsockname()), _address(self.sock.getpeername())
        )
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def _retry(self, attempt: Callable[[], T],
                     wait: Callable[[stdlib_socket.socket], Awaitable[None]]) -> T:
        """``attempt()`` on the non-blocking socket, waiting with ``wait`` while it would
        block (after a cancellation point, as trio's own socket methods)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                return attempt()
            except BlockingIOError:
                await wait(self.sock)

    async def accept(self) -> tuple[trio.socket.SocketType, Any]:
        sock, address = await self._retry(self.sock.accept, trio.lowlevel.wait_readable)
        end = _LoopbackSocket(self.sockets, sock)
        self.sockets._accepted(self, end, _address(sock.getsockname()), _address(address))
        await trio.lowlevel.cancel_shielded_checkpoint()
        return end, address

    async def send(self, data: Any, flags: int = 0) -> int:
        count = await self._retry(lambda: self.sock.send(data, flags),
                                  trio.lowlevel.wait_writable)
        self.sent += count
        peer = self.sockets.peer_of(self)
        if peer is not None:
            self.sockets._settle(lambda: _delivered(self, peer))
        await trio.lowlevel.cancel_shielded_checkpoint()
        return count

    async def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data = await self._retry(lambda: self.sock.recv(bufsize, flags),
                                 trio.lowlevel.wait_readable)
        self.received += len(data)
        # Reading opened the window: what the peer still held back now flows.
        peer = self.sockets.peer_of(self)
        if peer is not None and data:
            self.sockets._settle(lambda: _delivered(peer, self))
        await trio.lowlevel.cancel_shielded_checkpoint()
        return data

    def shutdown(self, flag: int) -> None:
        peer = self._peer_to_see_the_end()
        self._trio.shutdown(flag)
        if peer is not None and flag in (stdlib_socket.SHUT_WR, stdlib_socket.SHUT_RDWR):
            self.sockets._settle(lambda: _hung_up(peer))

    def close(self) -> None:
        if self.closed:
            return
        peer = self._peer_to_see_the_end()
        self.sockets._forget(self)
        self.closed = True
        self._trio.close()
        if peer is not None:
            self.sockets._settle(lambda: _hung_up(peer))

    def _peer_to_see_the_end(self) -> _LoopbackSocket | None:
        """Before our FIN (or reset) goes out: the in-process peer to wait for until it
        has seen it. A FIN follows the data, so only once every byte we sent has arrived
        (it waits behind them while the peer does not read); asked before, as a reset
        then purges what the peer had not read."""
        peer = self.sockets.peer_of(self)
        if peer is not None and _settled(lambda: _arrived(self, peer)):
            return peer
        return None


def _settled(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except OSError:
        return False

