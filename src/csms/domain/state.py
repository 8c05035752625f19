"""The domain state and the fold that applies one event to it. Pure: no I/O, no clock.

``apply(state, event)`` changes ``state`` in place (its records are frozen and replaced,
never mutated) and returns it; replaying events is ``functools.reduce(apply, events,
DomainState())``. The state also notes which records an event touched (``dirty``), so
that the store can write exactly those.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterable
from typing import Any

import attrs

from csms.domain import events as ev
from csms.domain.compliance import (
    APPLY_GRACE_S,
    NON_COMPLIANT_READINGS,
    measured_in_unit,
    overdraws,
)
from csms.domain.meter import IDLE_W, power_from_energy, readings
from csms.domain.model import (
    SECURITY_EVENTS_KEPT,
    Anomaly,
    Charger,
    Evse,
    RemoteCommand,
    Reservation,
    SecurityEvent,
    SentProfile,
    Session,
)
from csms.domain.replace import replace
from ocppj.timestamps import format_timestamp

#: Statuses in which a cable is plugged in.
PLUGGED_STATUSES = frozenset({"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing"})

#: transactionIds are 32-bit integers in OCPP 1.6. An unknown transactionId a charger
#: believes in moves the next id past it only below this bound, so that no message can
#: bring the ids this CSMS gives out near 2**31 - 1; above it, it is only an anomaly.
HONOURED_TRANSACTION_ID_LIMIT = 2**30

#: Key of a StartTransaction for recognising a retransmission.
StartKey = tuple[str, int, str, int, str]


@attrs.define
class DomainState:
    """Everything the CSMS knows, rebuilt by folding events.

    Attributes:
        chargers: by charger id.
        evses: by (charger id, connector id), connector ids ≥ 1.
        sessions: by transactionId.
        open_sessions: the open session's transactionId by (charger id, connector id).
        start_keys: transactionId by (charger, connector, idTag, meterStart, timestamp).
        next_transaction_id: the next id to give out; never goes down.
        anomalies: in the order they happened.
        profiles: the last charging profile sent to each (charger, connector), answered;
            removed when the charger accepts a ClearChargingProfile that matches it.
        reservations: every ReserveNow sent, by (charger, reservationId): reservation ids
            are the charger's to keep apart, not the CSMS's (a new ReserveNow with the
            same id to the same charger replaces the old, as it does on the charger).
        remote_commands: RemoteStart/StopTransaction answers, in the order received.
        unknown_stops: (charger, key) of the StopTransactions for transactions this CSMS
            does not know (see :func:`unknown_stop_key`), to recognise a retransmission.
        dirty: records touched since the store last collected them.
    """

    chargers: dict[str, Charger] = attrs.Factory(dict)
    evses: dict[tuple[str, int], Evse] = attrs.Factory(dict)
    sessions: dict[int, Session] = attrs.Factory(dict)
    open_sessions: dict[tuple[str, int], int] = attrs.Factory(dict)
    start_keys: dict[StartKey, int] = attrs.Factory(dict)
    next_transaction_id: int = 1
    anomalies: list[Anomaly] = attrs.Factory(list)
    unknown_stops: set[tuple[str, str]] = attrs.Factory(set)
    profiles: dict[tuple[str, int], SentProfile] = attrs.Factory(dict)
    #: The last MeterValues of each (charger, connector), to recognise a retransmission.
    meter_keys: dict[tuple[str, int], str] = attrs.Factory(dict)
    reservations: dict[tuple[str, int], Reservation] = attrs.Factory(dict)
    remote_commands: list[RemoteCommand] = attrs.Factory(list)
    dirty: set[tuple[str, Any]] = attrs.field(factory=set, eq=False, repr=False)
    #: The connectors with an open session, by its idTag casefolded (an index of
    #: ``open_sessions``, kept by :meth:`set_open` and :meth:`set_closed`): a ConcurrentTx
    #: check must not scan ten thousand open sessions per StartTransaction.
    open_by_tag: dict[str, set[tuple[str, int]]] = attrs.field(
        factory=dict, eq=False, repr=False)

    def set_open(self, session: Session) -> None:
        """Make ``session`` (already in :attr:`sessions`) the open one of its connector."""
        key = (session.charger_id, session.connector_id)
        self._unindex(key)
        self.open_sessions[key] = session.transaction_id
        self.open_by_tag.setdefault(session.id_tag.casefold(), set()).add(key)

    def set_closed(self, key: tuple[str, int], transaction_id: int) -> None:
        """The connector's session ``transaction_id`` is no longer open (if it was)."""
        if self.open_sessions.get(key) == transaction_id:
            self._unindex(key)
            del self.open_sessions[key]

    def _unindex(self, key: tuple[str, int]) -> None:
        """Take the connector's open session, if any, out of :attr:`open_by_tag`."""
        session = self.sessions.get(self.open_sessions.get(key, -1))
        if session is None:
            return
        tag = session.id_tag.casefold()
        keys = self.open_by_tag.get(tag)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self.open_by_tag[tag]

    def take_dirty(self) -> set[tuple[str, Any]]:
        """The records touched since the last call, and forget them."""
        dirty, self.dirty = self.dirty, set()
        return dirty

    def open_session(self, charger_id: str, connector_id: int) -> Session | None:
        """The open session on a connector, if any."""
        tx = self.open_sessions.get((charger_id, connector_id))
        return self.sessions.get(tx) if tx is not None else None


