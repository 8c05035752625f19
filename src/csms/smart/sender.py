"""The senders: one task beside each charger's connection that carries the smart-charging
service's limits to that charger, one CALL at a time (OCPP-J allows one outstanding).

A sender sends only the newest limit per connector: a limit replaced before it was sent
is never sent, and a slow or dead charger delays nobody else. It tells the ledger
(:mod:`csms.smart.in_force`) of every send and every outcome, and the service of every
acceptance and failure. After a boot, and on the first message of a connection that did
not start with one, it first asks the charger what it takes and installs its safety nets.
"""

from __future__ import annotations

import datetime
import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import trio

from csms.domain import events as ev
from csms.ocpp.connection_manager import Connection
from csms.recorder import Recorder
from csms.smart.allocator import EvseKey
from csms.smart.capabilities import CAPABILITY_KEYS
from csms.smart.profiles import (
    CONNECTOR_DEFAULT_ID_BASE,
    Form,
    charge_point_max_profile,
    enforced_w,
    fallbacks,
    other_unit,
    session_profile,
    tx_default_profile,
)
from ocppj import Answer, CallTimeout, NotSent, OcppjError, SessionClosed
from ocppj.charging import amps_to_watts, csl_items

if TYPE_CHECKING:
    from csms.smart.service import SmartCharging

log = logging.getLogger("csms.smart")


@attrs.define
class Wanted:
    """A session's limit to send: in W, and as the payload of the form it goes in."""

    transaction_id: int
    #: The allocation.
    watts: float
    form: Form
    payload: dict[str, Any]
    #: What the charger enforces with ``payload`` (``watts`` rounded down in its unit).
    enforced: float

    @classmethod
    def build(cls, form: Form, key: EvseKey, transaction_id: int, watts: float,
              phases: int) -> Wanted:
        """The session's limit of ``watts`` in ``form``."""
        payload = session_profile(form, connector_id=key[1], transaction_id=transaction_id,
                                  watts=watts, phases=phases)
        return cls(transaction_id, watts, form, payload, enforced_w(watts, form.unit, phases))


@attrs.define
class _Queue:
    """What one charger should get, and the event that wakes its sender task."""

    wanted: dict[int, Wanted] = attrs.Factory(dict)
    changed: trio.Event = attrs.Factory(trio.Event)
    #: Ask the charger what it takes before the next profile.
    needs_setup: bool = False
    #: No message has arrived on the charger's current connection yet.
    fresh_connection: bool = False
    #: Connectors whose fallback TxDefaultProfile is to be cleared (its session ended).
    clears: set[int] = attrs.Factory(set)


