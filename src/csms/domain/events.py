"""Domain events, named in the past tense. Each carries the charger and the moment the
OCPP message that caused it was received (``at``)."""

from __future__ import annotations

import datetime

from attrs import frozen

from csms.domain.meter import Sample
from csms.domain.model import SentProfile


@frozen
class ChargerConnected:
    """A charger's WebSocket opened."""

    charger_id: str
    at: datetime.datetime
    remote: str


@frozen
class ChargerDisconnected:
    """A charger's WebSocket closed (or the CSMS restarted while it was open)."""

    charger_id: str
    at: datetime.datetime
    reason: str


@frozen
class ChargerBooted:
    """BootNotification answered."""

    charger_id: str
    at: datetime.datetime
    vendor: str
    model: str
    charge_point_serial_number: str | None
    charge_box_serial_number: str | None
    firmware_version: str | None
    iccid: str | None
    imsi: str | None
    meter_type: str | None
    meter_serial_number: str | None
    registration_status: str


@frozen
class ChargerSeen:
    """A message that changes nothing but the charger's last-seen time (a retransmission,
    an action the domain does not model)."""

    charger_id: str
    at: datetime.datetime


@frozen
class HeartbeatReceived:
    """Heartbeat answered."""

    charger_id: str
    at: datetime.datetime


@frozen
class ConnectorStatusChanged:
    """StatusNotification; connector 0 is the charger as a whole."""

    charger_id: str
    at: datetime.datetime
    connector_id: int
    status: str
    error_code: str
    info: str | None
    vendor_id: str | None
    vendor_error_code: str | None
    timestamp: datetime.datetime | None


@frozen
class IdTagAuthorized:
    """Authorize answered with ``status``."""

    charger_id: str
    at: datetime.datetime
    id_tag: str
    status: str


@frozen
class SessionStarted:
    """StartTransaction answered with a new transactionId."""

    charger_id: str
    at: datetime.datetime
    transaction_id: int
    connector_id: int
    id_tag: str
    auth_status: str
    meter_start: int
    timestamp: str
    reservation_id: int | None


@frozen
class SessionSuperseded:
    """A new StartTransaction on a connector closed the session still open there."""

    charger_id: str
    at: datetime.datetime
    transaction_id: int
    by_transaction_id: int


@frozen
class SessionOrphaned:
    """After a reboot since the session started, the first status the charger reported
    for its connector is ``Available``: it holds no transaction there (it lost it in the
    reboot), so no StopTransaction may ever come. ``evidence`` says what showed it."""

    charger_id: str
    at: datetime.datetime
    transaction_id: int
    evidence: str


@frozen
class MeterSampled:
    """Sampled values from MeterValues (or a StopTransaction's transactionData).

    ``transaction_id`` is the session they belong to: the one named, else the connector's
    open session; None for charger-level values (connector 0, or no open session).
    """

    charger_id: str
    at: datetime.datetime
    connector_id: int
    transaction_id: int | None
    samples: tuple[Sample, ...]
    #: For MeterValues: what makes a retransmission of the same message recognisable.
    key: str | None = None
    #: MeterValues for a session already closed: stored, counted as an anomaly, and the
    #: session's figures left as they are.
    late: bool = False


@frozen
class SessionStopped:
    """StopTransaction for an open session."""

    charger_id: str
    at: datetime.datetime
    transaction_id: int
    meter_stop: int
    timestamp: str
    reason: str
    id_tag: str | None


@frozen
class UnknownTransactionStopped:
    """StopTransaction naming a transactionId this CSMS never gave out; answered and kept."""

    charger_id: str
    at: datetime.datetime
    transaction_id: int
    meter_stop: int
    timestamp: str
    reason: str


@frozen
class UnknownTransactionMetered:
    """MeterValues naming a transactionId that is unknown or another charger's; the
    samples are kept at charger level."""

    charger_id: str
    at: datetime.datetime
    transaction_id: int


@frozen
class ChargingProfileAnswered:
    """The charger answered our SetChargingProfile: ``profile.status`` is Accepted,
    Rejected, NotSupported, or the CALLERROR code it sent."""

    charger_id: str
    at: datetime.datetime
    profile: SentProfile


@frozen
class ChargingProfileSent:
    """We sent a SetChargingProfile for an open session (the CALL is in the message log;
    ``profile.status`` is "Sent"): until it is answered, the charger may be applying it."""

    charger_id: str
    at: datetime.datetime
    profile: SentProfile


@frozen
class CallAbandoned:
    """One of our CALLs ended without an answer (timed out, its caller cancelled, or the
    connection closed); ``sent`` False: the connection closed as it was being sent, and
    the charger never saw it."""

    charger_id: str
    at: datetime.datetime
    action: str
    sent: bool = True