def start_key(
    charger_id: str, connector_id: int, id_tag: str, meter_start: int, timestamp: str
) -> StartKey:
    """What makes two StartTransactions the same message sent twice."""
    return (charger_id, connector_id, id_tag, meter_start, timestamp)


def unknown_stop_key(transaction_id: int, meter_stop: int, timestamp: str) -> str:
    """What makes two StopTransactions for an unknown transaction the same message."""
    return f"stop:{transaction_id}:{meter_stop}:{timestamp}"


def _charger(state: DomainState, charger_id: str) -> Charger:
    return state.chargers.get(charger_id) or Charger(id=charger_id)


def _put_charger(state: DomainState, charger: Charger) -> None:
    state.chargers[charger.id] = charger
    state.dirty.add(("charger", charger.id))


def _put_session(state: DomainState, session: Session) -> None:
    state.sessions[session.transaction_id] = session
    state.dirty.add(("session", session.transaction_id))


def _anomaly(state: DomainState, anomaly: Anomaly) -> None:
    state.anomalies.append(anomaly)
    state.dirty.add(("anomaly", len(state.anomalies) - 1))


def _close(state: DomainState, session: Session) -> None:
    state.set_closed((session.charger_id, session.connector_id), session.transaction_id)
    _put_session(state, session)


@functools.singledispatch
def _apply(event: Any, state: DomainState) -> None:
    raise TypeError(f"not a domain event: {event!r}")


@_apply.register
def _(event: ev.ChargerConnected, state: DomainState) -> None:
    charger = _charger(state, event.charger_id)
    _put_charger(
        state, replace(charger, connected=True, remote=event.remote, disconnect_reason=None)
    )


@_apply.register
def _(event: ev.ChargerDisconnected, state: DomainState) -> None:
    charger = _charger(state, event.charger_id)
    _put_charger(state, replace(charger, connected=False, disconnect_reason=event.reason))


@_apply.register
def _(event: ev.ChargerBooted, state: DomainState) -> None:
    charger = replace(
        _charger(state, event.charger_id),
        vendor=event.vendor,
        model=event.model,
        charge_point_serial_number=event.charge_point_serial_number,
        charge_box_serial_number=event.charge_box_serial_number,
        firmware_version=event.firmware_version,
        iccid=event.iccid,
        imsi=event.imsi,
        meter_type=event.meter_type,
        meter_serial_number=event.meter_serial_number,
        registration_status=event.registration_status,
        booted_at=event.at,
    )
    _put_charger(state, charger)


