"""Domain records → the API's JSON objects (camelCase, ISO 8601 times in UTC). Pure."""

from __future__ import annotations

import datetime
from typing import Any

import orjson

from csms.domain.model import (
    Anomaly,
    Charger,
    Evse,
    RemoteCommand,
    Reservation,
    SentProfile,
    Session,
)
from csms.storage.base import IdTagRow, LogRow
from ocppj import Answer


def iso(moment: datetime.datetime | None) -> str | None:
    """An aware datetime as ISO 8601 in UTC with ``Z`` (None stays None)."""
    if moment is None:
        return None
    return moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


def answer(record: Answer) -> dict[str, Any]:
    """A charge point's answer to a CALL of ours: ``{"result": payload}`` for a
    CALLRESULT, ``{"error": {code, description, details}}`` for a CALLERROR."""
    if record.error is None:
        return {"result": record.payload}
    return {"error": {"code": str(record.error.code), "description": record.error.description,
                      "details": dict(record.error.details)}}


def evse(record: Evse) -> dict[str, Any]:
    """One EVSE (OCPP connector ≥ 1)."""
    return {
        "connectorId": record.connector_id,
        "name": f"EVSE_{record.connector_id}",
        "status": record.status,
        "errorCode": record.error_code,
        "info": record.info,
        "vendorId": record.vendor_id,
        "vendorErrorCode": record.vendor_error_code,
        "statusTimestamp": iso(record.status_timestamp),
        "pluggedIn": record.plugged_in,
    }


def profile(record: SentProfile) -> dict[str, Any]:
    """The last charging profile sent to a connector, and the charger's answer."""
    return {
        "connectorId": record.connector_id,
        "chargingProfileId": record.profile_id,
        "chargingProfilePurpose": record.purpose,
        "stackLevel": record.stack_level,
        "transactionId": record.transaction_id,
        "chargingRateUnit": record.unit,
        "limit": record.limit,
        "status": record.status,
        "at": iso(record.at),
    }


def charger(
    record: Charger,
    *,
    live: bool,
    evses: list[Evse],
    profiles: list[SentProfile],
) -> dict[str, Any]:
    """A charge point: connection, boot data, connector 0 status, EVSEs, last profiles."""
    return {
        "id": record.id,
        "connected": live,
        "connection": {
            "connected": live,
            "remote": record.remote,
            "disconnectReason": record.disconnect_reason,
            "lastSeen": iso(record.last_seen),
        },
        "boot": {
            "chargePointVendor": record.vendor,
            "chargePointModel": record.model,
            "chargePointSerialNumber": record.charge_point_serial_number,
            "chargeBoxSerialNumber": record.charge_box_serial_number,
            "firmwareVersion": record.firmware_version,
            "iccid": record.iccid,
            "imsi": record.imsi,
            "meterType": record.meter_type,
            "meterSerialNumber": record.meter_serial_number,
            "registrationStatus": record.registration_status,
            "bootedAt": iso(record.booted_at),
        },
        "status": record.status,
        "errorCode": record.error_code,
        "localListVersion": record.local_list_version,
        "firmwareStatus": record.firmware_status,
        "firmwareStatusAt": iso(record.firmware_status_at),
        "diagnosticsStatus": record.diagnostics_status,
        "diagnosticsStatusAt": iso(record.diagnostics_status_at),
        "logStatus": record.log_status,
        "logStatusAt": iso(record.log_status_at),
        "signedFirmwareStatus": record.signed_firmware_status,
        "signedFirmwareStatusAt": iso(record.signed_firmware_status_at),
        "securityEventCount": record.security_event_count,
        "certificateSigningRequest": (
            {"csr": record.csr, "receivedAt": iso(record.csr_at)} if record.csr else None
        ),
        "securityEvents": [
            {"type": e.type, "timestamp": iso(e.timestamp), "techInfo": e.tech_info,
             "receivedAt": iso(e.at)}
            for e in record.security_events
        ],
        "evses": [evse(e) for e in evses],
        "chargingProfiles": [profile(p) for p in profiles],
    }


