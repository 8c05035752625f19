"""What a simulated charge point is and holds: its configuration, its EVSEs at run time,
their transactions and reservations, and the session records of the report. Plain data."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import attrs

from sim.ev import Ev
from sim.evse import Evse


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
        rate_units: ChargingScheduleAllowedChargingRateUnit (``Current,Power``,
            ``Current`` or ``Power``): the profile units it takes.
        max_stack_level, max_periods: ChargeProfileMaxStackLevel and
            ChargingScheduleMaxPeriods; profiles beyond them are Rejected.
        tx_profiles: False: it refuses every TxProfile.
        clock_skew_s: how far its clock is ahead (negative: behind) of the true time:
            the timestamps it sends and the moment it evaluates profiles at.
        password: its AuthorizationKey: sent with HTTP Basic authentication (security
            profiles 1 and 2); the CSMS may change it with ChangeConfiguration.
        tls_ca: a PEM file of the CA it trusts for ``wss://`` (None: the system's).
        tls_cert: a PEM file with its client certificate and key (security profile 3).
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
    rate_units: str = "Current,Power"
    max_stack_level: int = 8
    max_periods: int = 24
    tx_profiles: bool = True
    clock_skew_s: float = 0.0
    password: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None


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
class TxMessage:
    """One transaction message in the charger's durable queue.

    Attributes:
        action: StartTransaction, MeterValues or StopTransaction.
        build: makes the payload when the message first goes out (a MeterValues learns its
            transactionId only once the StartTransaction before it was answered).
        on_result: called with the CSMS's answer.
        payload: the payload as first sent; a resend sends it unchanged.
        transmissions: how many times it went out.
    """

    action: str
    build: Callable[[], dict[str, Any]]
    on_result: Callable[[dict[str, Any]], None] | None = None
    payload: dict[str, Any] | None = None
    transmissions: int = 0
