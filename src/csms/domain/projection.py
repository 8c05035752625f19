"""OCPP exchanges → domain events. Pure.

An exchange is a CALL a charger sent and the CALLRESULT we answered, both as the
``ocpp`` package's typed payloads. The events depend only on the state before the
exchange, the two payloads and the receive time, never on configuration: so the recorded
message log alone rebuilds the state (the transactionId, the authorization result …
are read from our recorded answer, not decided again).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import attrs
import orjson

from csms.domain import events as ev
from csms.domain.meter import samples_from
from csms.domain.model import SentProfile
from csms.domain.state import DomainState, start_key, unknown_stop_key
from csms.secrets import SECRET_KEYS
from ocppj.timestamps import format_timestamp, parse_timestamp
from ocppj.tolerance import Tolerated

Projector = Callable[[DomainState, str, Any, Any, datetime.datetime], list[ev.Event]]


def _value(member: Any) -> Any:
    """An enum member's OCPP value (the ocpp package's enums are str subclasses)."""
    return getattr(member, "value", member)


def _id_tag_status(response: Any) -> str:
    info = getattr(response, "id_tag_info", None)
    if info is None:
        return "Accepted"
    status = info["status"] if isinstance(info, dict) else info.status
    return str(_value(status))


def boot_notification(
    state: DomainState, charger_id: str, req: Any, res: Any, at: datetime.datetime
) -> list[ev.Event]:
    return [
        ev.ChargerBooted(
            charger_id,
            at,
            req.charge_point_vendor,
            req.charge_point_model,
            req.charge_point_serial_number,
            req.charge_box_serial_number,
            req.firmware_version,
            req.iccid,
            req.imsi,
            req.meter_type,
            req.meter_serial_number,
            str(_value(res.status)),
        )
    ]


def heartbeat(
    state: DomainState, charger_id: str, req: Any, res: Any, at: datetime.datetime
) -> list[ev.Event]:
    return [ev.HeartbeatReceived(charger_id, at)]


def status_notification(
    state: DomainState, charger_id: str, req: Any, res: Any, at: datetime.datetime
) -> list[ev.Event]:
    status = str(_value(req.status))
    timestamp = parse_timestamp(req.timestamp)
    events: list[ev.Event] = [
        ev.ConnectorStatusChanged(
            charger_id,
            at,
            req.connector_id,
            status,
            str(_value(req.error_code)),
            req.info,
            req.vendor_id,
            req.vendor_error_code,
            timestamp,
        )
    ]
    orphaned = _orphaned(state, charger_id, req.connector_id, status, timestamp, at)
    if orphaned is not None:
        events.append(orphaned)
    return events


def _orphaned(state: DomainState, charger_id: str, connector_id: int, status: str,
              timestamp: datetime.datetime | None,
              at: datetime.datetime) -> ev.SessionOrphaned | None:
    """The session a status shows its charger no longer holds: the charger rebooted
    since the session started, and the first status it reports for the connector after
    the reboot is Available, which has no transaction (OCPP 1.6, 4.9). A charger that
    kept the transaction reports it as it is (Charging, SuspendedEV, ...). Later,
    Available is no proof: a charger may send it while its StopTransaction still waits in
    its queue. A status older than the session (a late delivery) says nothing."""
    if connector_id < 1 or status != "Available":
        return None
    session = state.open_session(charger_id, connector_id)
    if session is None or (timestamp is not None and timestamp < session.start_time):
        return None
    charger = state.chargers.get(charger_id)
    booted_at = charger.booted_at if charger is not None else None
    if booted_at is None or booted_at < session.started_at:
        return None
    evse = state.evses.get((charger_id, connector_id))
    if evse is not None and evse.status_at is not None and evse.status_at >= booted_at:
        return None  # not the first status since the reboot
    evidence = f"connector {connector_id} reported Available"
    if timestamp is not None:
        evidence += f" at {format_timestamp(timestamp)}"
    evidence += f", after a BootNotification at {format_timestamp(booted_at)}"
    return ev.SessionOrphaned(charger_id, at, session.transaction_id, evidence)


def authorize(
    state: DomainState, charger_id: str, req: Any, res: Any, at: datetime.datetime
) -> list[ev.Event]:
    return [ev.IdTagAuthorized(charger_id, at, req.id_tag, _id_tag_status(res))]


def start_transaction(
    state: DomainState, charger_id: str, req: Any, res: Any, at: datetime.datetime
) -> list[ev.Event]:
    key = start_key(charger_id, req.connector_id, req.id_tag, req.meter_start, req.timestamp)
    if key in state.start_keys or res.transaction_id in state.sessions:
        return [ev.ChargerSeen(charger_id, at)]  # a retransmission: nothing new
    events: list[ev.Event] = []
    old = state.open_session(charger_id, req.connector_id)
    if old is not None:
        events.append(ev.SessionSuperseded(charger_id, at, old.transaction_id, res.transaction_id))
    events.append(
        ev.SessionStarted(
            charger_id,
            at,
            res.transaction_id,
            req.connector_id,
            req.id_tag,
            _id_tag_status(res),
            req.meter_start,
            req.timestamp,
            req.reservation_id,
        )
    )
    return events


def meter_values(
    state: DomainState, charger_id: str, req: Any, res: Any, at: datetime.datetime
) -> list[ev.Event]:
    key = meter_values_key(req.transaction_id, req.meter_value)
    if state.meter_keys.get((charger_id, req.connector_id)) == key:
        # The last MeterValues of this connector again: its answer was lost, and the
        # charger sent it once more. Nothing new.
        return [ev.ChargerSeen(charger_id, at)]
    tx = req.transaction_id
    if tx is None and req.connector_id > 0:
        session = state.open_session(charger_id, req.connector_id)
        tx = session.transaction_id if session is not None else None
    events: list[ev.Event] = []
    if tx is not None and not _owns(state, charger_id, tx):
        # Unknown, or another charger's session: the samples stay at charger level.
        events.append(ev.UnknownTransactionMetered(charger_id, at, tx))
        tx = None
    # After its session closed: kept as samples, and the session's figures stay final.
    late = tx is not None and not state.sessions[tx].open
    events.append(
        ev.MeterSampled(charger_id, at, req.connector_id, tx, samples_from(req.meter_value),
                        key, late=late)
    )
    return events


def meter_values_key(transaction_id: int | None, meter_value: Any) -> str:
    """A MeterValues message's identity: its transactionId and values, canonically."""
    return orjson.dumps([transaction_id, meter_value], option=orjson.OPT_SORT_KEYS).decode()