@_apply.register
def _(event: ev.ConfigurationReported, state: DomainState) -> None:
    charger = _charger(state, event.charger_id)
    configuration = dict(charger.configuration)
    configuration.update(event.values)
    _put_charger(state, replace(charger, configuration=configuration))


@_apply.register
def _(event: ev.ConnectorStatusChanged, state: DomainState) -> None:
    if event.connector_id == 0:
        charger = _charger(state, event.charger_id)
        _put_charger(state, replace(charger, status=event.status, error_code=event.error_code))
        return
    key = (event.charger_id, event.connector_id)
    state.evses[key] = Evse(
        charger_id=event.charger_id,
        connector_id=event.connector_id,
        status=event.status,
        error_code=event.error_code,
        info=event.info,
        vendor_id=event.vendor_id,
        vendor_error_code=event.vendor_error_code,
        status_timestamp=event.timestamp,
        plugged_in=event.status in PLUGGED_STATUSES,
        status_at=event.at,
    )
    state.dirty.add(("evse", key))


@_apply.register
def _(event: ev.SessionStarted, state: DomainState) -> None:
    session = Session(
        transaction_id=event.transaction_id,
        charger_id=event.charger_id,
        connector_id=event.connector_id,
        id_tag=event.id_tag,
        auth_status=event.auth_status,
        meter_start=event.meter_start,
        start_timestamp=event.timestamp,
        started_at=event.at,
        reservation_id=event.reservation_id,
        last_register_wh=float(event.meter_start),
    )
    _put_session(state, session)
    state.set_open(session)
    state.start_keys[
        start_key(
            event.charger_id, event.connector_id, event.id_tag, event.meter_start, event.timestamp
        )
    ] = event.transaction_id
    state.next_transaction_id = max(state.next_transaction_id, event.transaction_id + 1)
    reservation = (
        state.reservations.get((event.charger_id, event.reservation_id))
        if event.reservation_id is not None else None
    )
    if reservation is not None and reservation.used_by_transaction_id is None:
        _put_reservation(
            state,
            replace(
                reservation, used_by_transaction_id=event.transaction_id, used_at=event.at
            ),
        )


def _put_reservation(state: DomainState, reservation: Reservation) -> None:
    key = (reservation.charger_id, reservation.reservation_id)
    state.reservations[key] = reservation
    state.dirty.add(("reservation", key))


def _close_without_stop(state: DomainState, charger_id: str, at: datetime.datetime,
                        transaction_id: int, reason: str, detail: str) -> None:
    """Close a session no StopTransaction closed (yet): its stop reason says why, and an
    anomaly of that kind keeps the evidence. A StopTransaction that comes later completes
    the record."""
    old = state.sessions[transaction_id]
    _close(state, replace(old, open=False, stopped_at=at, stop_reason=reason))
    _anomaly(state, Anomaly(at, charger_id, reason.lower(), detail, transaction_id))


@_apply.register
def _(event: ev.CallTolerated, state: DomainState) -> None:
    _anomaly(state, Anomaly(event.at, event.charger_id, "tolerated",
                            f"{event.action}: {event.detail}", event.transaction_id,
                            raw=event.raw))


@_apply.register
def _(event: ev.ProjectionFailed, state: DomainState) -> None:
    _anomaly(state, Anomaly(event.at, event.charger_id, "unprojectable",
                            f"{event.action}: {event.detail}"))


@_apply.register
def _(event: ev.SessionSuperseded, state: DomainState) -> None:
    connector_id = state.sessions[event.transaction_id].connector_id
    _close_without_stop(
        state, event.charger_id, event.at, event.transaction_id, "Superseded",
        f"closed by transaction {event.by_transaction_id} on connector {connector_id}",
    )


@_apply.register
def _(event: ev.SessionOrphaned, state: DomainState) -> None:
    _close_without_stop(
        state, event.charger_id, event.at, event.transaction_id, "Orphaned",
        f"closed without a StopTransaction: {event.evidence}",
    )


