"""The storage interface the CSMS writes through, whatever the database."""

from __future__ import annotations

import datetime
from typing import Protocol

from attrs import frozen

from csms.domain.meter import Sample
from csms.domain.model import (
    Anomaly,
    Charger,
    Evse,
    RemoteCommand,
    Reservation,
    SentProfile,
    Session,
)
from csms.domain.state import DomainState
from csms.registry import Registration


@frozen
class LogRow:
    """One row of the OCPP message log.

    ``direction`` is ``in`` / ``out`` (a frame, as on the wire), ``connect`` /
    ``disconnect`` (the WebSocket opened or closed; ``frame`` is a JSON object with the
    remote address or the reason), or ``abandoned`` (a CALL of ours was given up without
    an answer; ``frame`` is ``{"uniqueId", "action"}``: a later answer to it is still
    recorded, if it comes on the same connection while the CALL is among its last
    ``LATE_ANSWERS_KEPT`` given up; else dropped).
    """

    seq: int
    charger_id: str
    direction: str
    at: datetime.datetime
    frame: str


@frozen
class SampleRow:
    """One stored sampled value and what it belongs to."""

    charger_id: str
    connector_id: int
    transaction_id: int | None
    received_at: datetime.datetime
    sample: Sample


@frozen
class MeterReadingRow:
    """One stored MeterValues (a MeterSampled event): its samples, in the order sent, and
    what they belong to."""

    charger_id: str
    connector_id: int
    transaction_id: int | None
    received_at: datetime.datetime
    samples: tuple[Sample, ...]


@frozen
class Changes:
    """Projection records to write, as the fold left them."""

    chargers: tuple[Charger, ...] = ()
    #: Chargers whose last-seen time alone changed: (charger id, last seen).
    seen: tuple[tuple[str, datetime.datetime | None], ...] = ()
    evses: tuple[Evse, ...] = ()
    sessions: tuple[Session, ...] = ()
    anomalies: tuple[tuple[int, Anomaly], ...] = ()
    readings: tuple[MeterReadingRow, ...] = ()
    profiles: tuple[SentProfile, ...] = ()
    next_transaction_id: int | None = None
    #: (charger, connector) whose profile a ClearChargingProfile removed.
    removed_profiles: tuple[tuple[str, int], ...] = ()
    reservations: tuple[Reservation, ...] = ()
    remote_commands: tuple[tuple[int, RemoteCommand], ...] = ()
    meter_keys: tuple[tuple[tuple[str, int], str], ...] = ()


@frozen
class IdTagRow:
    """An idTag the operator set (authorization data; not part of the replayed domain).

    ``expiry_date`` is an aware UTC datetime, or None for no expiry.
    """

    id_tag: str
    status: str
    expiry_date: datetime.datetime | None = None
    parent_id_tag: str | None = None
    updated_at: datetime.datetime | None = None


@frozen
class StoreStatistics:
    """Counters of a store (see :meth:`Store.statistics`)."""

    #: Rows queued, not yet taken by a commit.
    pending: int
    #: A commit is on the database thread now.
    in_flight: bool
    #: Commits since start.
    commits: int
    #: Rows those commits wrote (message-log frames, projection changes).
    rows_written: int
    #: Flushes those commits released: answers that waited for their rows to be stored.
    flushes: int = 0
    #: Why the database cannot be written now (a disk error), or None.
    unavailable: str | None = None


class Store(Protocol):
    """What the CSMS needs from its database.

    Writes are queued and committed in groups by one writer; :meth:`flush` waits until
    everything queued before it is durable.
    """

    def append_frame(
        self, charger_id: str, direction: str, frame: str, at: datetime.datetime
    ) -> None:
        """Queue one message-log row."""

    def forget_unsent(self, charger_id: str, unique_id: str, summary: str) -> None:
        """Queue the replacement of our logged CALL ``unique_id``, which never left, by
        ``summary``."""

    def save(self, changes: Changes) -> None:
        """Queue projection changes."""

    async def flush(self) -> None:
        """Return once everything queued so far is committed."""

    async def load_state(self) -> DomainState:
        """The domain state as the projection tables hold it."""

    async def read_log(self, charger_id: str | None = None) -> list[LogRow]:
        """The message log in order, optionally for one charger."""

    async def read_samples(self, measurand: str | None = None) -> list[SampleRow]:
        """Every stored sampled value (of one measurand, if given), in order."""

    async def read_messages(
        self, charger_id: str | None = None, limit: int = 100
    ) -> list[LogRow]:
        """The newest ``limit`` rows of the message log, newest first."""

    def put_id_tag(self, row: IdTagRow) -> None:
        """Queue an idTag's authorization data (insert or replace)."""

    def delete_id_tag(self, id_tag: str) -> None:
        """Queue the removal of an idTag's authorization data."""

    async def read_id_tags(self) -> list[IdTagRow]:
        """Every idTag the operator set, by idTag."""

    def put_registration(self, registration: Registration) -> None:
        """Queue a charger's registration (insert or replace)."""

    def delete_registration(self, charger_id: str) -> None:
        """Queue the removal of a charger's registration."""

    async def read_registrations(self) -> list[Registration]:
        """Every registration, by charger id."""

    def statistics(self) -> StoreStatistics:
        """A snapshot of the writer's counters."""