def stop_transaction(
    state: DomainState, charger_id: str, req: Any, res: Any, at: datetime.datetime
) -> list[ev.Event]:
    # OCPP 1.6 (StopTransaction.req): the reason "MAY only be omitted when the Reason is
    # Local".
    reason = str(_value(req.reason)) if req.reason is not None else "Local"
    session = state.sessions.get(req.transaction_id)
    if session is None or session.charger_id != charger_id:
        key = unknown_stop_key(req.transaction_id, req.meter_stop, req.timestamp)
        if (charger_id, key) in state.unknown_stops:
            return [ev.ChargerSeen(charger_id, at)]  # a retransmission: nothing new
        return [
            ev.UnknownTransactionStopped(
                charger_id, at, req.transaction_id, req.meter_stop, req.timestamp, reason
            )
        ]
    if not session.open and session.meter_stop is not None:
        return [ev.ChargerSeen(charger_id, at)]  # repeated: changes nothing
    # An open session, or one closed without a StopTransaction (Superseded, Orphaned):
    # this one completes it.
    events: list[ev.Event] = []
    if req.transaction_data:
        events.append(
            ev.MeterSampled(
                charger_id,
                at,
                session.connector_id,
                session.transaction_id,
                samples_from(req.transaction_data),
            )
        )
    events.append(
        ev.SessionStopped(
            charger_id, at, req.transaction_id, req.meter_stop, req.timestamp, reason, req.id_tag
        )
    )
    return events


def _owns(state: DomainState, charger_id: str, transaction_id: int) -> bool:
    session = state.sessions.get(transaction_id)
    return session is not None and session.charger_id == charger_id