@_apply.register
def _(event: ev.MeterSampled, state: DomainState) -> None:
    if event.key is not None:
        state.meter_keys[(event.charger_id, event.connector_id)] = event.key
        state.dirty.add(("meter_key", (event.charger_id, event.connector_id)))
    if event.transaction_id is None:
        return
    session = state.sessions.get(event.transaction_id)
    if session is None or session.charger_id != event.charger_id:
        return  # the projection never names another charger's session; see below
    if event.late:
        _anomaly(state, Anomaly(
            event.at, event.charger_id, "late_meter_values",
            f"{len(event.samples)} sampled values after the session closed: stored, "
            "the session's figures unchanged", session.transaction_id,
        ))
        return
    changes: dict[str, Any] = {"samples": session.samples + len(event.samples)}
    last = session.last_register_wh
    last_at = session.last_register_at
    if last_at is None and (last is None or last == session.meter_start):
        # Before any reading, the register stood at meterStart when the session started.
        last_at = session.start_time
    energy = session.energy_wh
    # Power is derived from the register only for a charger that reports no power: one
    # that reported it once keeps its last measurement between its power readings.
    measures_power = session.power_w is not None and not session.power_from_energy
    for reading in readings(event.samples):
        if reading.power_w is not None:
            measures_power = True
        if reading.register_wh is not None:
            if not measures_power:
                derived = power_from_energy(
                    reading.register_wh, reading.at,
                    last if last is not None else float(session.meter_start), last_at,
                )
                if derived is not None:
                    changes.update(power_w=derived, power_from_energy=True)
            if last is not None and reading.register_wh < last:
                _anomaly(
                    state,
                    Anomaly(
                        event.at,
                        event.charger_id,
                        "register_backwards",
                        f"register {reading.register_wh:g} Wh after {last:g} Wh",
                        session.transaction_id,
                    ),
                )
            else:
                last, last_at = reading.register_wh, reading.at
                energy = max(energy, reading.register_wh - session.meter_start)
        if reading.power_w is not None:
            changes.update(power_w=reading.power_w, power_from_energy=False)
        if reading.current_a is not None:
            changes["current_a"] = reading.current_a
        if reading.soc is not None:
            changes["soc"] = reading.soc
    if session.open:
        # A closed session's energy is meterStop - meterStart, whatever arrives late.
        changes.update(last_register_wh=last, last_register_at=last_at, energy_wh=energy)
        if "power_w" in changes:
            paused = session.limit is not None and session.limit.limit == 0
            idle = changes["power_w"] <= IDLE_W and not paused
            changes["idle_since"] = (session.idle_since or event.at) if idle else None
        if "power_w" in changes or "current_a" in changes:
            changes.update(_compliance(
                state, event, session, changes.get("power_w", session.power_w),
                changes.get("current_a", session.current_a),
            ))
    _put_session(state, replace(session, **changes))


def _recent(recent: tuple[SentProfile, ...], accepted: SentProfile) -> tuple[SentProfile, ...]:
    """The limits accepted in the minute before ``accepted``, the one in force a minute
    before it, and ``accepted``: all a reading after it may be judged against."""
    cutoff = accepted.at - datetime.timedelta(seconds=APPLY_GRACE_S)
    older = [p for p in recent if p.at <= cutoff]
    return (*older[-1:], *(p for p in recent if p.at > cutoff), accepted)


def _judged_limit(recent: tuple[SentProfile, ...], at: datetime.datetime) -> float | None:
    """The limit a reading at ``at`` is judged against: the highest the charger may be
    enforcing, since it may take a minute to apply one (the one in force a minute before,
    and those accepted since). None: none in force a minute before (the first is still
    being applied), or they are in different units."""
    cutoff = at - datetime.timedelta(seconds=APPLY_GRACE_S)
    older = [p for p in recent if p.at <= cutoff]
    if not older:
        return None
    window = [older[-1], *(p for p in recent if p.at > cutoff)]
    if len({p.unit for p in window}) > 1:
        return None
    return max(p.limit for p in window)


