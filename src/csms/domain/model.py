"""The domain's records: chargers, EVSEs, sessions, anomalies. Frozen; changed with ``evolve``."""

from __future__ import annotations

import datetime

import attrs
from attrs import field, frozen

from ocppj.charging import NOMINAL_VOLTAGE_V
from ocppj.timestamps import parse_timestamp

#: OCPP statuses under which an EVSE gets no power allocation.
UNAVAILABLE_STATUSES = frozenset({"Faulted", "Unavailable"})


@frozen
class Charger:
    """A charge point, as its OCPP messages describe it.

    ``status``/``error_code`` are those of connector 0 (the charge point as a whole).
    """

    id: str
    vendor: str | None = None
    model: str | None = None
    charge_point_serial_number: str | None = None
    charge_box_serial_number: str | None = None
    firmware_version: str | None = None
    iccid: str | None = None
    imsi: str | None = None
    meter_type: str | None = None
    meter_serial_number: str | None = None
    registration_status: str | None = None
    booted_at: datetime.datetime | None = None
    connected: bool = False
    remote: str | None = None
    disconnect_reason: str | None = None
    last_seen: datetime.datetime | None = None
    status: str | None = None
    error_code: str | None = None
    local_list_version: int | None = None
    firmware_status: str | None = None
    firmware_status_at: datetime.datetime | None = None
    diagnostics_status: str | None = None
    diagnostics_status_at: datetime.datetime | None = None
    log_status: str | None = None
    log_status_at: datetime.datetime | None = None
    signed_firmware_status: str | None = None
    signed_firmware_status_at: datetime.datetime | None = None
    #: The last SecurityEventNotifications (at most ``SECURITY_EVENTS_KEPT``), oldest
    #: first, and how many it sent in all.
    security_events: tuple[SecurityEvent, ...] = ()
    security_event_count: int = 0
    #: The last SignCertificate's CSR (PEM) and when it came: for the operator to sign
    #: with the CA of their choice, then send back with CertificateSigned.
    csr: str | None = None
    csr_at: datetime.datetime | None = None
    #: The configuration keys the charger reported (GetConfiguration answers, accepted
    #: ChangeConfigurations), by key: what the CSMS knows of its capabilities.
    configuration: dict[str, str] = field(factory=dict)


@frozen
class SecurityEvent:
    """One SecurityEventNotification: its type (e.g. ``FirmwareUpdated``,
    ``InvalidCentralSystemCertificate``), the charger's timestamp, its techInfo, and when
    the CSMS received it."""

    type: str
    timestamp: datetime.datetime | None
    tech_info: str | None
    at: datetime.datetime


#: SecurityEventNotifications kept per charger (the message log has every one).
SECURITY_EVENTS_KEPT = 20


@frozen
class Evse:
    """One connector of a charger (OCPP connectorId ≥ 1; shown as ``EVSE_<id>``)."""

    charger_id: str
    connector_id: int
    status: str
    error_code: str = "NoError"
    info: str | None = None
    vendor_id: str | None = None
    vendor_error_code: str | None = None
    status_timestamp: datetime.datetime | None = None
    plugged_in: bool = False
    #: When the CSMS received the status.
    status_at: datetime.datetime | None = None

    @property
    def available(self) -> bool:
        """Whether the EVSE may be given power (not Faulted, not Unavailable)."""
        return self.status not in UNAVAILABLE_STATUSES


@frozen
class SentProfile:
    """The last charging profile the CSMS sent to a connector, and the charger's answer.

    ``limit`` is the first period's limit in ``unit`` (A or W); ``status`` is Accepted,
    Rejected, NotSupported or a CALLERROR code.
    """

    charger_id: str
    connector_id: int
    profile_id: int
    purpose: str
    stack_level: int
    transaction_id: int | None
    unit: str
    limit: float
    status: str
    at: datetime.datetime
    #: The first period's numberPhases, if given.
    phases: int | None = None

    def same_call(self, other: SentProfile) -> bool:
        """Whether ``other`` records the same SetChargingProfile (its answer aside)."""
        return attrs.evolve(self, status=other.status, at=other.at) == other

    def watts(self, phases: int = 3) -> float:
        """The most it lets an EV draw, in W: a limit in A on its numberPhases, else on
        ``phases`` (the EVSE's; three, the most a charger may apply it to, if unknown)."""
        if self.unit == "W":
            return self.limit
        return self.limit * NOMINAL_VOLTAGE_V * (self.phases or phases)