class Senders:
    """The sender tasks of every connection, and what each is to send.

    Args:
        smart: the service whose limits they send.
        recorder: records the chargers' answers.
        clock: the wall clock (virtual in simulations).
        call_timeout: seconds to wait for a charger's answer.
    """

    def __init__(self, smart: SmartCharging, recorder: Recorder,
                 clock: Callable[[], datetime.datetime], *, call_timeout: float) -> None:
        self._smart = smart
        self._recorder = recorder
        self._clock = clock
        self._call_timeout = call_timeout
        #: By charger id.
        self.queues: dict[str, _Queue] = {}
        #: The connection each charger's sender runs on.
        self._live: dict[str, Connection] = {}

    def want(self, key: EvseKey, wanted: Wanted) -> None:
        """Have the charger's sender send ``wanted`` (replacing a limit not yet sent)."""
        queue = self.queues.setdefault(key[0], _Queue())
        queue.wanted[key[1]] = wanted
        queue.changed.set()

    def clear_fallback(self, key: EvseKey) -> None:
        """Have the sender clear the connector's fallback TxDefaultProfile."""
        queue = self.queues.setdefault(key[0], _Queue())
        queue.clears.add(key[1])
        queue.changed.set()

    def wants_setup(self, charger_id: str, events: list[ev.Event]) -> bool:
        """Whether the charger that sent the message of ``events`` is to be asked what it
        takes (:meth:`request_setup`, after the answer): after every accepted boot, and on
        the first message of a connection that did not begin with a boot (a charger that
        reconnects without rebooting keeps its profiles, but may have been replaced)."""
        queue = self.queues.get(charger_id)
        first = queue is not None and queue.fresh_connection
        if queue is not None:
            queue.fresh_connection = False
        for event in events:
            if isinstance(event, ev.ChargerBooted):
                return event.registration_status == "Accepted"
        charger = self._smart.state.chargers.get(charger_id)
        return first and charger is not None and charger.registration_status == "Accepted"

    def request_setup(self, charger_id: str) -> None:
        """Have the charger's sender ask it what it takes before its next profile."""
        queue = self.queues.setdefault(charger_id, _Queue())
        queue.needs_setup = True
        queue.changed.set()

    async def run(self, conn: Connection) -> None:
        """The sender of one connection (a connection task)."""
        cp_id = conn.charge_point_id
        queue = self.queues.setdefault(cp_id, _Queue())
        queue.fresh_connection = True
        queue.needs_setup = False
        self._drop_wanted(cp_id, queue)
        self._live[cp_id] = conn
        self._smart.request_rebalance()  # online again: its limits can be changed
        try:
            while True:
                await queue.changed.wait()
                queue.changed = trio.Event()
                if queue.needs_setup:
                    queue.needs_setup = False
                    await self._setup(conn)
                while queue.clears:
                    await self._clear(conn, queue.clears.pop())
                while queue.wanted:
                    connector_id = min(queue.wanted)
                    wanted = queue.wanted.pop(connector_id)
                    await self._send(conn, connector_id, wanted)
        finally:
            if self._live.get(cp_id) is conn:
                # Offline: its sessions count at the most it may be enforcing until it is
                # back and accepts new limits.
                del self._live[cp_id]
                self._drop_wanted(cp_id, queue)
                self._smart.request_rebalance()

    def _drop_wanted(self, cp_id: str, queue: _Queue) -> None:
        """Forget the limits queued for a charger and not sent (its connection ended)."""
        for connector_id, wanted in queue.wanted.items():
            self._smart.ledger.unqueue((cp_id, connector_id), wanted.transaction_id)
        queue.wanted.clear()

    async def _exchange(self, conn: Connection, action: str, payload: dict[str, Any],
                        late: Callable[[Answer], None] | None = None) -> Answer:
        """Send a CALL of ours and record the answer (raises as ``session.exchange``);
        ``late`` hears an answer that comes after the call timeout (recorded too)."""
        session = conn.session
        if session is None:
            raise SessionClosed(f"{conn.charge_point_id}: no session")
        given_up = False

        def record(answer: Answer) -> None:
            # Called by the reader as the answer is read: the domain applies it in the
            # order of the message log, as replay will.
            error = str(answer.error.code) if answer.error is not None else None
            self._recorder.answer(
                conn.charge_point_id, action, payload, answer.payload, error, answer.answered_at
            )
            if given_up and late is not None:
                late(answer)

        try:
            return await session.exchange(
                action, payload, timeout=self._call_timeout, on_answer=record
            )
        except CallTimeout:
            given_up = True
            raise

    def safety_profiles(self, charger_id: str, unit: str) -> list[dict[str, Any]]:
        """The SetChargingProfile payloads installed after a boot, in ``unit``: a
        TxDefaultProfile on connector 0 at ``safe_limit_a_per_phase``, and a
        ChargePointMaxProfile at the site's (or group's) limit."""
        # Connector 0 stands for every EVSE: rated as the first one.
        _, phases, _ = self._smart.site.rating(charger_id, 1)
        payloads = []
        safe_a = self._smart.site.safe_limit_a_per_phase
        if safe_a is not None:
            watts = amps_to_watts(safe_a, phases)
            payloads.append(tx_default_profile(watts=watts, unit=unit, phases=phases))
        cap = self._smart.site.cap_w(charger_id)
        if self._smart.site.charge_point_max_profile and cap is not None:
            payloads.append(
                charge_point_max_profile(watts=cap, unit=unit, phases=phases, now=self._clock())
            )
        return payloads

    async def _setup(self, conn: Connection) -> None:
        """Ask the charger what profiles it takes (recorded: the domain keeps the answer),
        then install its safety nets."""
        cp_id = conn.charge_point_id
        self._smart.safety_w.pop(cp_id, None)  # until it accepts it again
        try:
            answer = await self._exchange(conn, "GetConfiguration", {"key": list(CAPABILITY_KEYS)})
            if answer.error is not None:
                # Some chargers refuse a list of keys (or one this long): ask for all.
                log.info("%s: GetConfiguration of the capability keys answered %s; asking for "
                         "every key", cp_id, answer.error.code)
                await self._exchange(conn, "GetConfiguration", {})
        except CallTimeout:
            log.warning("%s: no answer to GetConfiguration; its profiles go in the unit "
                        "configured, or A", cp_id)
        except (SessionClosed, OcppjError) as exc:
            log.info("%s: GetConfiguration not sent: %s", cp_id, exc)
            return
        capabilities = self._smart.capabilities(cp_id)
        if capabilities.units is None:
            charger = self._smart.state.chargers.get(cp_id)
            key = "ChargingScheduleAllowedChargingRateUnit"
            reported = charger.configuration.get(key) if charger else None
            log.warning("%s: no %s we can read (%r); its profiles go in the unit configured, "
                        "or A", cp_id, key, reported)
        _, phases, configured = self._smart.site.rating(cp_id, 1)
        unit = capabilities.unit(configured)
        first = self.safety_profiles(cp_id, unit)
        # A charger that did not say which unit it takes may take only the other one.
        retry = configured is None and capabilities.units is None
        second = self.safety_profiles(cp_id, other_unit(unit)) if retry else []
        for index, payload in enumerate(first):
            purpose = payload["csChargingProfiles"]["chargingProfilePurpose"]
            for attempt in [payload, second[index]] if retry else [payload]:
                # No answer: it does not answer SetChargingProfile, and its TxProfiles
                # wait no longer.
                status = await self._setup_call(conn, "SetChargingProfile", attempt,
                                                f"the {purpose} safety net")
                if status is None:
                    return
                if status == "Accepted":
                    if purpose == "TxDefaultProfile" and self._smart.site.safe_limit_a_per_phase:
                        safe_a = self._smart.site.safe_limit_a_per_phase
                        self._smart.safety_w[cp_id] = amps_to_watts(safe_a, phases)
                    break
                log.warning("%s: the %s safety net answered %s", cp_id, purpose, status)
        await self._meter_settings(conn)

    async def _meter_settings(self, conn: Connection) -> None:
        """Set the metering keys the site file asks for (``meter_values_sampled_data``,
        ``meter_value_sample_interval_s``) where the charger reported other values; the
        answers are recorded, and an accepted one is the charger's configuration."""
        cp_id = conn.charge_point_id
        charger = self._smart.state.chargers.get(cp_id)
        reported = charger.configuration if charger is not None else {}
        for key, value in self._smart.site.meter_settings().items():
            if _same_setting(reported.get(key), value):
                continue
            status = await self._setup_call(conn, "ChangeConfiguration",
                                            {"key": key, "value": value}, key)
            if status is None:
                return
            if status != "Accepted":
                # RebootRequired: it takes effect at its next boot. Rejected, NotSupported:
                # it meters as it does (power comes from its energy register, if need be).
                log.warning("%s: ChangeConfiguration %s=%s answered %s", cp_id, key, value,
                            status)

    async def _setup_call(self, conn: Connection, action: str, payload: dict[str, Any],
                          what: str) -> str | None:
        """One CALL of the charger's setup: its answer's status, or None (logged) when
        it got no answer or was not sent; the setup then stops."""
        cp_id = conn.charge_point_id
        try:
            return _status(await self._exchange(conn, action, payload))
        except CallTimeout:
            log.warning("%s: no answer to %s (%s)", cp_id, action, what)
        except (SessionClosed, OcppjError) as exc:
            log.info("%s: %s (%s) not sent: %s", cp_id, action, what, exc)
        return None

    async def _clear(self, conn: Connection, connector_id: int) -> None:
        """Clear the fallback TxDefaultProfile of a connector whose session ended."""
        payload = {"id": CONNECTOR_DEFAULT_ID_BASE + connector_id}
        try:
            answer = await self._exchange(conn, "ClearChargingProfile", payload)
        except (CallTimeout, SessionClosed, OcppjError) as exc:
            log.warning("%s EVSE_%d: fallback profile not cleared: %s",
                        conn.charge_point_id, connector_id, exc)
            return
        if answer.error is not None:
            log.warning("%s EVSE_%d: ClearChargingProfile answered %s", conn.charge_point_id,
                        connector_id, answer.error.code)

    async def _send(self, conn: Connection, connector_id: int, wanted: Wanted) -> None:
        key = (conn.charge_point_id, connector_id)
        tx = wanted.transaction_id
        if (conn.session is None or self._smart.state.open_sessions.get(key) != tx
                or not self._smart.controllable(key, tx)):
            # The session ended meanwhile, or its charger refused its profile since.
            self._smart.ledger.unqueue(key, tx)
            return
        status = await self._try(conn, key, wanted)
        if status is None:
            return  # not sent, or no answer: handled
        if status == "Accepted":
            self._smart.accepted(key, wanted)
            return
        if await self._fall_back(conn, key, wanted, status):
            return
        self._smart.failed(key, tx, f"SetChargingProfile answered {status}")

    async def _try(self, conn: Connection, key: EvseKey, wanted: Wanted) -> str | None:
        """Send one form of the session's limit: its status (Accepted, Rejected, ... or
        a CALLERROR code), or None when it got no answer."""
        tx = wanted.transaction_id
        self._smart.ledger.sending(key, tx, wanted.enforced)
        try:
            sent = self._smart.ledger.get(key, tx).sent
            answer = await self._exchange(conn, "SetChargingProfile", wanted.payload,
                                          late=functools.partial(self._late, key, wanted, sent))
        except CallTimeout:
            # It may have applied it, and may yet answer: counted at it until a later
            # limit is accepted.
            self._smart.ledger.unanswered(key, tx)
            self._smart.failed(key, tx, "no answer to SetChargingProfile")
            return None
        except NotSent as exc:
            # It never left (its deadline passed behind other CALLs, or the connection
            # closed first): what was in force stays; tried again after a backoff.
            self._smart.ledger.refused(key, tx)
            if exc.reason != "closed":
                self._smart.failed(key, tx, f"SetChargingProfile not sent ({exc.reason})")
            return None
        except SessionClosed as exc:
            self._smart.ledger.unanswered(key, tx)
            log.info("%s EVSE_%d: SetChargingProfile not answered: %s", *key, exc)
            return None
        except OcppjError as exc:
            self._smart.ledger.refused(key, tx)  # refused by our own checks: nothing was sent
            log.error("%s EVSE_%d: SetChargingProfile not sent: %s", *key, exc)
            return None
        status = _status(answer)
        if status != "Accepted":
            self._smart.ledger.refused(key, tx)
        return status

    def _late(self, key: EvseKey, wanted: Wanted, sent: int, answer: Answer) -> None:
        """An answer after the call timeout: an Accepted is honoured (in force, and the
        session controlled again); a refusal changes nothing."""
        status = _status(answer)
        log.info("%s EVSE_%d: SetChargingProfile answered %s after the call timeout",
                 *key, status)
        if status == "Accepted" and self._smart.state.open_sessions.get(key) == \
                wanted.transaction_id:
            self._smart.accepted_late(key, wanted, sent)

    async def _fall_back(
        self, conn: Connection, key: EvseKey, wanted: Wanted, status: str
    ) -> bool:
        """After a refusal, try the session's limit in the other forms; whether one was
        accepted (it is then used for the rest of the session)."""
        _, phases, configured = self._smart.site.rating(*key)
        units = self._smart.capabilities(key[0]).units
        options = fallbacks(wanted.form, units=units, unit_fixed=configured is not None)
        refused = wanted.form
        for form in options:
            if self._smart.state.open_sessions.get(key) != wanted.transaction_id:
                return True  # the session ended meanwhile: nothing to control
            log.info("%s EVSE_%d: %s in %s answered %s; trying %s in %s", *key,
                     refused.purpose, refused.unit, status, form.purpose, form.unit)
            attempt = Wanted.build(form, key, wanted.transaction_id, wanted.watts, phases)
            answered = await self._try(conn, key, attempt)
            if answered is None:
                return True  # no answer, or not sent: handled
            status, refused = answered, form
            if status == "Accepted":
                self._smart.forms[key] = (wanted.transaction_id, form)
                self._smart.accepted(key, attempt)
                return True
        return False


def _same_setting(reported: str | None, wanted: str) -> bool:
    """Whether a charger's configuration value is the one wanted (lists compared item by
    item, without case or spaces)."""
    if reported is None:
        return False
    return [i.lower() for i in csl_items(reported)] == [i.lower() for i in csl_items(wanted)]


def _status(answer: Answer) -> str:
    """An answer's status (SetChargingProfile, ChangeConfiguration), or the CALLERROR code."""
    if answer.error is not None:
        return str(answer.error.code)
    return str((answer.payload or {}).get("status"))