def _compliance(
    state: DomainState, event: ev.MeterSampled, session: Session, power_w: float | None,
    current_a: tuple[tuple[str, float], ...] | None,
) -> dict[str, Any]:
    """Whether the session's EV keeps to the limit its charger accepted, after this
    reading, which measured ``power_w`` and ``current_a`` (a non_compliant anomaly when it
    turns so)."""
    profile = session.limit
    limit = _judged_limit(session.recent_limits, event.at)
    if profile is None or limit is None:
        return {}
    measured = measured_in_unit(profile.unit, power_w, current_a, profile.phases)
    if measured is None:
        return {}
    count = session.overdraw_readings + 1 if overdraws(limit, profile.unit, measured) else 0
    non_compliant = count >= NON_COMPLIANT_READINGS
    if non_compliant and not session.non_compliant:
        _anomaly(state, Anomaly(
            event.at, event.charger_id, "non_compliant",
            f"draws {measured:.1f} {profile.unit} under the {limit:g} {profile.unit} "
            f"it accepted at {format_timestamp(profile.at)}, {count} readings in a row",
            session.transaction_id,
        ))
    return {"overdraw_readings": count, "non_compliant": non_compliant}


@_apply.register
def _(event: ev.SessionStopped, state: DomainState) -> None:
    session = state.sessions[event.transaction_id]
    if not session.open:
        # The StopTransaction of a session closed without one (Superseded, Orphaned): it
        # completes the record, and the guess is kept as an anomaly.
        _anomaly(
            state,
            Anomaly(
                event.at,
                event.charger_id,
                "late_stop",
                f"StopTransaction after the session was closed as {session.stop_reason}",
                session.transaction_id,
            ),
        )
    energy = float(event.meter_stop - session.meter_start)
    if energy < 0:
        _anomaly(
            state,
            Anomaly(
                event.at,
                event.charger_id,
                "stop_below_start",
                f"meterStop {event.meter_stop} < meterStart {session.meter_start}",
                session.transaction_id,
            ),
        )
    _close(
        state,
        replace(
            session,
            open=False,
            meter_stop=event.meter_stop,
            stop_timestamp=event.timestamp,
            stopped_at=event.at,
            stop_reason=event.reason,
            stop_id_tag=event.id_tag,
            energy_wh=energy,
            last_register_wh=max(session.last_register_wh or 0.0, float(event.meter_stop)),
        ),
    )


@_apply.register
def _(event: ev.UnknownTransactionStopped, state: DomainState) -> None:
    key = unknown_stop_key(event.transaction_id, event.meter_stop, event.timestamp)
    state.unknown_stops.add((event.charger_id, key))
    _anomaly(
        state,
        Anomaly(
            event.at,
            event.charger_id,
            "unknown_transaction",
            f"StopTransaction for unknown transaction {event.transaction_id} "
            f"(meterStop {event.meter_stop}, reason {event.reason})",
            event.transaction_id,
            key=key,
        ),
    )
    # Never give out an id a charger already believes in, unless honouring it would eat
    # into the 32-bit id space chargers can send back: one StopTransaction for 2**31 - 1
    # made the next StartTransaction get 2**31, which every later message refuses.
    if event.transaction_id < HONOURED_TRANSACTION_ID_LIMIT:
        state.next_transaction_id = max(state.next_transaction_id, event.transaction_id + 1)


@_apply.register
def _(event: ev.UnknownTransactionMetered, state: DomainState) -> None:
    _anomaly(
        state,
        Anomaly(
            event.at,
            event.charger_id,
            "unknown_transaction",
            f"MeterValues for transaction {event.transaction_id}, unknown or another "
            "charger's: kept at charger level",
            event.transaction_id,
        ),
    )