def transaction(record: Session) -> dict[str, Any]:
    """A transaction (the domain's session)."""
    return {
        "transactionId": record.transaction_id,
        "chargePoint": record.charger_id,
        "connectorId": record.connector_id,
        "idTag": record.id_tag,
        "authorizationStatus": record.auth_status,
        "reservationId": record.reservation_id,
        "active": record.open,
        "startTimestamp": record.start_timestamp,
        "startedAt": iso(record.started_at),
        "meterStart": record.meter_start,
        "stopTimestamp": record.stop_timestamp,
        "stoppedAt": iso(record.stopped_at),
        "meterStop": record.meter_stop,
        "energyWh": record.energy_wh,
        "stopReason": record.stop_reason,
        "stopIdTag": record.stop_id_tag,
        "powerW": record.power_w,
        "powerFromEnergy": record.power_from_energy,
        "nonCompliant": record.non_compliant,
        # The limit its charger accepted for it (its TxProfile's first period), and the
        # answer to a later profile it refused (it is then not controlled).
        "limit": None if record.limit is None else {
            "limit": record.limit.limit,
            "unit": record.limit.unit,
            "chargingProfileId": record.limit.profile_id,
            "purpose": record.limit.purpose,
            "acceptedAt": iso(record.limit.at),
        },
        "limitRefused": record.refused,
        # The highest limit sent for it and never answered since: it may be in force.
        "limitUnanswered": None if record.uncertain is None else {
            "limit": record.uncertain.limit, "unit": record.uncertain.unit,
            "sentAt": iso(record.uncertain.at),
        },
        "soc": record.soc,
        "samples": record.samples,
    }


def reservation(record: Reservation, now: datetime.datetime) -> dict[str, Any]:
    """A reservation; ``state`` is computed as of ``now``."""
    return {
        "reservationId": record.reservation_id,
        "chargePoint": record.charger_id,
        "connectorId": record.connector_id,
        "idTag": record.id_tag,
        "parentIdTag": record.parent_id_tag,
        "expiryDate": record.expiry_date,
        "status": record.status,
        "state": record.state_at(now),
        "requestedAt": iso(record.requested_at),
        "cancelStatus": record.cancel_status,
        "cancelledAt": iso(record.cancelled_at),
        "usedByTransactionId": record.used_by_transaction_id,
        "usedAt": iso(record.used_at),
    }


def remote_command(record: RemoteCommand) -> dict[str, Any]:
    """A RemoteStart/StopTransaction answer."""
    return {
        "action": record.action,
        "chargePoint": record.charger_id,
        "status": record.status,
        "connectorId": record.connector_id,
        "idTag": record.id_tag,
        "transactionId": record.transaction_id,
        "at": iso(record.at),
    }


def anomaly(record: Anomaly) -> dict[str, Any]:
    """Something a charger sent that did not add up (``raw``: the payload as sent, where
    its form was the anomaly)."""
    return {
        "kind": record.kind,
        "chargePoint": record.charger_id,
        "at": iso(record.at),
        "transactionId": record.transaction_id,
        "detail": record.detail,
        "raw": record.raw,
    }


def message(row: LogRow) -> dict[str, Any]:
    """One message-log row: the frame as on the wire, and parsed."""
    try:
        parsed: Any = orjson.loads(row.frame)
    except orjson.JSONDecodeError:
        parsed = None
    return {
        "seq": row.seq,
        "chargePoint": row.charger_id,
        "direction": row.direction,
        "at": iso(row.at),
        "frame": row.frame,
        "message": parsed,
    }


def id_tag(row: IdTagRow, effective_status: str) -> dict[str, Any]:
    """The operator's authorization data for one idTag."""
    return {
        "idTag": row.id_tag,
        "status": row.status,
        "expiryDate": iso(row.expiry_date),
        "parentIdTag": row.parent_id_tag,
        "updatedAt": iso(row.updated_at),
        "effectiveStatus": effective_status,
    }