@frozen
class Session:
    """A charging session: one OCPP transaction. Energies in Wh, power in W, current in A."""

    transaction_id: int
    charger_id: str
    connector_id: int
    id_tag: str
    auth_status: str
    meter_start: int
    start_timestamp: str
    started_at: datetime.datetime
    reservation_id: int | None = None
    energy_wh: float = 0.0
    last_register_wh: float | None = None
    power_w: float | None = None
    #: ``power_w`` was derived from the energy register (the charger reports no power).
    power_from_energy: bool = False
    #: When the charger read ``last_register_wh`` (its meterValue timestamp).
    last_register_at: datetime.datetime | None = None
    current_a: tuple[tuple[str, float], ...] | None = None
    soc: float | None = None
    samples: int = 0
    #: Readings in a row that showed the EV drawing clearly more than the limit its
    #: charger accepted for the session (see :mod:`csms.domain.compliance`).
    overdraw_readings: int = 0
    #: It overdraws persistently: smart charging counts it at what it draws.
    non_compliant: bool = False
    #: Since when (received) its readings show it drawing nothing (``IDLE_W`` or less).
    idle_since: datetime.datetime | None = None
    #: The last profile its charger accepted for it (its TxProfile, or the TxDefaultProfile
    #: on its connector that stands in for one): the limit in force, as OCPP recorded it.
    limit: SentProfile | None = None
    #: The answer to the last profile sent for it, when that was not Accepted (Rejected,
    #: NotSupported, a CALLERROR code): smart charging does not control it until one is.
    refused: str | None = None
    #: The limits its charger accepted in the minute before the latest (``limit``, last),
    #: and the one in force a minute before it: what the charger may still be applying.
    recent_limits: tuple[SentProfile, ...] = ()
    #: The profile sent for it and not answered yet (a CSMS stopped in between leaves it
    #: here): its charger may be applying it.
    pending: SentProfile | None = None
    #: The highest profile sent for it since the last it accepted that was never answered
    #: (given up): its charger may have applied it, and may still be enforcing it.
    uncertain: SentProfile | None = None
    open: bool = True
    stop_timestamp: str | None = None
    stopped_at: datetime.datetime | None = None
    meter_stop: int | None = None
    stop_reason: str | None = None
    stop_id_tag: str | None = None

    @property
    def start_time(self) -> datetime.datetime:
        """When the charger says the session started (receive time if unreadable)."""
        return parse_timestamp(self.start_timestamp) or self.started_at


@frozen
class Anomaly:
    """Something a charger sent that does not add up, kept for the operator.

    Attributes:
        kind: ``register_backwards``, ``unknown_transaction``, ``superseded``,
            ``orphaned``, ``late_stop``, ``stop_below_start``, ``tolerated``.
        key: what identifies the message behind it, where a retransmission must be
            recognised (an unknown transaction's StopTransaction).
        raw: the payload as the charger sent it, where its form is the anomaly
            (``tolerated``).
    """

    at: datetime.datetime
    charger_id: str
    kind: str
    detail: str
    transaction_id: int | None = None
    key: str | None = None
    raw: str | None = None


@frozen
class Reservation:
    """A ReserveNow the CSMS sent, as the charger answered it, and what became of it.

    Whether it has expired is not stored: it depends on the time of asking, and the
    domain has no clock (see :meth:`state_at`).

    Attributes:
        status: the charger's answer to ReserveNow (Accepted, Faulted, Occupied, Rejected,
            Unavailable) or the CALLERROR code it sent.
        expiry_date: as sent in ReserveNow.
        requested_at: when the answer was received.
        cancel_status: the answer to our CancelReservation, if one was sent.
        used_by_transaction_id: the transaction a StartTransaction with this
            reservationId started.
    """

    reservation_id: int
    charger_id: str
    connector_id: int
    id_tag: str
    parent_id_tag: str | None
    expiry_date: str
    status: str
    requested_at: datetime.datetime
    cancel_status: str | None = None
    cancelled_at: datetime.datetime | None = None
    used_by_transaction_id: int | None = None
    used_at: datetime.datetime | None = None

    @property
    def expiry(self) -> datetime.datetime | None:
        """The expiry date, parsed (None if unreadable)."""
        return parse_timestamp(self.expiry_date)

    def state_at(self, now: datetime.datetime) -> str:
        """``used``, ``cancelled``, ``expired``, ``active``, or ``refused`` (the charger did
        not accept it), as of ``now``."""
        if self.used_by_transaction_id is not None:
            return "used"
        if self.cancel_status == "Accepted":
            return "cancelled"
        if self.status != "Accepted":
            return "refused"
        expiry = self.expiry
        if expiry is not None and now >= expiry:
            return "expired"
        return "active"


@frozen
class RemoteCommand:
    """A RemoteStartTransaction / RemoteStopTransaction the CSMS sent, and the answer."""

    at: datetime.datetime
    charger_id: str
    action: str
    status: str
    connector_id: int | None = None
    id_tag: str | None = None
    transaction_id: int | None = None