@_apply.register
def _(event: ev.ChargingProfileAnswered, state: DomainState) -> None:
    profile = event.profile
    key = (event.charger_id, profile.connector_id)
    state.profiles[key] = profile
    state.dirty.add(("profile", key))
    tx = profile.transaction_id
    session = state.sessions.get(tx) if tx else None
    if session is None or not session.open or session.charger_id != event.charger_id:
        return
    # The answer to the profile pending, or a late one to a profile given up (the one
    # pending, if any, was sent after it: the charger may apply that one next).
    in_time = session.pending is not None and session.pending.same_call(profile)
    changes: dict[str, Any] = {"pending": None} if in_time else {}
    if profile.status == "Accepted":
        # The limit in force for it now. In time, it replaces any it may have applied
        # unanswered; late, it replaces those given up only if none is higher (one sent
        # after it may be applied yet). Idle counts only while the EV may draw: a pause
        # (0), or its end, starts afresh.
        uncertain = session.uncertain
        if in_time or (uncertain is not None and uncertain.watts() <= profile.watts()):
            uncertain = None
        changes.update(limit=profile, refused=None, uncertain=uncertain, idle_since=None,
                       recent_limits=_recent(session.recent_limits, profile))
    else:
        # A refusal changes nothing the charger enforces: the last accepted limit holds.
        changes["refused"] = profile.status
    _put_session(state, replace(session, **changes))


@_apply.register
def _(event: ev.ChargingProfileSent, state: DomainState) -> None:
    # The projection emits it only for an open session of the charger.
    session = state.sessions[event.profile.transaction_id or -1]
    _put_session(state, replace(session, pending=event.profile))


@_apply.register
def _(event: ev.CallAbandoned, state: DomainState) -> None:
    # Our CALLs to a charger go one at a time: the one given up is its session's pending.
    for tx in list(state.open_sessions.values()):
        session = state.sessions[tx]
        pending = session.pending
        if session.charger_id != event.charger_id or pending is None:
            continue
        uncertain = session.uncertain
        if event.sent and (uncertain is None or pending.watts() > uncertain.watts()):
            uncertain = pending
        _put_session(state, replace(session, pending=None, uncertain=uncertain))


@_apply.register
def _(event: ev.ChargingProfilesCleared, state: DomainState) -> None:
    if event.status != "Accepted":
        return
    for key, profile in list(state.profiles.items()):
        if profile.charger_id == event.charger_id and _clears(event, profile):
            del state.profiles[key]
            state.dirty.add(("profile", key))
    for key, tx in list(state.open_sessions.items()):
        session = state.sessions[tx]
        if (key[0] == event.charger_id and session.limit is not None
                and _clears(event, session.limit)):
            # What the charger enforces now is unknown to the domain (its other profiles).
            _put_session(state, replace(session, limit=None))


def _clears(event: ev.ChargingProfilesCleared, profile: SentProfile) -> bool:
    """Whether the ClearChargingProfile removes the profile, as a 1.6 charger reads it."""
    if event.profile_id is not None:
        # A specific profile: the other criteria are ignored (as the charger does).
        return profile.profile_id == event.profile_id
    return (
        (event.connector_id is None or profile.connector_id == event.connector_id)
        and (event.purpose is None or profile.purpose == event.purpose)
        and (event.stack_level is None or profile.stack_level == event.stack_level)
    )


@_apply.register
def _(event: ev.ReservationAnswered, state: DomainState) -> None:
    held = state.reservations.get((event.charger_id, event.reservation_id))
    if (
        event.status != "Accepted"
        and held is not None
        and held.status == "Accepted"
        and held.cancel_status != "Accepted"
        and held.used_by_transaction_id is None
    ):
        # OCPP 1.6: a ReserveNow with a reservationId the charger holds replaces that
        # reservation only if accepted. Refused, it changed nothing: the charger still
        # holds the accepted one, and so does the record. (The refusal is in the log.)
        return
    _put_reservation(
        state,
        Reservation(
            reservation_id=event.reservation_id,
            charger_id=event.charger_id,
            connector_id=event.connector_id,
            id_tag=event.id_tag,
            parent_id_tag=event.parent_id_tag,
            expiry_date=event.expiry_date,
            status=event.status,
            requested_at=event.at,
        ),
    )


