"""The CSMS as one supervised trio service: the store, the OCPP server, its connections."""

from __future__ import annotations

import datetime
import functools
import logging
import ssl
from collections.abc import Callable, Mapping

import orjson
import trio

from csms.api import build_app, serve_api
from csms.api.guard import exposure_problem, resolve_token
from csms.authorization import AuthorizationPolicy
from csms.config import CsmsConfig
from csms.domain.state import DomainState
from csms.ocpp.admission import Gate
from csms.ocpp.connection_manager import Connection, ConnectionManager
from csms.ocpp.handlers.context import HandlerContext, VendorHandler
from csms.ocpp.handlers.registry import build_router
from csms.ocpp.keepalive import watch_silence
from csms.ocpp.server import Accepting, serve_ocpp
from csms.ocpp.tls import server_context
from csms.recorder import Recorder
from csms.registry import Registry
from csms.secrets import redact_frame
from csms.smart.service import SmartCharging
from csms.storage.base import Store
from csms.storage.sqlite import open_sqlite_store
from csms.storage.writer_lock import exclusive_writer
from ocppj import Direction, FrameObserver, Router
from ocppj.session import utc_now

log = logging.getLogger("csms")


class Csms:
    """One CSMS instance.

    Start it with ``port = await nursery.start(csms.serve)`` (the OCPP port; the operator
    API's, when configured, is then :attr:`api_port`); stop it with
    :meth:`shutdown`, which closes every charge point's WebSocket with 1001 and returns
    once the service has ended.
    """

    def __init__(
        self,
        config: CsmsConfig,
        *,
        vendors: Mapping[str, VendorHandler] | None = None,
        clock: Callable[[], datetime.datetime] = utc_now,
    ) -> None:
        self.config = config
        self.clock = clock
        if config.unknown_id_tags not in ("Accepted", "Invalid"):
            raise ValueError("unknown_id_tags must be Accepted or Invalid")
        self.policy = AuthorizationPolicy(dict(config.id_tags), config.unknown_id_tags)
        #: Registered charge points and the policies for unknown ones.
        self.registry = Registry(config.unknown_chargers, config.security_profile)
        self.vendors = dict(vendors or {})
        self.connections = ConnectionManager(
            config, self._router_for, self._observer_for, listener=self, clock=clock
        )
        self._recorder: Recorder | None = None
        #: Smart charging, when the site has a limit (None otherwise).
        self.smart: SmartCharging | None = None
        self._cancel_scope: trio.CancelScope | None = None
        self._accepting = Accepting()
        self._stopped = trio.Event()
        self._tls: ssl.SSLContext | None = None
        #: The operator API's bound port, once serving (None: no API).
        self.api_port: int | None = None

    @property
    def recorder(self) -> Recorder:
        """The recorder; exists once :meth:`serve` has reported ready."""
        if self._recorder is None:
            raise RuntimeError("the CSMS is not serving")
        return self._recorder

    @property
    def state(self) -> DomainState:
        """The live domain state."""
        return self.recorder.state

    @property
    def store(self) -> Store:
        """The store the CSMS writes to."""
        return self.recorder.store

    def _router_for(self, conn: Connection) -> Router:
        ctx = HandlerContext(
            conn.charge_point_id, self.config, self.recorder, self.policy, self.vendors, self.clock,
            self.smart, self.registry,
        )
        return build_router(ctx)

    def _observer_for(self, charge_point_id: str) -> FrameObserver:
        store = self.recorder.store

        async def observe(direction: Direction, frame: str, at: datetime.datetime) -> None:
            # Secrets (an AuthorizationKey being set) are not stored (csms.secrets).
            store.append_frame(charge_point_id, direction.value, redact_frame(frame), at)
            if direction is not Direction.IN:
                # A profile of ours on its way, or given up: domain state (the charger
                # may be applying it), committed with the frame.
                self.recorder.call_frame(charge_point_id, direction.value, frame, at)
            if direction is Direction.ABANDONED:
                record = orjson.loads(frame)
                if record.get("logged") and not record.get("sent"):
                    store.forget_unsent(charge_point_id, record["uniqueId"], frame)
            if direction is Direction.OUT:
                # Durability: nothing leaves before the frame (and the state changes the
                # handler queued before it) is committed.
                await store.flush()

        return observe

    # ConnectionListener
    def connected(self, charge_point_id: str, remote: str) -> None:
        """Record the WebSocket opening in the message log."""
        self.recorder.connection(charge_point_id, "connect", self.clock(), remote=remote)

    def disconnected(self, charge_point_id: str, reason: str, *, replaced: bool) -> None:
        """Record the WebSocket closing in the message log."""
        self.recorder.connection(
            charge_point_id, "disconnect", self.clock(), reason=reason, replaced=replaced
        )

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until :meth:`shutdown` or cancellation; reports the listening port.

        Raises:
            ValueError: the configuration is not safe to serve (see
                :func:`csms.api.guard.exposure_problem`), or a TLS file cannot be used
                (:class:`~csms.ocpp.tls.TlsConfigError`); nothing was started.
            DatabaseInUse: another process serves the database file (see
                :mod:`csms.storage.writer_lock`); nothing was started.
        """
        self._tls = None
        if self.config.tls_cert is not None and self.config.tls_key is not None:
            self._tls = server_context(
                self.config.tls_cert, self.config.tls_key, self.config.tls_client_ca
            )
        if self.config.security_profile >= 2 and self._tls is None:
            raise ValueError(f"security profile {self.config.security_profile} needs TLS "
                             "(tls_cert and tls_key)")
        if self.config.security_profile == 3 and self.config.tls_client_ca is None:
            raise ValueError("security profile 3 needs a client CA (tls_client_ca)")
        if self.config.api_port is not None:
            problem = exposure_problem(self.config.api_host, resolve_token(self.config.api_token))
            if problem is not None:
                raise ValueError(problem)
        try:
            with trio.CancelScope() as self._cancel_scope, \
                    exclusive_writer(self.config.db_path):
                async with (
                    open_sqlite_store(
                        self.config.db_path, synchronous=self.config.synchronous,
                        inline=self.config.db_inline,
                    ) as store,
                    trio.open_nursery() as nursery,
                ):
                    self._recorder = Recorder(await store.load_state(), store)
                    self.policy.load(await store.read_id_tags())
                    self.registry.load(await store.read_registrations())
                    self._close_stale_connections()
                    if self.config.ping_interval is not None:
                        nursery.start_soon(watch_silence, self.connections,
                                           self.config.ping_interval, self.config.ping_timeout)
                    site = self.config.site
                    if site.limit_w is not None or site.group_limits_w():
                        self.smart = SmartCharging(
                            site, self._recorder, self.connections, self.clock,
                            call_timeout=self.config.call_timeout,
                        )
                        await nursery.start(self.smart.run)
                    gate = Gate(self.registry, store, self.clock)
                    port: int = await nursery.start(functools.partial(
                        serve_ocpp, self.config, self.connections, gate, tls=self._tls,
                        accepting=self._accepting,
                    ))
                    log.info(
                        "OCPP 1.6J listening on %s://%s:%d%s{chargePointId}",
                        "ws" if self._tls is None else "wss",
                        self.config.host,
                        port,
                        self.config.path_prefix,
                    )
                    if self.config.api_port is not None:
                        token = resolve_token(self.config.api_token)
                        self.api_port = await nursery.start(
                            serve_api, build_app(self, token=token),
                            self.config.api_host, self.config.api_port,
                        )
                    task_status.started(port)
        finally:
            self._stopped.set()

    def _close_stale_connections(self) -> None:
        """Chargers the store shows connected lost their socket when the CSMS last stopped."""
        for charger in list(self.recorder.state.chargers.values()):
            if charger.connected:
                self.recorder.connection(
                    charger.id, "disconnect", self.clock(), reason="CSMS restarted", replaced=False
                )

    @property
    def stopping(self) -> bool:
        """True once :meth:`shutdown` began."""
        return self.connections.closing

    async def shutdown(self) -> None:
        """Stop serving; returns when stopped. In this order:

        1. stop listening: no WebSocket handshake completes from now on;
        2. the API answers new commands 503 (``ShuttingDown``; nothing is sent);
        3. every connection is closed with 1001, all at once, each waiting at most
           ``shutdown_grace`` seconds for its charger to answer the close;
        4. the store commits what it holds (nothing acknowledged is lost).
        """
        self._accepting.stop()
        self.connections.close_all(1001, "server shutting down", wait=self.config.shutdown_grace)
        # Let every connection finish its closing handshake before the server is
        # cancelled: cancelling first would also kill trio-websocket's reader tasks, and
        # each close would then wait for a reply nobody reads.
        with trio.move_on_after(self.config.shutdown_grace):
            await self.connections.wait_all_ended()
        if self._cancel_scope is not None:
            self._cancel_scope.cancel()
            await self._stopped.wait()