@frozen
class ConfigurationReported:
    """The charger reported configuration key values: its answer to our GetConfiguration,
    or a ChangeConfiguration it accepted. ``values`` holds the keys that came with a value,
    in the order sent; ``unknown`` the keys it said it does not know."""

    charger_id: str
    at: datetime.datetime
    values: tuple[tuple[str, str], ...]
    unknown: tuple[str, ...] = ()


@frozen
class DataTransferReceived:
    """DataTransfer answered with ``status``."""

    charger_id: str
    at: datetime.datetime
    vendor_id: str
    message_id: str | None
    status: str


@frozen
class ChargingProfilesCleared:
    """The charger answered our ClearChargingProfile with ``status`` (Accepted, Unknown, or
    the CALLERROR code it sent); the criteria are those of the request (None: any)."""

    charger_id: str
    at: datetime.datetime
    profile_id: int | None
    connector_id: int | None
    purpose: str | None
    stack_level: int | None
    status: str


@frozen
class ReservationAnswered:
    """The charger answered our ReserveNow: ``status`` is Accepted, Faulted, Occupied,
    Rejected, Unavailable, or the CALLERROR code it sent."""

    charger_id: str
    at: datetime.datetime
    reservation_id: int
    connector_id: int
    id_tag: str
    parent_id_tag: str | None
    expiry_date: str
    status: str


@frozen
class ReservationCancelAnswered:
    """The charger answered our CancelReservation: Accepted, Rejected or a CALLERROR code."""

    charger_id: str
    at: datetime.datetime
    reservation_id: int
    status: str


@frozen
class LocalListVersionReported:
    """The charger's local authorization list version: from a SendLocalList it accepted
    (``source`` SendLocalList) or a GetLocalListVersion answer (``source``
    GetLocalListVersion; 0 = empty list, -1 = not supported)."""

    charger_id: str
    at: datetime.datetime
    version: int
    source: str


@frozen
class FirmwareStatusReported:
    """FirmwareStatusNotification answered."""

    charger_id: str
    at: datetime.datetime
    status: str


@frozen
class DiagnosticsStatusReported:
    """DiagnosticsStatusNotification answered."""

    charger_id: str
    at: datetime.datetime
    status: str


@frozen
class LogStatusReported:
    """LogStatusNotification answered (security extension)."""

    charger_id: str
    at: datetime.datetime
    status: str


@frozen
class SignedFirmwareStatusReported:
    """SignedFirmwareStatusNotification answered (security extension)."""

    charger_id: str
    at: datetime.datetime
    status: str


@frozen
class SecurityEventReported:
    """SecurityEventNotification answered: the event's type, the charger's timestamp and
    its techInfo."""

    charger_id: str
    at: datetime.datetime
    type: str
    timestamp: datetime.datetime | None
    tech_info: str | None


@frozen
class CertificateSigningRequested:
    """SignCertificate answered: the charger's CSR, for the operator to sign."""

    charger_id: str
    at: datetime.datetime
    csr: str


@frozen
class CallTolerated:
    """A CALL that broke its schema was answered with its usable data kept (see
    :mod:`ocppj.tolerance`): what was repaired, and the payload as sent."""

    charger_id: str
    at: datetime.datetime
    action: str
    detail: str
    raw: str
    transaction_id: int | None


@frozen
class ProjectionFailed:
    """A message no projector could read (a bug): answered and kept in the message log,
    its effect on the records missing; an ``unprojectable`` anomaly says so."""

    charger_id: str
    at: datetime.datetime
    action: str
    detail: str


@frozen
class RemoteCommandAnswered:
    """The charger answered our RemoteStartTransaction or RemoteStopTransaction:
    ``status`` is Accepted, Rejected or the CALLERROR code it sent."""

    charger_id: str
    at: datetime.datetime
    action: str
    connector_id: int | None
    id_tag: str | None
    transaction_id: int | None
    status: str


Event = (
    ChargerConnected
    | CallTolerated
    | ProjectionFailed
    | ChargerDisconnected
    | ChargerBooted
    | ChargerSeen
    | HeartbeatReceived
    | ConnectorStatusChanged
    | IdTagAuthorized
    | SessionStarted
    | SessionSuperseded
    | SessionOrphaned
    | MeterSampled
    | SessionStopped
    | UnknownTransactionStopped
    | UnknownTransactionMetered
    | DataTransferReceived
    | ChargingProfileAnswered
    | ChargingProfileSent
    | CallAbandoned
    | ConfigurationReported
    | ChargingProfilesCleared
    | ReservationAnswered
    | ReservationCancelAnswered
    | LocalListVersionReported
    | FirmwareStatusReported
    | DiagnosticsStatusReported
    | LogStatusReported
    | SignedFirmwareStatusReported
    | SecurityEventReported
    | CertificateSigningRequested
    | RemoteCommandAnswered
)