@_apply.register
def _(event: ev.ReservationCancelAnswered, state: DomainState) -> None:
    reservation = state.reservations.get((event.charger_id, event.reservation_id))
    if reservation is None:
        return  # a reservation this CSMS never made: the charger's answer says it all
    if reservation.cancel_status == "Accepted":
        return  # already cancelled: a second CancelReservation changes nothing
    _put_reservation(
        state, replace(reservation, cancel_status=event.status, cancelled_at=event.at)
    )


@_apply.register
def _(event: ev.LocalListVersionReported, state: DomainState) -> None:
    charger = _charger(state, event.charger_id)
    _put_charger(state, replace(charger, local_list_version=event.version))


@_apply.register
def _(event: ev.FirmwareStatusReported, state: DomainState) -> None:
    charger = _charger(state, event.charger_id)
    _put_charger(
        state, replace(charger, firmware_status=event.status, firmware_status_at=event.at)
    )


@_apply.register
def _(event: ev.LogStatusReported, state: DomainState) -> None:
    charger = _charger(state, event.charger_id)
    _put_charger(state, replace(charger, log_status=event.status, log_status_at=event.at))


@_apply.register
def _(event: ev.SignedFirmwareStatusReported, state: DomainState) -> None:
    charger = _charger(state, event.charger_id)
    _put_charger(state, replace(
        charger, signed_firmware_status=event.status, signed_firmware_status_at=event.at
    ))


@_apply.register
def _(event: ev.SecurityEventReported, state: DomainState) -> None:
    charger = _charger(state, event.charger_id)
    kept = (*charger.security_events,
            SecurityEvent(event.type, event.timestamp, event.tech_info, event.at))
    _put_charger(state, replace(
        charger, security_events=kept[-SECURITY_EVENTS_KEPT:],
        security_event_count=charger.security_event_count + 1,
    ))


@_apply.register
def _(event: ev.CertificateSigningRequested, state: DomainState) -> None:
    charger = _charger(state, event.charger_id)
    _put_charger(state, replace(charger, csr=event.csr, csr_at=event.at))


@_apply.register
def _(event: ev.DiagnosticsStatusReported, state: DomainState) -> None:
    charger = _charger(state, event.charger_id)
    _put_charger(
        state,
        replace(charger, diagnostics_status=event.status, diagnostics_status_at=event.at),
    )


@_apply.register
def _(event: ev.RemoteCommandAnswered, state: DomainState) -> None:
    state.remote_commands.append(
        RemoteCommand(
            event.at, event.charger_id, event.action, event.status, event.connector_id,
            event.id_tag, event.transaction_id,
        )
    )
    state.dirty.add(("remote_command", len(state.remote_commands) - 1))


@_apply.register
def _(
    event: ev.ChargerSeen | ev.HeartbeatReceived | ev.IdTagAuthorized | ev.DataTransferReceived,
    state: DomainState,
) -> None:
    pass


def apply(state: DomainState, event: ev.Event) -> DomainState:
    """Apply one event to ``state`` and return it."""
    _apply(event, state)
    charger = state.chargers.get(event.charger_id)
    if charger is None:
        _put_charger(state, Charger(id=event.charger_id, last_seen=event.at))
    else:
        # Only the last-seen time changes on most messages: the store updates that field
        # alone rather than rewriting the whole charger record.
        state.chargers[charger.id] = replace(charger, last_seen=event.at)
        state.dirty.add(("seen", charger.id))
    return state


def replay(events: Iterable[ev.Event], state: DomainState | None = None) -> DomainState:
    """Fold ``events`` into ``state`` (a new one by default)."""
    return functools.reduce(apply, events, state if state is not None else DomainState())