def data_transfer(
    state: DomainState, charger_id: str, req: Any, res: Any, at: datetime.datetime
) -> list[ev.Event]:
    return [
        ev.DataTransferReceived(
            charger_id, at, req.vendor_id, req.message_id, str(_value(res.status))
        )
    ]


def firmware_status_notification(
    state: DomainState, charger_id: str, req: Any, res: Any, at: datetime.datetime
) -> list[ev.Event]:
    return [ev.FirmwareStatusReported(charger_id, at, str(_value(req.status)))]


def diagnostics_status_notification(
    state: DomainState, charger_id: str, req: Any, res: Any, at: datetime.datetime
) -> list[ev.Event]:
    return [ev.DiagnosticsStatusReported(charger_id, at, str(_value(req.status)))]


def log_status_notification(
    state: DomainState, charger_id: str, req: Any, res: Any, at: datetime.datetime
) -> list[ev.Event]:
    return [ev.LogStatusReported(charger_id, at, str(_value(req.status)))]


def signed_firmware_status_notification(
    state: DomainState, charger_id: str, req: Any, res: Any, at: datetime.datetime
) -> list[ev.Event]:
    return [ev.SignedFirmwareStatusReported(charger_id, at, str(_value(req.status)))]


def security_event_notification(
    state: DomainState, charger_id: str, req: Any, res: Any, at: datetime.datetime
) -> list[ev.Event]:
    # A timestamp a charger got wrong is kept as None (the event itself still counts).
    return [ev.SecurityEventReported(charger_id, at, str(req.type),
                                     parse_timestamp(req.timestamp), req.tech_info)]


def sign_certificate(
    state: DomainState, charger_id: str, req: Any, res: Any, at: datetime.datetime
) -> list[ev.Event]:
    return [ev.CertificateSigningRequested(charger_id, at, str(req.csr))]


#: The projector of every charger-initiated action the domain understands.
PROJECTORS: dict[str, Projector] = {
    "BootNotification": boot_notification,
    "Heartbeat": heartbeat,
    "StatusNotification": status_notification,
    "Authorize": authorize,
    "StartTransaction": start_transaction,
    "MeterValues": meter_values,
    "StopTransaction": stop_transaction,
    "DataTransfer": data_transfer,
    "FirmwareStatusNotification": firmware_status_notification,
    "DiagnosticsStatusNotification": diagnostics_status_notification,
    "LogStatusNotification": log_status_notification,
    "SignedFirmwareStatusNotification": signed_firmware_status_notification,
    "SecurityEventNotification": security_event_notification,
    "SignCertificate": sign_certificate,
}


def events_for(
    state: DomainState,
    charger_id: str,
    action: str,
    request: Any,
    response: Any,
    at: datetime.datetime,
    tolerated: Tolerated | None = None,
) -> list[ev.Event]:
    """The events one answered CALL produces (a plain last-seen for other actions);
    first, when its payload was repaired (``tolerated``), the anomaly that records it."""
    projector = PROJECTORS.get(action)
    events: list[ev.Event] = (
        [ev.ChargerSeen(charger_id, at)] if projector is None
        else _total(charger_id, at, action,
                    lambda: projector(state, charger_id, request, response, at))
    )
    if tolerated is not None:
        transaction_id = getattr(request, "transaction_id", None)
        events.insert(0, ev.CallTolerated(
            charger_id, at, action, tolerated.detail, tolerated.raw,
            transaction_id if isinstance(transaction_id, int) else None,
        ))
    return events


# -- exchanges the CSMS started: our CALL, the charger's answer --------------------------

@attrs.frozen
class Answered:
    """A charger's answer to one of our CALLs, as an out-projector sees it.

    Attributes:
        charger_id: who answered.
        request: our CALL's payload.
        response: the CALLRESULT payload, or None when the answer was a CALLERROR.
        error: the CALLERROR code, else None.
        at: when the answer was read.
    """

    charger_id: str
    request: dict[str, Any]
    response: dict[str, Any] | None
    error: str | None
    at: datetime.datetime

    @property
    def status(self) -> str:
        """The answer's status, or the CALLERROR code."""
        return str(self.response["status"]) if self.response is not None else str(self.error)


