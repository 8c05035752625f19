"""A simulated charger's connection to the CSMS: connect, boot, heartbeat and deliver the
transaction queue; reconnect with backoff; and fail the way networks do (offline,
stalled). The charger (:class:`sim.charge_point.SimChargePoint`) owns one."""

from __future__ import annotations

import functools
import logging
import math
import random
import ssl
from typing import TYPE_CHECKING, Protocol

import trio
import trio_websocket
from ocpp.v16 import call
from ocpp.v16.enums import RegistrationStatus

from ocppj import SUBPROTOCOL, CallError, CallTimeout, RpcSession
from ocppj.identity import basic_authorization, charge_point_url
from sim.link import Link, open_link

if TYPE_CHECKING:
    from sim.charge_point import SimChargePoint

log = logging.getLogger("sim.charge_point")

#: What ends one connection attempt (the next one follows after a backoff).
_CONNECTION_FAILURES = (
    OSError,
    trio_websocket.HandshakeError,
    trio_websocket.ConnectionClosed,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    trio.TooSlowError,
)


class Jitter(Protocol):
    """What the uplink draws its backoff jitter from (a ``random.Random`` will do)."""

    def random(self) -> float: ...


class LazyRandom:
    """A ``random.Random(seed)`` made at its first draw: the same numbers, but a charger
    that never reconnects never pays for the generator's 2.5 KiB of state (25 MiB at
    10,000 chargers)."""

    __slots__ = ("_rng", "_seed")

    def __init__(self, seed: float) -> None:
        self._seed = seed
        self._rng: random.Random | None = None

    def random(self) -> float:
        """The next number of ``random.Random(seed)``."""
        if self._rng is None:
            self._rng = random.Random(self._seed)
        return self._rng.random()


