"""A simulated OCPP 1.6J charge point: the trio shell around the pure EVSE, EV and profile
cores, talking to the CSMS only over its WebSocket.

It behaves like a real charger:

* boots (retrying after the interval the CSMS gives on Pending / Rejected), reports the
  status of connector 0 and every EVSE after each boot and on every change, heartbeats;
* transaction messages (StartTransaction, MeterValues of a transaction, StopTransaction)
  go through one ordered queue that survives connection loss: produced offline, they are
  delivered in order after the next boot; one whose answer never came is sent again with
  the same content;
* when the WebSocket drops it reconnects with capped exponential backoff and jitter;
* the power each EV draws obeys the charging profiles the CSMS installs.

Scenario scripts drive it with :meth:`plug_in`, :meth:`start_session`, :meth:`stop_session`,
:meth:`unplug`, :meth:`fault`, :meth:`clear_fault` and :meth:`drop_connection`.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import functools
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio
import trio_websocket
from ocpp.v16 import call, call_result
from ocpp.v16.enums import (
    AvailabilityStatus,
    AvailabilityType,
    CancelReservationStatus,
    ChargingProfileStatus,
    ClearCacheStatus,
    ClearChargingProfileStatus,
    ConfigurationStatus,
    DataTransferStatus,
    GetCompositeScheduleStatus,
    MessageTrigger,
    RegistrationStatus,
    RemoteStartStopStatus,
    ReservationStatus,
    ResetStatus,
    TriggerMessageStatus,
    UnlockStatus,
    UpdateStatus,
)

from ocppj import (
    SUBPROTOCOL,
    CallError,
    CallTimeout,
    Router,
    RpcSession,
    SessionClosed,
    current_call,
)
from ocppj.payloads import converter
from ocppj.timestamps import format_timestamp, parse_timestamp
from sim.configuration import Configuration
from sim.ev import Ev, current_per_phase, power_drawn, step
from sim.evse import Action, Evse, EvseState
from sim.profiles import ProfileStore

log = logging.getLogger("sim.charge_point")

#: Below 6 A per phase an AC EV does not charge (IEC 61851).
MIN_CURRENT_A = 6.0


@attrs.frozen
class ChargePointConfig:
    """What a simulated charge point is.

    Attributes:
        id: its charge point id (``CP_01``).
        url: the CSMS base URL; the charge point connects to ``{url}/{id}``.
        evses: number of EVSEs (connectors 1..N).
        max_power_w: each EVSE's maximum power.
        phases: 1 or 3.
        meter_interval: MeterValueSampleInterval, seconds.
        heartbeat_interval: used until the CSMS gives one.
        backoff_min, backoff_max: reconnect delay bounds, seconds.
        call_timeout: seconds to wait for the CSMS's answer.
        status_step_delay: seconds between the stages of a firmware update or a
            diagnostics upload (Downloading → Downloaded → Installing → Installed).
    """

    id: str
    url: str
    vendor: str = "TrioSim"
    model: str = "AC-22"
    firmware_version: str = "1.0.0"
    evses: int = 2
    max_power_w: float = 22_000.0
    phases: int = 3
    meter_interval: int = 60
    heartbeat_interval: int = 300
    backoff_min: float = 1.0
    backoff_max: float = 60.0
    call_timeout: float = 30.0
    status_step_delay: float = 2.0


@attrs.define
class Reservation:
    """A reservation the CSMS made on an EVSE (ReserveNow, Accepted)."""

    reservation_id: int
    id_tag: str
    parent_id_tag: str | None
    expiry: datetime.datetime


@attrs.define
class Transaction:
    """A transaction as the charge point knows it (its id arrives with the CSMS's answer)."""

    connector_id: int
    id_tag: str
    meter_start: int
    started_at: datetime.datetime
    transaction_id: int | None = None
    peak_power_w: float = 0.0


@attrs.define
class SessionRecord:
    """One finished (or running) session, for the report."""

    charger: str
    evse: str
    id_tag: str
    start: datetime.datetime
    stop: datetime.datetime | None
    energy_wh: float
    peak_power_w: float
    stop_reason: str | None
    transaction_id: int | None


@attrs.define
class SimEvse:
    """One EVSE at run time."""

    connector_id: int
    fsm: Evse
    max_power_w: float
    phases: int
    register_wh: float = 0.0
    ev: Ev | None = None
    transaction: Transaction | None = None
    power_w: float = 0.0
    limit_w: float | None = None
    updated_at: datetime.datetime | None = None
    error_code: str = "NoError"
    pending_remote_tag: str | None = None
    unavailable_when_free: bool = False
    reservation: Reservation | None = None


@attrs.define
class _TxMessage:
    action: str
    build: Callable[[], dict[str, Any]]
    on_result: Callable[[dict[str, Any]], None] | None = None
    payload: dict[str, Any] | None = None


class SimChargePoint:
    """One simulated charge point. Run it with ``await nursery.start(cp.run)``.

    Args:
        config: what it is.
        clock: the wall clock (in-process scenarios pass virtual time).
        rng: the source of all randomness (jitter), seeded by the scenario.
    """

    def __init__(
        self,
        config: ChargePointConfig,
        *,
        clock: Callable[[], datetime.datetime],
        rng: random.Random,
    ) -> None:
        self.config = config
        self.id = config.id
        self._clock = clock
        self._rng = rng
        self.evses: dict[int, SimEvse] = {
            n: SimEvse(n, Evse(f"{config.id} EVSE_{n}"), config.max_power_w, config.phases)
            for n in range(1, config.evses + 1)
        }
        self.profiles = ProfileStore(number_of_connectors=config.evses)
        self.configuration = Configuration.default(
            connectors=config.evses,
            heartbeat_interval=config.heartbeat_interval,
            meter_interval=config.meter_interval,
        )
        self.status = "Available"
        #: The local authorization list (idTag → idTagInfo) and its version (0: empty).
        self.local_list: dict[str, dict[str, Any]] = {}
        self.local_list_version = 0
        self.firmware_status = "Idle"
        self.diagnostics_status = "Idle"
        self.firmware_version = config.firmware_version
        self.sessions: list[SessionRecord] = []
        self.profiles_received: dict[int, list[tuple[datetime.datetime, dict[str, Any]]]] = (
            collections.defaultdict(list)
        )
        self.connects = 0
        #: OCPP CALLs this charger sent and received, over all its connections.
        self.calls_sent = 0
        self.calls_received = 0
        self._queue: collections.deque[_TxMessage] = collections.deque()
        self._queue_changed = trio.Event()
        self._session: RpcSession | None = None
        self._booted = False
        self._connection_scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._stopping = False
        self._idle = trio.Event()
        self._idle.set()
        self.router = self._build_router()

    # -- public state --------------------------------------------------------------------

    @property
    def online(self) -> bool:
        """Connected and booted."""
        return self._session is not None and self._booted and not self._session.closed

    @property
    def queued(self) -> int:
        """Transaction messages not yet answered by the CSMS."""
        return len(self._queue)

    async def wait_queue_empty(self) -> None:
        """Return once every queued transaction message has been answered."""
        while self._queue:
            await self._idle.wait()

    def evse(self, connector_id: int) -> SimEvse:
        """EVSE ``connector_id`` (1-based).

        Raises:
            KeyError: no such EVSE.
        """
        try:
            return self.evses[connector_id]
        except KeyError:
            raise KeyError(f"{self.id} has no EVSE_{connector_id}") from None

    # -- running -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, boot, serve and reconnect until :meth:`stop` or cancellation."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._meter_loop)
            task_status.started()
            await self._connection_loop()
            nursery.cancel_scope.cancel()

    async def stop(self) -> None:
        """Stop every transaction, deliver the queue (if connected), close the socket."""
        for evse in self.evses.values():
            if evse.transaction is not None:
                await self.stop_session(evse.connector_id, reason="Local")
        if self.online:
            with trio.move_on_after(self.config.call_timeout):
                await self.wait_queue_empty()
        self._stopping = True
        if self._connection_scope is not None:
            self._connection_scope.cancel()

    async def drop_connection(self) -> None:
        """Lose the connection abruptly (as a network failure would); it comes back."""
        if self._connection_scope is not None:
            self._connection_scope.cancel()

    async def _connection_loop(self) -> None:
        url = f"{self.config.url.rstrip('/')}/{self.id}"
        attempt = 0
        while not self._stopping:
            try:
                async with trio_websocket.open_websocket_url(
                    url, subprotocols=[SUBPROTOCOL], connect_timeout=10, disconnect_timeout=5
                ) as ws:
                    if ws.subprotocol != SUBPROTOCOL:
                        log.warning("%s: the CSMS did not agree to %s", self.id, SUBPROTOCOL)
                    else:
                        attempt = 0
                        self.connects += 1
                        await self._serve_connection(ws)
            except (
                OSError,
                trio_websocket.HandshakeError,
                trio_websocket.ConnectionClosed,
                trio.BrokenResourceError,
            ) as exc:
                log.info("%s: connection to %s failed: %s", self.id, url, exc)
            except ExceptionGroup as group:
                log.info("%s: connection to %s failed: %s", self.id, url, group)
            if self._stopping:
                return
            delay = min(self.config.backoff_max, self.config.backoff_min * 2 ** min(attempt, 16))
            attempt += 1
            await trio.sleep(delay * (0.5 + self._rng.random() / 2))

    async def _serve_connection(self, ws: trio_websocket.WebSocketConnection) -> None:
        session = RpcSession(
            ws, self.router, name=self.id, call_timeout=self.config.call_timeout, clock=self._clock
        )
        self._session = session
        self._booted = False
        try:
            with trio.CancelScope() as self._connection_scope:
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
            self._booted = False
            self._session = None
            self._connection_scope = None

    async def _online(self, session: RpcSession, nursery: trio.Nursery) -> None:
        interval = await self._boot(session)
        self._booted = True
        await self._send_status(0)
        for connector_id in self.evses:
            await self._send_status(connector_id)
        nursery.start_soon(self._heartbeat_loop, session, interval)
        nursery.start_soon(self._queue_sender, session)

    async def _boot(self, session: RpcSession) -> int:
        request = call.BootNotification(
            charge_point_model=self.config.model,
            charge_point_vendor=self.config.vendor,
            charge_point_serial_number=f"SIM-{self.id}",
            firmware_version=self.firmware_version,
        )
        while True:
            try:
                result = await session.call(request)
            except (CallTimeout, CallError) as exc:
                log.info("%s: BootNotification failed (%s); retrying", self.id, exc)
                await trio.sleep(self.config.heartbeat_interval / 10)
                continue
            if result.status == RegistrationStatus.accepted:
                interval = int(result.interval) or self.config.heartbeat_interval
                self.configuration.change("HeartbeatInterval", str(interval))
                return interval
            log.info("%s: boot %s; retrying in %s s", self.id, result.status, result.interval)
            await trio.sleep(max(int(result.interval), 1))

    async def _heartbeat_loop(self, session: RpcSession, interval: int) -> None:
        # OCPP 1.6 lets a charge point skip a Heartbeat when it sent another message within
        # the interval, as real chargers do while transaction messages flow.
        while True:
            period = self.configuration.int_value("HeartbeatInterval", interval) or interval
            await trio.sleep_until(session.last_call_at + period)
            if trio.current_time() < session.last_call_at + period:
                continue
            try:
                await session.call(call.Heartbeat())
            except (CallTimeout, CallError):
                continue

    async def _queue_sender(self, session: RpcSession) -> None:
        while True:
            while not self._queue:
                self._idle.set()
                await self._queue_changed.wait()
                self._queue_changed = trio.Event()
            message = self._queue[0]
            if message.payload is None:
                # Built once: a message whose answer never came is sent again unchanged.
                message.payload = message.build()
            try:
                result = await session.call_payload(message.action, message.payload)
            except CallTimeout:
                retry = self.configuration.int_value("TransactionMessageRetryInterval", 30)
                await trio.sleep(retry)
                continue
            except CallError as exc:
                log.warning("%s: %s refused (%s); dropped", self.id, message.action, exc)
                self._queue.popleft()
                continue
            self._queue.popleft()
            if message.on_result is not None:
                message.on_result(result)

    def _enqueue(self, message: _TxMessage) -> None:
        self._queue.append(message)
        self._idle = trio.Event()
        self._queue_changed.set()

    # -- messages ------------------------------------------------------------------------

    async def _call(self, request: Any) -> Any | None:
        """Send a non-transaction message if online; None when offline or unanswered."""
        session = self._session
        if session is None or not self._booted:
            return None
        try:
            return await session.call(request)
        except (CallTimeout, CallError, SessionClosed) as exc:
            log.info("%s: %s not answered: %s", self.id, type(request).__name__, exc)
            return None

    async def _send_status(self, connector_id: int) -> None:
        if connector_id == 0:
            status, error = self.status, "NoError"
        else:
            evse = self.evses[connector_id]
            status, error = evse.fsm.state.value, evse.error_code
            if evse.reservation is not None and evse.fsm.state is EvseState.AVAILABLE:
                status = "Reserved"
        await self._call(
            call.StatusNotification(
                connector_id=connector_id,
                error_code=error,
                status=status,
                timestamp=format_timestamp(self._clock()),
            )
        )

    def _meter_payload(self, evse: SimEvse, context: str) -> dict[str, Any]:
        tx = evse.transaction
        sampled: list[dict[str, Any]] = [
            {
                "value": f"{evse.register_wh:.1f}",
                "context": context,
                "measurand": "Energy.Active.Import.Register",
                "location": "Outlet",
                "unit": "Wh",
            },
            {
                "value": f"{evse.power_w:.1f}",
                "context": context,
                "measurand": "Power.Active.Import",
                "location": "Outlet",
                "unit": "W",
            },
        ]
        amps = current_per_phase(evse.power_w, evse.phases)
        for phase in ("L1", "L2", "L3")[: evse.phases]:
            sampled.append(
                {
                    "value": f"{amps:.2f}",
                    "context": context,
                    "measurand": "Current.Import",
                    "phase": phase,
                    "location": "Outlet",
                    "unit": "A",
                }
            )
        if evse.ev is not None:
            sampled.append(
                {
                    "value": f"{evse.ev.soc:.1f}",
                    "context": context,
                    "measurand": "SoC",
                    "location": "EV",
                    "unit": "Percent",
                }
            )
        payload: dict[str, Any] = {
            "connectorId": evse.connector_id,
            "meterValue": [{"timestamp": format_timestamp(self._clock()), "sampledValue": sampled}],
        }
        if tx is not None and tx.transaction_id is not None:
            payload["transactionId"] = tx.transaction_id
        return payload

    def _enqueue_meter_values(self, evse: SimEvse) -> None:
        tx = evse.transaction
        if tx is None:
            return
        snapshot = self._meter_payload(evse, "Sample.Periodic")

        def build() -> dict[str, Any]:
            # The transactionId is known only once StartTransaction was answered, which
            # the ordered queue guarantees before this message goes out.
            if tx.transaction_id is not None:
                snapshot["transactionId"] = tx.transaction_id
            return snapshot

        self._enqueue(_TxMessage("MeterValues", build))

    # -- physics -------------------------------------------------------------------------

    def _advance(self, now: datetime.datetime) -> list[int]:
        """Integrate every EVSE's energy up to ``now`` and recompute its power.

        Returns the connectors whose OCPP status changed.
        """
        changed = []
        for evse in self.evses.values():
            if evse.updated_at is not None and evse.ev is not None and evse.power_w > 0:
                seconds = (now - evse.updated_at).total_seconds()
                evse.ev, energy = step(evse.ev, evse.power_w, seconds)
                evse.register_wh += energy
            evse.updated_at = now
            if self._repower(evse, now):
                changed.append(evse.connector_id)
        return changed

    def _repower(self, evse: SimEvse, now: datetime.datetime) -> bool:
        tx = evse.transaction
        if tx is None or evse.ev is None or not evse.fsm.transaction_possible:
            evse.power_w = 0.0
            return False
        limit = self.profiles.limit(
            evse.connector_id, now=now, transaction_start=tx.started_at, phases=evse.phases
        )
        evse.limit_w = limit
        floor_w = MIN_CURRENT_A * evse.phases * 230.0
        if limit is not None and limit < floor_w:
            limit = 0.0
        evse.power_w = power_drawn(evse.ev, evse.max_power_w, limit)
        tx.peak_power_w = max(tx.peak_power_w, evse.power_w)
        if evse.power_w > 0:
            target = Action.RESUME
        elif limit == 0.0:
            target = Action.SUSPEND_EVSE
        else:
            target = Action.SUSPEND_EV
        before = evse.fsm.state
        evse.fsm = evse.fsm.next(target)
        return evse.fsm.state != before

    async def _meter_loop(self) -> None:
        while True:
            interval = self.configuration.int_value(
                "MeterValueSampleInterval", self.config.meter_interval
            )
            if interval <= 0:
                # OCPP: 0 means no sampled MeterValues; look again later.
                await trio.sleep(self.config.meter_interval)
                continue
            await trio.sleep(interval)
            changed = self._advance(self._clock())
            for evse in self.evses.values():
                if evse.transaction is not None:
                    self._enqueue_meter_values(evse)
            for connector_id in changed:
                await self._send_status(connector_id)

    async def _reevaluate(self) -> None:
        for connector_id in self._advance(self._clock()):
            await self._send_status(connector_id)

    # -- scenario actions ----------------------------------------------------------------

    async def _transition(self, evse: SimEvse, action: Action) -> None:
        before = evse.fsm.state
        evse.fsm = evse.fsm.next(action)
        if evse.fsm.state != before:
            await self._send_status(evse.connector_id)

    async def plug_in(self, connector_id: int, ev: Ev) -> None:
        """An EV is plugged into EVSE ``connector_id`` (Preparing)."""
        evse = self.evse(connector_id)
        await self._transition(evse, Action.PLUG_IN)
        evse.ev = ev
        if evse.pending_remote_tag is not None:
            tag, evse.pending_remote_tag = evse.pending_remote_tag, None
            await self.start_session(connector_id, tag, authorize=False)

    async def authorize(self, id_tag: str) -> str:
        """Authorize ``id_tag`` with the CSMS; offline, the tag is accepted locally."""
        result = await self._call(call.Authorize(id_tag=id_tag))
        if result is None:
            return "Accepted"
        info = result.id_tag_info
        status = info["status"] if isinstance(info, dict) else info.status
        return str(status)

    async def start_session(
        self, connector_id: int, id_tag: str, *, authorize: bool = True
    ) -> bool:
        """Authorize (unless told not to) and start a transaction on a plugged-in EVSE.

        Returns whether the transaction started.
        """
        evse = self.evse(connector_id)
        if authorize:
            await self._transition(evse, Action.AUTHORIZE)
            if await self.authorize(id_tag) != "Accepted":
                return False
        if evse.ev is None:
            raise RuntimeError(f"{evse.fsm.name}: no EV plugged in")
        reservation = evse.reservation
        if reservation is not None:
            if self._clock() >= reservation.expiry:
                evse.reservation = reservation = None
            elif id_tag not in (reservation.id_tag, reservation.parent_id_tag):
                log.info("%s: reserved for another idTag", evse.fsm.name)
                return False
        now = self._clock()
        self._advance(now)
        tx = Transaction(connector_id, id_tag, round(evse.register_wh), now)
        evse.transaction = tx
        await self._transition(evse, Action.START)
        record = SessionRecord(
            self.id, f"EVSE_{connector_id}", id_tag, now, None, 0.0, 0.0, None, None
        )
        self.sessions.append(record)
        payload: dict[str, Any] = {
            "connectorId": connector_id,
            "idTag": id_tag,
            "meterStart": tx.meter_start,
            "timestamp": format_timestamp(now),
        }
        if reservation is not None:
            # The transaction uses the reservation: it ends here.
            payload["reservationId"] = reservation.reservation_id
            evse.reservation = None

        def started(result: dict[str, Any]) -> None:
            tx.transaction_id = int(result["transactionId"])
            record.transaction_id = tx.transaction_id
            if result.get("idTagInfo", {}).get("status") != "Accepted" and self._nursery:
                self._nursery.start_soon(self._deauthorized, connector_id, tx)

        self._enqueue(_TxMessage("StartTransaction", lambda: payload, started))
        self._advance(now)
        return True

    async def _deauthorized(self, connector_id: int, tx: Transaction) -> None:
        evse = self.evse(connector_id)
        if evse.transaction is tx:
            await self.stop_session(connector_id, reason="DeAuthorized")

    async def stop_session(
        self, connector_id: int, *, reason: str = "Local", unplugged: bool = False
    ) -> None:
        """Stop the transaction on EVSE ``connector_id`` (Finishing, or Available if unplugged)."""
        evse = self.evse(connector_id)
        tx = evse.transaction
        if tx is None:
            raise RuntimeError(f"{evse.fsm.name}: no transaction to stop")
        now = self._clock()
        self._advance(now)
        evse.transaction = None
        evse.power_w = 0.0
        meter_stop = round(evse.register_wh)
        for record in self.sessions:
            if record.start == tx.started_at and record.evse == f"EVSE_{connector_id}":
                record.stop, record.stop_reason = now, reason
                record.energy_wh = float(meter_stop - tx.meter_start)
                record.peak_power_w = tx.peak_power_w
        final = self._meter_payload(evse, "Transaction.End")["meterValue"]

        def build() -> dict[str, Any]:
            payload: dict[str, Any] = {
                "meterStop": meter_stop,
                "timestamp": format_timestamp(now),
                "transactionId": tx.transaction_id or 0,
                "reason": reason,
                "transactionData": final,
            }
            if reason not in ("DeAuthorized",):
                payload["idTag"] = tx.id_tag
            return payload

        self._enqueue(_TxMessage("StopTransaction", build))
        self.profiles.transaction_ended(connector_id)
        if evse.fsm.state is not EvseState.FAULTED:
            await self._transition(evse, Action.UNPLUG if unplugged else Action.STOP)
        if evse.unavailable_when_free and evse.fsm.state is EvseState.AVAILABLE:
            evse.unavailable_when_free = False
            await self._transition(evse, Action.SET_UNAVAILABLE)

    async def unplug(self, connector_id: int) -> None:
        """The EV leaves; a running transaction stops with reason EVDisconnected."""
        evse = self.evse(connector_id)
        if evse.transaction is not None:
            await self.stop_session(connector_id, reason="EVDisconnected", unplugged=True)
        elif evse.fsm.state is not EvseState.AVAILABLE and evse.fsm.can(Action.UNPLUG):
            await self._transition(evse, Action.UNPLUG)
        evse.ev = None
        if evse.unavailable_when_free and evse.fsm.can(Action.SET_UNAVAILABLE):
            evse.unavailable_when_free = False
            await self._transition(evse, Action.SET_UNAVAILABLE)

    async def fault(self, connector_id: int, error_code: str = "OtherError") -> None:
        """EVSE ``connector_id`` faults; a running transaction stops (reason Other)."""
        evse = self.evse(connector_id)
        evse.fsm = evse.fsm.next(Action.FAULT)  # raises before anything changes if illegal
        evse.error_code = error_code
        if evse.transaction is not None:
            await self.stop_session(connector_id, reason="Other")
        await self._send_status(connector_id)

    async def clear_fault(self, connector_id: int) -> None:
        """The fault is gone; the EVSE is Available again (Preparing if an EV is still in)."""
        evse = self.evse(connector_id)
        evse.error_code = "NoError"
        evse.fsm = evse.fsm.next(Action.CLEAR_FAULT)
        if evse.ev is not None:
            evse.fsm = evse.fsm.next(Action.PLUG_IN)
        await self._send_status(connector_id)

    # -- answering the CSMS --------------------------------------------------------------

    def _build_router(self) -> Router:
        router = Router()
        handlers: dict[str, Callable[[Any], Any]] = {
            "SetChargingProfile": self._on_set_charging_profile,
            "ClearChargingProfile": self._on_clear_charging_profile,
            "GetCompositeSchedule": self._on_get_composite_schedule,
            "RemoteStartTransaction": self._on_remote_start,
            "RemoteStopTransaction": self._on_remote_stop,
            "ChangeAvailability": self._on_change_availability,
            "TriggerMessage": self._on_trigger_message,
            "Reset": self._on_reset,
            "GetConfiguration": self._on_get_configuration,
            "ChangeConfiguration": self._on_change_configuration,
            "ReserveNow": self._on_reserve_now,
            "CancelReservation": self._on_cancel_reservation,
            "ClearCache": self._on_clear_cache,
            "DataTransfer": self._on_data_transfer,
            "GetDiagnostics": self._on_get_diagnostics,
            "UpdateFirmware": self._on_update_firmware,
            "SendLocalList": self._on_send_local_list,
            "GetLocalListVersion": self._on_get_local_list_version,
            "UnlockConnector": self._on_unlock_connector,
        }
        for action, handler in handlers.items():
            router.register(action, handler)
        return router

    def _after(self, fn: Callable[[], Awaitable[Any]]) -> None:
        """Run ``fn`` (async) after the current answer went out, under our own nursery."""
        if self._nursery is not None:
            self._nursery.start_soon(fn)

    async def _on_set_charging_profile(
        self, request: call.SetChargingProfile
    ) -> call_result.SetChargingProfile:
        connector_id = request.connector_id
        evse = self.evses.get(connector_id)
        tx = evse.transaction if evse is not None else None
        now = self._clock()
        self._advance(now)
        accepted, reason = self.profiles.set(
            connector_id,
            request.cs_charging_profiles,
            transaction_id=tx.transaction_id if tx is not None else None,
            now=now,
        )
        if accepted:
            self.profiles_received[connector_id].append(
                (now, converter.unstructure(request.cs_charging_profiles))
            )
            self._after(self._reevaluate)
        else:
            log.info("%s: SetChargingProfile rejected: %s", self.id, reason)
        status = ChargingProfileStatus.accepted if accepted else ChargingProfileStatus.rejected
        return call_result.SetChargingProfile(status=status)

    async def _on_clear_charging_profile(
        self, request: call.ClearChargingProfile
    ) -> call_result.ClearChargingProfile:
        self._advance(self._clock())
        purpose = request.charging_profile_purpose
        cleared = self.profiles.clear(
            profile_id=request.id,
            connector_id=request.connector_id,
            purpose=str(purpose.value) if purpose is not None else None,
            stack_level=request.stack_level,
        )
        if cleared:
            self._after(self._reevaluate)
        status = (
            ClearChargingProfileStatus.accepted if cleared else ClearChargingProfileStatus.unknown
        )
        return call_result.ClearChargingProfile(status=status)

    async def _on_get_composite_schedule(
        self, request: call.GetCompositeSchedule
    ) -> call_result.GetCompositeSchedule:
        connector_id = request.connector_id
        if connector_id != 0 and connector_id not in self.evses:
            return call_result.GetCompositeSchedule(status=GetCompositeScheduleStatus.rejected)
        evse = self.evses.get(connector_id)
        tx = evse.transaction if evse is not None else None
        unit = request.charging_rate_unit
        now = self._clock()
        schedule = self.profiles.composite_schedule(
            connector_id,
            now=now,
            duration=request.duration,
            unit=str(unit.value) if unit is not None else None,
            transaction_start=tx.started_at if tx is not None else None,
            phases=self.config.phases,
        )
        if schedule is None:
            return call_result.GetCompositeSchedule(status=GetCompositeScheduleStatus.rejected)
        return call_result.GetCompositeSchedule(
            status=GetCompositeScheduleStatus.accepted,
            connector_id=connector_id,
            schedule_start=schedule.get("startSchedule", format_timestamp(now)),
            charging_schedule=schedule,
        )

    async def _on_remote_start(
        self, request: call.RemoteStartTransaction
    ) -> call_result.RemoteStartTransaction:
        candidates = (
            [request.connector_id] if request.connector_id is not None else list(self.evses)
        )
        for connector_id in candidates:
            evse = self.evses.get(connector_id)
            if evse is None or evse.transaction is not None:
                continue
            if evse.fsm.state is EvseState.PREPARING and evse.ev is not None:
                tag = request.id_tag
                self._after(
                    functools.partial(self.start_session, connector_id, tag, authorize=False)
                )
                return call_result.RemoteStartTransaction(status=RemoteStartStopStatus.accepted)
            if evse.fsm.state is EvseState.AVAILABLE:
                # Wait for the EV for ConnectionTimeOut seconds, as a real charger does.
                evse.pending_remote_tag = request.id_tag
                self._after(functools.partial(self._expire_remote_start, evse))
                return call_result.RemoteStartTransaction(status=RemoteStartStopStatus.accepted)
        return call_result.RemoteStartTransaction(status=RemoteStartStopStatus.rejected)

    async def _expire_remote_start(self, evse: SimEvse) -> None:
        await trio.sleep(self.configuration.int_value("ConnectionTimeOut", 60))
        evse.pending_remote_tag = None

    async def _on_remote_stop(
        self, request: call.RemoteStopTransaction
    ) -> call_result.RemoteStopTransaction:
        for evse in self.evses.values():
            tx = evse.transaction
            if tx is not None and tx.transaction_id == request.transaction_id:
                self._after(
                    functools.partial(self.stop_session, evse.connector_id, reason="Remote")
                )
                return call_result.RemoteStopTransaction(status=RemoteStartStopStatus.accepted)
        return call_result.RemoteStopTransaction(status=RemoteStartStopStatus.rejected)

    async def _on_change_availability(
        self, request: call.ChangeAvailability
    ) -> call_result.ChangeAvailability:
        connector_id = request.connector_id
        if connector_id != 0 and connector_id not in self.evses:
            return call_result.ChangeAvailability(status=AvailabilityStatus.rejected)
        targets = list(self.evses.values()) if connector_id == 0 else [self.evses[connector_id]]
        inoperative = request.type == AvailabilityType.inoperative
        scheduled = False
        for evse in targets:
            if inoperative and evse.transaction is not None:
                evse.unavailable_when_free = True
                scheduled = True
            else:
                action = Action.SET_UNAVAILABLE if inoperative else Action.SET_AVAILABLE
                if evse.fsm.can(action):
                    evse.unavailable_when_free = False
                    self._after(functools.partial(self._transition, evse, action))
                elif inoperative:
                    # Finishing, Preparing …: becomes Unavailable once the EV has left.
                    evse.unavailable_when_free = True
                    scheduled = True
                else:
                    evse.unavailable_when_free = False
        if connector_id == 0:
            self.status = "Unavailable" if inoperative else "Available"
            self._after(functools.partial(self._send_status, 0))
        status = AvailabilityStatus.scheduled if scheduled else AvailabilityStatus.accepted
        return call_result.ChangeAvailability(status=status)

    async def _on_trigger_message(self, request: call.TriggerMessage) -> call_result.TriggerMessage:
        what = request.requested_message
        connector_id = request.connector_id
        if connector_id is not None and connector_id != 0 and connector_id not in self.evses:
            return call_result.TriggerMessage(status=TriggerMessageStatus.rejected)
        if what == MessageTrigger.boot_notification:
            self._after(self._triggered_boot)
        elif what == MessageTrigger.heartbeat:
            self._after(functools.partial(self._call, call.Heartbeat()))
        elif what == MessageTrigger.status_notification:
            connectors = [connector_id] if connector_id is not None else [0, *self.evses]
            for c in connectors:
                self._after(functools.partial(self._send_status, c))
        elif what == MessageTrigger.meter_values:
            connectors = [connector_id] if connector_id else list(self.evses)
            self._after(functools.partial(self._triggered_meter_values, connectors))
        elif what == MessageTrigger.diagnostics_status_notification:
            self._after(functools.partial(self._send_diagnostics_status, None))
        elif what == MessageTrigger.firmware_status_notification:
            self._after(functools.partial(self._send_firmware_status, None))
        else:
            return call_result.TriggerMessage(status=TriggerMessageStatus.not_implemented)
        return call_result.TriggerMessage(status=TriggerMessageStatus.accepted)

    async def _triggered_boot(self) -> None:
        session = self._session
        if session is not None:
            await self._call(
                call.BootNotification(
                    charge_point_model=self.config.model,
                    charge_point_vendor=self.config.vendor,
                    charge_point_serial_number=f"SIM-{self.id}",
                    firmware_version=self.firmware_version,
                )
            )

    async def _triggered_meter_values(self, connectors: list[int]) -> None:
        self._advance(self._clock())
        for connector_id in connectors:
            evse = self.evses[connector_id]
            payload = self._meter_payload(evse, "Trigger")
            if evse.transaction is not None and evse.transaction.transaction_id is None:
                del payload["transactionId"]
            session = self._session
            if session is not None and self._booted:
                with contextlib.suppress(CallTimeout, CallError, SessionClosed):
                    await session.call_payload("MeterValues", payload)

    async def _on_reset(self, request: call.Reset) -> call_result.Reset:
        reason = "HardReset" if str(request.type.value) == "Hard" else "SoftReset"
        # The reboot drops the connection: only once the answer has gone out, or the CSMS
        # may never get it.
        reset = functools.partial(self._after, functools.partial(self._reset, reason))
        current_call.get().after_answer.append(reset)
        return call_result.Reset(status=ResetStatus.accepted)

    async def _reset(self, reason: str) -> None:
        for evse in self.evses.values():
            if evse.transaction is not None:
                await self.stop_session(evse.connector_id, reason=reason)
        # Reboot: the connection goes away and a new boot follows.
        await self.drop_connection()

    async def _on_get_configuration(
        self, request: call.GetConfiguration
    ) -> call_result.GetConfiguration:
        known, unknown = self.configuration.get(request.key)
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    async def _on_change_configuration(
        self, request: call.ChangeConfiguration
    ) -> call_result.ChangeConfiguration:
        status = self.configuration.change(request.key, request.value)
        return call_result.ChangeConfiguration(status=ConfigurationStatus(status))

    # -- reservations ----------------------------------------------------------------------

    async def _on_reserve_now(self, request: call.ReserveNow) -> call_result.ReserveNow:
        connector_id = request.connector_id
        evse = self.evses.get(connector_id)
        if evse is None:
            # Connector 0 (the charger as a whole) needs ReserveConnectorZeroSupported,
            # which this charger does not have; an unknown connector cannot be reserved.
            return call_result.ReserveNow(status=ReservationStatus.rejected)
        expiry = parse_timestamp(request.expiry_date)
        if expiry is None:
            return call_result.ReserveNow(status=ReservationStatus.rejected)
        if evse.fsm.state is EvseState.FAULTED:
            return call_result.ReserveNow(status=ReservationStatus.faulted)
        if evse.fsm.state is EvseState.UNAVAILABLE:
            return call_result.ReserveNow(status=ReservationStatus.unavailable)
        held = evse.reservation
        if (
            evse.fsm.state is not EvseState.AVAILABLE
            or evse.transaction is not None
            or (held is not None and held.reservation_id != request.reservation_id)
        ):
            return call_result.ReserveNow(status=ReservationStatus.occupied)
        # The same reservationId elsewhere is replaced by this one (OCPP 1.6, 5.13).
        for other in self.evses.values():
            if (
                other.reservation is not None
                and (other.reservation.reservation_id == request.reservation_id)
                and other is not evse
            ):
                other.reservation = None
                self._after(functools.partial(self._send_status, other.connector_id))
        reservation = Reservation(
            request.reservation_id, request.id_tag, request.parent_id_tag, expiry
        )
        evse.reservation = reservation
        self._after(functools.partial(self._send_status, connector_id))
        self._after(functools.partial(self._expire_reservation, evse, reservation))
        return call_result.ReserveNow(status=ReservationStatus.accepted)

    async def _expire_reservation(self, evse: SimEvse, reservation: Reservation) -> None:
        seconds = (reservation.expiry - self._clock()).total_seconds()
        await trio.sleep(max(0.0, seconds))
        if evse.reservation is reservation:
            evse.reservation = None
            await self._send_status(evse.connector_id)

    async def _on_cancel_reservation(
        self, request: call.CancelReservation
    ) -> call_result.CancelReservation:
        for evse in self.evses.values():
            held = evse.reservation
            if held is not None and held.reservation_id == request.reservation_id:
                evse.reservation = None
                self._after(functools.partial(self._send_status, evse.connector_id))
                return call_result.CancelReservation(status=CancelReservationStatus.accepted)
        return call_result.CancelReservation(status=CancelReservationStatus.rejected)

    # -- authorization cache and local list -------------------------------------------------

    async def _on_clear_cache(self, request: call.ClearCache) -> call_result.ClearCache:
        return call_result.ClearCache(status=ClearCacheStatus.accepted)

    async def _on_send_local_list(self, request: call.SendLocalList) -> call_result.SendLocalList:
        entries = [
            converter.unstructure(entry) if not isinstance(entry, dict) else entry
            for entry in request.local_authorization_list or []
        ]
        if str(getattr(request.update_type, "value", request.update_type)) == "Full":
            self.local_list = {
                e["idTag"]: e["idTagInfo"] for e in entries if e.get("idTagInfo") is not None
            }
        else:
            if request.list_version <= self.local_list_version:
                return call_result.SendLocalList(status=UpdateStatus.version_mismatch)
            for entry in entries:
                if entry.get("idTagInfo") is None:
                    self.local_list.pop(entry["idTag"], None)
                else:
                    self.local_list[entry["idTag"]] = entry["idTagInfo"]
        self.local_list_version = request.list_version
        return call_result.SendLocalList(status=UpdateStatus.accepted)

    async def _on_get_local_list_version(
        self, request: call.GetLocalListVersion
    ) -> call_result.GetLocalListVersion:
        return call_result.GetLocalListVersion(list_version=self.local_list_version)

    # -- vendor messages ------------------------------------------------------------------

    async def _on_data_transfer(self, request: call.DataTransfer) -> call_result.DataTransfer:
        """Only the charger's own vendorId is known; its ``Echo`` message returns the data."""
        if request.vendor_id != self.config.vendor:
            return call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)
        if request.message_id not in (None, "Echo"):
            return call_result.DataTransfer(status=DataTransferStatus.unknown_message_id)
        return call_result.DataTransfer(status=DataTransferStatus.accepted, data=request.data)

    # -- firmware and diagnostics ---------------------------------------------------------

    async def _on_update_firmware(self, request: call.UpdateFirmware) -> call_result.UpdateFirmware:
        self._after(
            functools.partial(
                self._update_firmware, request.location, parse_timestamp(request.retrieve_date)
            )
        )
        return call_result.UpdateFirmware()

    async def _update_firmware(self, location: str, retrieve: datetime.datetime | None) -> None:
        if retrieve is not None:
            await trio.sleep(max(0.0, (retrieve - self._clock()).total_seconds()))
        for status in ("Downloading", "Downloaded", "Installing", "Installed"):
            await self._send_firmware_status(status)
            if status != "Installed":
                await trio.sleep(self.config.status_step_delay)
        # The new version is what the file name says after its last "-", if anything.
        name = location.rstrip("/").rsplit("/", 1)[-1]
        if "-" in name:
            self.firmware_version = name.rsplit("-", 1)[1].removesuffix(".bin")

    async def _send_firmware_status(self, status: str | None) -> None:
        if status is not None:
            self.firmware_status = status
        await self._call(call.FirmwareStatusNotification(status=self.firmware_status))

    async def _on_get_diagnostics(self, request: call.GetDiagnostics) -> call_result.GetDiagnostics:
        stamp = self._clock().astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        file_name = f"diagnostics-{self.id}-{stamp}.log"
        self._after(self._upload_diagnostics)
        return call_result.GetDiagnostics(file_name=file_name)

    async def _upload_diagnostics(self) -> None:
        await self._send_diagnostics_status("Uploading")
        await trio.sleep(self.config.status_step_delay)
        await self._send_diagnostics_status("Uploaded")

    async def _send_diagnostics_status(self, status: str | None) -> None:
        if status is not None:
            self.diagnostics_status = status
        await self._call(call.DiagnosticsStatusNotification(status=self.diagnostics_status))

    # -- the connector lock ---------------------------------------------------------------

    async def _on_unlock_connector(
        self, request: call.UnlockConnector
    ) -> call_result.UnlockConnector:
        evse = self.evses.get(request.connector_id)
        if evse is None:
            # No such connector, so no cable lock to open (connector 0 included).
            return call_result.UnlockConnector(status=UnlockStatus.not_supported)
        if evse.fsm.state in (EvseState.FAULTED, EvseState.UNAVAILABLE):
            return call_result.UnlockConnector(status=UnlockStatus.unlock_failed)
        if evse.transaction is not None:
            # A real charger stops the transaction before it releases the cable.
            self._after(
                functools.partial(self.stop_session, evse.connector_id, reason="UnlockCommand")
            )
        return call_result.UnlockConnector(status=UnlockStatus.unlocked)