OutProjector = Callable[[DomainState, Answered], list[ev.Event]]


def _profile(state: DomainState, charger_id: str, request: dict[str, Any], status: str,
             at: datetime.datetime) -> SentProfile | None:
    """A SetChargingProfile as the domain keeps it (its first period), with its answer's
    ``status`` ("Sent" until it has one); None for one with no period (schema-valid, and
    no limit to keep, whatever the answer)."""
    profile = request["csChargingProfiles"]
    schedule = profile["chargingSchedule"]
    periods = schedule["chargingSchedulePeriod"]
    if not periods:
        return None
    connector_id = int(request["connectorId"])
    purpose = str(profile["chargingProfilePurpose"])
    transaction_id = profile.get("transactionId")
    if transaction_id is None and purpose == "TxDefaultProfile" and connector_id > 0:
        # A TxDefaultProfile on a connector governs the transaction running there (the
        # CSMS's fallback for a charger that refuses TxProfiles).
        transaction_id = state.open_sessions.get((charger_id, connector_id))
    return SentProfile(
        charger_id, connector_id, int(profile["chargingProfileId"]), purpose,
        int(profile["stackLevel"]), transaction_id, str(schedule["chargingRateUnit"]),
        float(periods[0]["limit"]), status, at, periods[0].get("numberPhases"),
    )


def set_charging_profile(state: DomainState, a: Answered) -> list[ev.Event]:
    profile = _profile(state, a.charger_id, a.request, a.status, a.at)
    return [] if profile is None else [ev.ChargingProfileAnswered(a.charger_id, a.at, profile)]


def _total(charger_id: str, at: datetime.datetime, action: str,
           project: Callable[[], list[ev.Event]]) -> list[ev.Event]:
    """``project()``'s events; if it raises (a projector that misses a schema-valid
    payload: a bug, which the tests look for), an ``unprojectable`` anomaly instead. The
    message is then answered and kept, and the live CSMS and replay, which both come
    here, agree; the message log keeps the frame for a later rebuild."""
    try:
        return list(project())
    except Exception as exc:  # every projector bug, reported as data
        return [ev.ProjectionFailed(charger_id, at, action, f"{type(exc).__name__}: {exc}")]


def events_for_call(state: DomainState, charger_id: str, action: str,
                    payload: dict[str, Any], at: datetime.datetime) -> list[ev.Event]:
    """The events of one of our CALLs as it is sent: a SetChargingProfile for an open
    session is pending until answered."""
    if action != "SetChargingProfile":
        return []
    return _total(charger_id, at, action,
                  lambda: _sent_profile(state, charger_id, payload, at))


def _sent_profile(state: DomainState, charger_id: str, payload: dict[str, Any],
                  at: datetime.datetime) -> list[ev.Event]:
    try:
        profile = _profile(state, charger_id, payload, "Sent", at)
    except (KeyError, IndexError, TypeError, ValueError):
        return []  # not one the charger could take either; its answer will say
    if profile is None:
        return []
    session = state.sessions.get(profile.transaction_id or -1)
    if session is None or not session.open or session.charger_id != charger_id:
        return []
    return [ev.ChargingProfileSent(charger_id, at, profile)]


def events_for_abandoned(state: DomainState, charger_id: str, action: str,
                         at: datetime.datetime, *, sent: bool = True,
                         logged: bool = True) -> list[ev.Event]:
    """The events of one of our CALLs that ended without an answer (see the message log's
    ``abandoned`` rows): ``sent`` when it may have reached the charger, ``logged`` when
    its frame was recorded (and projected) before it was to leave. A CALL that never got
    its turn (neither) changed nothing: the charger's pending profile is another's."""
    if action != "SetChargingProfile" or not (sent or logged):
        return []
    return [ev.CallAbandoned(charger_id, at, action, sent=sent)]


def clear_charging_profile(state: DomainState, a: Answered) -> list[ev.Event]:
    request = a.request
    return [ev.ChargingProfilesCleared(
        a.charger_id, a.at, request.get("id"), request.get("connectorId"),
        request.get("chargingProfilePurpose"), request.get("stackLevel"), a.status,
    )]