class Uplink:
    """The connection of ``cp`` to the CSMS, across reconnects.

    Attributes:
        session: the OCPP-J session while connected, else None.
        booted: the CSMS accepted this connection's BootNotification.
        connects: how many connections were opened.
        calls_sent, calls_received: OCPP CALLs over all connections.
    """

    def __init__(self, cp: SimChargePoint, rng: Jitter) -> None:
        self._cp = cp
        self._rng = rng
        self.session: RpcSession | None = None
        self.booted = False
        self.connects = 0
        self.calls_sent = 0
        self.calls_received = 0
        self._link: Link | None = None
        self._scope: trio.CancelScope | None = None
        self._stopping = False
        #: Until when (trio time) the network is down (see go_offline).
        self._offline_until = -math.inf
        self._boot_wait: trio.CancelScope | None = None
        self._tls_context: ssl.SSLContext | None = None

    @property
    def online(self) -> bool:
        """Connected and booted, and the network up."""
        session = self.session
        return (session is not None and self.booted and not session.closed
                and trio.current_time() >= self._offline_until)

    @property
    def stalled(self) -> bool:
        """The connection is stalled (see :meth:`go_offline`)."""
        return self._link is not None and self._link.stalled

    def close(self) -> None:
        """End the connection (with a closing handshake) and do not reconnect."""
        self._stopping = True
        if self._scope is not None:
            self._scope.cancel()

    async def go_offline(self, seconds: float, *, stall: bool = False) -> None:
        """See :meth:`sim.charge_point.SimChargePoint.go_offline`."""
        self._offline_until = max(self._offline_until, trio.current_time() + seconds)
        link = self._link
        if link is None or link.dead:
            return
        if stall:
            link.stall()
            self._cp.after(functools.partial(self._resume_at, link, self._offline_until))
        else:
            await link.die()

    def network_back(self) -> None:
        """The network works again, now."""
        self._offline_until = -math.inf
        if self._link is not None:
            self._link.resume()

    async def _resume_at(self, link: Link, deadline: float) -> None:
        await self._cp.wheel.sleep_until(deadline)
        if trio.current_time() >= self._offline_until:
            link.resume()

    async def run(self) -> None:
        """Connect, serve and reconnect with backoff until :meth:`close`."""
        config = self._cp.config
        url = charge_point_url(config.url, self._cp.id)
        attempt = 0
        while not self._stopping:
            if trio.current_time() < self._offline_until:
                # The network is down: this attempt fails, as a real charger's would.
                log.info("%s: offline; connecting again later", self._cp.id)
            else:
                try:
                    attempt = await self._connect_and_serve(url, attempt)
                except _CONNECTION_FAILURES as exc:
                    log.info("%s: connection to %s failed: %s", self._cp.id, url, exc)
                except ExceptionGroup as group:
                    log.info("%s: connection to %s failed: %s", self._cp.id, url, group)
            if self._stopping:
                return
            delay = min(config.backoff_max, config.backoff_min * 2 ** min(attempt, 16))
            attempt += 1
            await self._cp.wheel.sleep(delay * (0.5 + self._rng.random() / 2))

    async def _connect_and_serve(self, url: str, attempt: int) -> int:
        """One connection, from the TCP connect to its end; the backoff attempt count."""
        async with trio.open_nursery() as nursery:
            link, ws = await open_link(nursery, url, connect_timeout=10, tls=self._tls(),
                                       headers=self._credentials())
            self._link = link
            try:
                if ws.subprotocol != SUBPROTOCOL:
                    log.warning("%s: the CSMS did not agree to %s", self._cp.id, SUBPROTOCOL)
                else:
                    attempt = 0
                    self.connects += 1
                    await self._serve(ws)
            finally:
                self._link = None
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    if not link.dead:
                        await ws.aclose()  # the closing handshake (1000)
                    await link.aclose()
                nursery.cancel_scope.cancel()
        return attempt

    async def _serve(self, ws: trio_websocket.WebSocketConnection) -> None:
        cp = self._cp
        session = RpcSession(ws, cp.router, name=cp.id, call_timeout=cp.config.call_timeout,
                             clock=cp.now)
        self.session = session
        self.booted = False
        try:
            with trio.CancelScope() as self._scope:
                async with trio.open_nursery() as nursery:

                    async def run_session() -> None:
                        await session.run()
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(run_session)
                    nursery.start_soon(self._online, session, nursery)
        finally:
            stats = session.statistics()
            self.calls_sent += stats.calls_sent
            self.calls_received += stats.calls_received
            self.booted = False
            self.session = None
            self._scope = None

    async def _online(self, session: RpcSession, nursery: trio.Nursery) -> None:
        cp = self._cp
        interval = await self._boot(session)
        self.booted = True
        await cp.send_status(0)
        for connector_id in cp.evses:
            await cp.send_status(connector_id)
        nursery.start_soon(self._heartbeat_loop, session, interval)
        nursery.start_soon(cp.deliver_queue, session, self._wait_link)

    async def _wait_link(self) -> None:
        link = self._link
        if link is not None:
            await link.wait_flowing()

    async def _boot(self, session: RpcSession) -> int:
        cp = self._cp
        request = cp.boot_request()
        while True:
            try:
                result = await session.call(request)
            except (CallTimeout, CallError) as exc:
                log.info("%s: BootNotification failed (%s); retrying", cp.id, exc)
                await cp.wheel.sleep(cp.config.heartbeat_interval / 10)
                continue
            if result.status == RegistrationStatus.accepted:
                interval = int(result.interval) or cp.config.heartbeat_interval
                cp.configuration.change("HeartbeatInterval", str(interval))
                return interval
            log.info("%s: boot %s; retrying in %s s", cp.id, result.status, result.interval)
            # A TriggerMessage BootNotification (an operator accepted us) ends the wait.
            with trio.CancelScope() as self._boot_wait:
                await cp.wheel.sleep(max(int(result.interval), 1))
            self._boot_wait = None

    def _credentials(self) -> list[tuple[bytes, bytes]] | None:
        """HTTP Basic with its current AuthorizationKey (profiles 1, 2), if it has one."""
        key = self._cp.configuration.keys.get("AuthorizationKey")
        if key is None or not key.value:
            return None
        return [basic_authorization(self._cp.id, key.value)]

    def _tls(self) -> ssl.SSLContext | None:
        """Its TLS context: the CA it trusts, and its client certificate (profile 3)."""
        config = self._cp.config
        if config.tls_ca is None and config.tls_cert is None:
            return None
        if self._tls_context is None:
            context = ssl.create_default_context(cafile=config.tls_ca)
            if config.tls_cert is not None:
                context.load_cert_chain(config.tls_cert)
            self._tls_context = context
        return self._tls_context

    def boot_now(self) -> None:
        """Send the next BootNotification at once, if one is waiting (not yet accepted)."""
        if self._boot_wait is not None:
            self._boot_wait.cancel()

    async def _heartbeat_loop(self, session: RpcSession, interval: int) -> None:
        # OCPP 1.6 lets a charge point skip a Heartbeat when it sent another message within
        # the interval, as real chargers do while transaction messages flow.
        configuration = self._cp.configuration
        while True:
            period = configuration.int_value("HeartbeatInterval", interval) or interval
            await self._cp.wheel.sleep_until(session.last_call_at + period)
            if trio.current_time() < session.last_call_at + period:
                continue
            try:
                await session.call(call.Heartbeat())
            except (CallTimeout, CallError):
                continue
