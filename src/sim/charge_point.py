"""A simulated OCPP 1.6J charge point: the trio shell around the pure EVSE, EV, profile,
metering and behaviour cores, talking to the CSMS only over its WebSocket.

It behaves like a real charger:

* boots (retrying after the interval the CSMS gives on Pending / Rejected), reports the
  status of connector 0 and every EVSE after each boot and on every change, heartbeats;
* transaction messages go through one ordered queue that survives connection loss
  (:mod:`sim.tx_queue`);
* when the WebSocket drops it reconnects with capped exponential backoff and jitter;
* the power each EV draws obeys the charging profiles the CSMS installs
  (:mod:`sim.metering`), as far as its :mod:`behaviour <sim.behaviour>` lets it;
* it answers the CSMS's CALLs with the handlers of :mod:`sim.handlers`.

Scenario scripts drive it with :meth:`plug_in`, :meth:`start_session`, :meth:`stop_session`,
:meth:`unplug`, :meth:`fault`, :meth:`clear_fault` and :meth:`drop_connection`.
"""

from __future__ import annotations

import collections
import datetime
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from ocpp.v16 import call

from ocppj import CallError, CallTimeout, RpcSession, SessionClosed
from ocppj.charging import csl_items, parse_units
from ocppj.timestamps import format_timestamp
from sim import metering
from sim.behaviour import IDEAL, Behaviour
from sim.charger_state import (
    ChargePointConfig,
    Reservation,
    SessionRecord,
    SimEvse,
    Transaction,
    TxMessage,
)
from sim.configuration import Configuration
from sim.ev import Ev
from sim.evse import Action, Evse, EvseState
from sim.handlers import build_router
from sim.incidents import Incident
from sim.profiles import ProfileStore
from sim.tx_queue import TransactionQueue
from sim.uplink import Jitter, Uplink
from sim.wheel import Wheel

log = logging.getLogger("sim.charge_point")

__all__ = [
    "ChargePointConfig",
    "Reservation",
    "SessionRecord",
    "SimChargePoint",
    "SimEvse",
    "Transaction",
]