def reserve_now(state: DomainState, a: Answered) -> list[ev.Event]:
    request = a.request
    return [ev.ReservationAnswered(
        a.charger_id, a.at, int(request["reservationId"]), int(request["connectorId"]),
        str(request["idTag"]), request.get("parentIdTag"), str(request["expiryDate"]),
        a.status,
    )]


def cancel_reservation(state: DomainState, a: Answered) -> list[ev.Event]:
    return [ev.ReservationCancelAnswered(
        a.charger_id, a.at, int(a.request["reservationId"]), a.status
    )]


def send_local_list(state: DomainState, a: Answered) -> list[ev.Event]:
    if a.status != "Accepted":
        return [ev.ChargerSeen(a.charger_id, a.at)]
    return [ev.LocalListVersionReported(
        a.charger_id, a.at, int(a.request["listVersion"]), "SendLocalList"
    )]


def get_local_list_version(state: DomainState, a: Answered) -> list[ev.Event]:
    if a.response is None:
        return [ev.ChargerSeen(a.charger_id, a.at)]
    return [ev.LocalListVersionReported(
        a.charger_id, a.at, int(a.response["listVersion"]), "GetLocalListVersion"
    )]


def remote_start_transaction(state: DomainState, a: Answered) -> list[ev.Event]:
    return [ev.RemoteCommandAnswered(
        a.charger_id, a.at, "RemoteStartTransaction", a.request.get("connectorId"),
        str(a.request["idTag"]), None, a.status,
    )]


def remote_stop_transaction(state: DomainState, a: Answered) -> list[ev.Event]:
    return [ev.RemoteCommandAnswered(
        a.charger_id, a.at, "RemoteStopTransaction", None, None,
        int(a.request["transactionId"]), a.status,
    )]


def get_configuration(state: DomainState, a: Answered) -> list[ev.Event]:
    if a.response is None:
        return [ev.ChargerSeen(a.charger_id, a.at)]
    values = []
    for entry in a.response.get("configurationKey") or ():
        # A key without a value is one the charger knows but will not show (a secret).
        if (
            isinstance(entry, dict)
            and isinstance(entry.get("value"), str)
            and str(entry["key"]).lower() not in SECRET_KEYS
        ):
            values.append((str(entry["key"]), entry["value"]))
    unknown = tuple(str(key) for key in a.response.get("unknownKey") or ())
    return [ev.ConfigurationReported(a.charger_id, a.at, tuple(values), unknown)]


def change_configuration(state: DomainState, a: Answered) -> list[ev.Event]:
    secret = str(a.request["key"]).lower() in SECRET_KEYS
    if a.response is None or a.status != "Accepted" or secret:
        # Rejected, NotSupported, or RebootRequired: the value is not in force (yet).
        return [ev.ChargerSeen(a.charger_id, a.at)]
    value = ((str(a.request["key"]), str(a.request["value"])),)
    return [ev.ConfigurationReported(a.charger_id, a.at, value)]


#: The projector of every CSMS-initiated action the domain records.
OUT_PROJECTORS: dict[str, OutProjector] = {
    "SetChargingProfile": set_charging_profile,
    "ClearChargingProfile": clear_charging_profile,
    "ReserveNow": reserve_now,
    "CancelReservation": cancel_reservation,
    "SendLocalList": send_local_list,
    "GetLocalListVersion": get_local_list_version,
    "RemoteStartTransaction": remote_start_transaction,
    "RemoteStopTransaction": remote_stop_transaction,
    "GetConfiguration": get_configuration,
    "ChangeConfiguration": change_configuration,
}


def events_for_answer(
    state: DomainState,
    charger_id: str,
    action: str,
    request: dict[str, Any],
    response: dict[str, Any] | None,
    error: str | None,
    at: datetime.datetime,
) -> list[ev.Event]:
    """The events of a charger's answer (``response`` or CALLERROR ``error``) to our CALL."""
    projector = OUT_PROJECTORS.get(action)
    if projector is None:
        return []
    answered = Answered(charger_id, request, response, error, at)
    return _total(charger_id, at, action, lambda: projector(state, answered))