class SimChargePoint:
    """One simulated charge point. Run it with ``await nursery.start(cp.run)``.

    Args:
        config: what it is.
        clock: the wall clock (in-process scenarios pass virtual time).
        rng: the source of all randomness (jitter), seeded by the scenario.
        behaviour: how it departs from an ideal charger (:mod:`sim.behaviour`).
    """

    def __init__(
        self,
        config: ChargePointConfig,
        *,
        clock: Callable[[], datetime.datetime],
        rng: Jitter,
        behaviour: Behaviour = IDEAL,
        wheel: Wheel | None = None,
        incidents: tuple[Incident, ...] = (),
        record: bool = True,
    ) -> None:
        self.config = config
        #: Keep a record of each session and profile received, for the report (a fleet
        #: that runs until stopped keeps none: they would grow without end).
        self.record = record
        #: Every timer of this charger (see sim.wheel).
        self.wheel = wheel if wheel is not None else Wheel()
        self.id = config.id
        if config.clock_skew_s:
            skew = datetime.timedelta(seconds=config.clock_skew_s)
            self._clock: Callable[[], datetime.datetime] = lambda: clock() + skew
        else:
            self._clock = clock
        self.behaviour = behaviour
        #: What happens to it when, counted from its start (sim.incidents).
        self.incidents = incidents
        self.evses: dict[int, SimEvse] = {
            n: SimEvse(n, Evse(f"{config.id} EVSE_{n}"), config.max_power_w, config.phases)
            for n in range(1, config.evses + 1)
        }
        self.profiles = ProfileStore(
            number_of_connectors=config.evses,
            max_stack_level=config.max_stack_level,
            allowed_units=parse_units(config.rate_units) or frozenset({"A"}),
            max_periods=config.max_periods,
            tx_profiles=config.tx_profiles,
        )
        self.configuration = Configuration.default(
            connectors=config.evses,
            heartbeat_interval=config.heartbeat_interval,
            meter_interval=config.meter_interval,
            max_stack_level=config.max_stack_level,
            max_periods=config.max_periods,
            rate_units=config.rate_units,
            authorization_key=config.password or "",
        )
        self.status = "Available"
        #: The local authorization list (idTag → idTagInfo) and its version (0: empty).
        self.local_list: dict[str, dict[str, Any]] = {}
        self.local_list_version = 0
        self.firmware_status = "Idle"
        self.diagnostics_status = "Idle"
        #: The security extension: installed certificates (serial → type, hash data),
        #: the last log upload's and signed firmware update's status and requestId.
        self.certificates: dict[str, tuple[str, dict[str, str]]] = {}
        self.log_status = "Idle"
        self.log_request_id: int | None = None
        self.signed_firmware_status = "Idle"
        self.firmware_request_id: int | None = None
        self.firmware_version = config.firmware_version
        self.sessions: list[SessionRecord] = []
        self.profiles_received: dict[int, list[tuple[datetime.datetime, dict[str, Any]]]] = (
            collections.defaultdict(list)
        )
        self._queue = TransactionQueue(
            self.id,
            attempts=lambda: self.configuration.int_value("TransactionMessageAttempts", 3),
            sleep=self.wheel.sleep,
            retry_interval=lambda: self.configuration.int_value(
                "TransactionMessageRetryInterval", 30
            ),
        )
        #: The connection to the CSMS, across reconnects (sim.uplink).
        self.uplink = Uplink(self, rng)
        self._nursery: trio.Nursery | None = None
        self.router = build_router(self)

    # -- public state --------------------------------------------------------------------

    @property
    def online(self) -> bool:
        """Connected and booted, and the network up."""
        return self.uplink.online

    @property
    def session(self) -> RpcSession | None:
        """The OCPP-J session while connected."""
        return self.uplink.session

    @property
    def connects(self) -> int:
        """How many connections it opened."""
        return self.uplink.connects

    @property
    def calls_sent(self) -> int:
        """OCPP CALLs it sent, over all its connections."""
        return self.uplink.calls_sent

    @property
    def calls_received(self) -> int:
        """OCPP CALLs it received, over all its connections."""
        return self.uplink.calls_received

    @property
    def queued(self) -> int:
        """Transaction messages not yet answered by the CSMS."""
        return len(self._queue)

    @property
    def dropped(self) -> int:
        """Transaction messages given up after TransactionMessageAttempts failures."""
        return self._queue.dropped

    async def wait_queue_empty(self) -> None:
        """Return once every queued transaction message has been answered."""
        await self._queue.wait_empty()

    def evse(self, connector_id: int) -> SimEvse:
        """EVSE ``connector_id`` (1-based).

        Raises:
            KeyError: no such EVSE.
        """
        try:
            return self.evses[connector_id]
        except KeyError:
            raise KeyError(f"{self.id} has no EVSE_{connector_id}") from None

    def now(self) -> datetime.datetime:
        """The charger's clock (skewed by ``config.clock_skew_s``)."""
        return self._clock()

    # -- running -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, boot, serve and reconnect until :meth:`stop` or cancellation."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._meter_loop)
            for incident in self.incidents:
                nursery.start_soon(self.run_incident, incident)
            task_status.started()
            await self.uplink.run()
            nursery.cancel_scope.cancel()

    async def stop(self) -> None:
        """Stop every transaction, deliver the queue (if connected), close the socket."""
        for evse in self.evses.values():
            if evse.transaction is not None:
                await self.stop_session(evse.connector_id, reason="Local")
        if self.online:
            with trio.move_on_after(self.config.call_timeout):
                await self.wait_queue_empty()
        self.uplink.close()

    async def drop_connection(self) -> None:
        """Lose the connection abruptly (as a network failure would); it comes back."""
        await self.go_offline(0.0)

    async def go_offline(self, seconds: float, *, stall: bool = False) -> None:
        """The network fails for ``seconds``: the connection dies without a closing
        handshake (or, with ``stall``, stays open while nothing is read or written).

        The charger goes on charging under the limits in force and queues its transaction
        messages with the times they happened. A dead connection is retried with backoff
        (every attempt failing until the network is back), then the queue is delivered in
        order; a stalled one reads and writes again when the time is up.
        """
        await self.uplink.go_offline(seconds, stall=stall)

    async def run_incident(self, incident: Incident) -> None:
        """Let ``incident`` happen ``at_s`` seconds from now (and every ``every_s``)."""
        await self.wheel.sleep(incident.at_s)
        while True:
            if incident.kind == "offline":
                await self.go_offline(incident.for_s, stall=incident.stall)
            else:
                await self.reboot(lose_transactions=incident.lose_transactions)
            if incident.every_s is None:
                return
            await self.wheel.sleep(incident.every_s)

    async def reboot(self, *, lose_transactions: bool = False) -> None:
        """The charger restarts: its connection drops (no closing handshake) and a new
        BootNotification follows.

        With ``lose_transactions`` it comes back with no memory of its open transactions,
        as firmware that kept no record does: no StopTransaction is ever sent for them,
        the transaction messages it had queued are gone, and their connectors report
        Available. Their records in the report say ``LostInReboot``.
        """
        if lose_transactions:
            now = self._clock()
            self.advance(now)
            lost = self._queue.clear()
            for evse in self.evses.values():
                tx = evse.transaction
                if tx is None:
                    continue
                self._close_record(evse.connector_id, tx, now, "LostInReboot",
                                   evse.register_wh - tx.meter_start)
                evse.transaction = None
                evse.ev = None
                evse.power_w = 0.0
                evse.fsm = Evse(evse.fsm.name)
                self.profiles.transaction_ended(evse.connector_id)
            log.info("%s: rebooted; lost its transactions and %d queued messages", self.id, lost)
        await self.go_offline(0.0)

    def clear_misbehaviour(self) -> None:
        """An ideal charger again: no behaviour, and the network back now."""
        self.behaviour = IDEAL
        self.uplink.network_back()
        self.after(self.reevaluate)

    @property
    def stalled(self) -> bool:
        """The connection is stalled (see :meth:`go_offline`)."""
        return self.uplink.stalled

    def after(self, fn: Callable[[], Awaitable[Any]]) -> None:
        """Run ``fn`` (async) after the current answer went out, under the charger's nursery."""
        if self._nursery is not None:
            self._nursery.start_soon(fn)

    async def deliver_queue(
        self, session: RpcSession, ready: Callable[[], Awaitable[None]]
    ) -> None:
        """Send the transaction queue over ``session`` (see sim.tx_queue)."""
        await self._queue.deliver(session, ready)

    def boot_request(self) -> call.BootNotification:
        """The BootNotification this charger sends."""
        return call.BootNotification(
            charge_point_model=self.config.model,
            charge_point_vendor=self.config.vendor,
            charge_point_serial_number=f"SIM-{self.id}",
            firmware_version=self.firmware_version,
        )

    # -- messages ------------------------------------------------------------------------

    async def call(self, request: Any) -> Any | None:
        """Send a non-transaction message if online; None when offline or unanswered."""
        session = self.session
        if session is None or not self.uplink.booted or self.stalled:
            return None
        try:
            return await session.call(request)
        except (CallTimeout, CallError, SessionClosed) as exc:
            log.info("%s: %s not answered: %s", self.id, type(request).__name__, exc)
            return None

    async def send_status(self, connector_id: int) -> None:
        """Send the StatusNotification of ``connector_id`` (0: the charger as a whole)."""
        if connector_id == 0:
            status, error = self.status, "NoError"
        else:
            evse = self.evses[connector_id]
            status, error = evse.fsm.state.value, evse.error_code
            if evse.reservation is not None and evse.fsm.state is EvseState.AVAILABLE:
                status = "Reserved"
        await self.call(
            call.StatusNotification(
                connector_id=connector_id,
                error_code=error,
                status=status,
                timestamp=format_timestamp(self._clock()),
            )
        )

    def meter_payload(self, evse: SimEvse, context: str) -> dict[str, Any]:
        """A MeterValues payload of ``evse`` now, as this charger meters: the measurands
        MeterValuesSampledData asks for (the CSMS can change it), as far as its meter
        measures them (its behaviour). The StopTransaction's final reading (context
        Transaction.End) carries them all."""
        measurands = None
        if context != "Transaction.End":
            wanted = self.configuration.keys.get("MeterValuesSampledData")
            if wanted is not None:
                measurands = frozenset(csl_items(wanted.value))
        return metering.meter_payload(evse, context, self.behaviour, self._clock(), measurands)

    def _enqueue_meter_values(self, evse: SimEvse) -> None:
        tx = evse.transaction
        if tx is None:
            return
        snapshot = self.meter_payload(evse, "Sample.Periodic")

        def build() -> dict[str, Any]:
            # The transactionId is known only once StartTransaction was answered, which
            # the ordered queue guarantees before this message goes out.
            if tx.transaction_id is not None:
                snapshot["transactionId"] = tx.transaction_id
            return snapshot

        self._queue.put(TxMessage("MeterValues", build))

    # -- physics -------------------------------------------------------------------------

    def advance(self, now: datetime.datetime | None = None) -> list[int]:
        """Integrate every EVSE's energy up to ``now`` (default: the charger's clock) and
        recompute its power.

        Returns the connectors whose OCPP status changed.
        """
        when = self._clock() if now is None else now
        return metering.advance(self.evses.values(), self.profiles, self.behaviour, when)

    async def reevaluate(self) -> None:
        """Apply the limits in force now, and report the EVSEs whose status changed."""
        for connector_id in self.advance():
            await self.send_status(connector_id)

    async def _meter_loop(self) -> None:
        while True:
            interval = self.configuration.int_value(
                "MeterValueSampleInterval", self.config.meter_interval
            )
            if interval <= 0:
                # OCPP: 0 means no sampled MeterValues; look again later.
                await self.wheel.sleep(self.config.meter_interval)
                continue
            await self.wheel.sleep(interval)
            changed = self.advance()
            for evse in self.evses.values():
                if evse.transaction is not None:
                    self._enqueue_meter_values(evse)
            for connector_id in changed:
                await self.send_status(connector_id)

    # -- scenario actions ----------------------------------------------------------------

    async def transition(self, evse: SimEvse, action: Action) -> None:
        """Move ``evse``'s state machine by ``action``; report the status if it changed."""
        before = evse.fsm.state
        evse.fsm = evse.fsm.next(action)
        if evse.fsm.state != before:
            await self.send_status(evse.connector_id)

    async def plug_in(self, connector_id: int, ev: Ev) -> None:
        """An EV is plugged into EVSE ``connector_id`` (Preparing)."""
        evse = self.evse(connector_id)
        await self.transition(evse, Action.PLUG_IN)
        evse.ev = ev
        if evse.pending_remote_tag is not None:
            tag, evse.pending_remote_tag = evse.pending_remote_tag, None
            await self.start_session(connector_id, tag, authorize=False)

    async def authorize(self, id_tag: str) -> str:
        """Authorize ``id_tag`` with the CSMS; offline, the tag is accepted locally."""
        result = await self.call(call.Authorize(id_tag=id_tag))
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
            await self.transition(evse, Action.AUTHORIZE)
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
        self.advance(now)
        tx = Transaction(connector_id, id_tag, round(evse.register_wh), now)
        evse.transaction = tx
        await self.transition(evse, Action.START)
        record = SessionRecord(
            self.id, f"EVSE_{connector_id}", id_tag, now, None, 0.0, 0.0, None, None
        )
        if self.record:
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
            if result.get("idTagInfo", {}).get("status") != "Accepted":
                self.after(functools.partial(self._deauthorized, connector_id, tx))

        self._queue.put(TxMessage("StartTransaction", lambda: payload, started))
        self.advance(now)
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
        self.advance(now)
        evse.transaction = None
        evse.power_w = 0.0
        meter_stop = round(evse.register_wh)
        self._close_record(connector_id, tx, now, reason, float(meter_stop - tx.meter_start))
        final = self.meter_payload(evse, "Transaction.End")["meterValue"]

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

        self._queue.put(TxMessage("StopTransaction", build))
        self.profiles.transaction_ended(connector_id)
        if evse.fsm.state is not EvseState.FAULTED:
            await self.transition(evse, Action.UNPLUG if unplugged else Action.STOP)
        if evse.unavailable_when_free and evse.fsm.state is EvseState.AVAILABLE:
            evse.unavailable_when_free = False
            await self.transition(evse, Action.SET_UNAVAILABLE)

    def _close_record(self, connector_id: int, tx: Transaction, now: datetime.datetime,
                      reason: str, energy_wh: float) -> None:
        """Close the report's record of ``tx``."""
        for record in self.sessions:
            if record.start == tx.started_at and record.evse == f"EVSE_{connector_id}":
                record.stop, record.stop_reason = now, reason
                record.energy_wh = energy_wh
                record.peak_power_w = tx.peak_power_w

    async def unplug(self, connector_id: int) -> None:
        """The EV leaves; a running transaction stops with reason EVDisconnected."""
        evse = self.evse(connector_id)
        if evse.transaction is not None:
            await self.stop_session(connector_id, reason="EVDisconnected", unplugged=True)
        elif evse.fsm.state is not EvseState.AVAILABLE and evse.fsm.can(Action.UNPLUG):
            await self.transition(evse, Action.UNPLUG)
        evse.ev = None
        if evse.unavailable_when_free and evse.fsm.can(Action.SET_UNAVAILABLE):
            evse.unavailable_when_free = False
            await self.transition(evse, Action.SET_UNAVAILABLE)

    async def fault(self, connector_id: int, error_code: str = "OtherError") -> None:
        """EVSE ``connector_id`` faults; a running transaction stops (reason Other)."""
        evse = self.evse(connector_id)
        evse.fsm = evse.fsm.next(Action.FAULT)  # raises before anything changes if illegal
        evse.error_code = error_code
        if evse.transaction is not None:
            await self.stop_session(connector_id, reason="Other")
        await self.send_status(connector_id)

    async def clear_fault(self, connector_id: int) -> None:
        """The fault is gone; the EVSE is Available again (Preparing if an EV is still in)."""
        evse = self.evse(connector_id)
        evse.error_code = "NoError"
        evse.fsm = evse.fsm.next(Action.CLEAR_FAULT)
        if evse.ev is not None:
            evse.fsm = evse.fsm.next(Action.PLUG_IN)
        await self.send_status(connector_id)
