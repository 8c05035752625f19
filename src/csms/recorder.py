"""Where OCPP exchanges become durable domain state.

The live path for every answered CALL: the projection turns (request, answer) into
events, the fold applies them to the in-memory state, and the records they touched are
queued for the store, in the same group commit as the frames themselves. Connection
open/close are recorded in the message log too, so that replay sees them.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

import orjson

from csms.domain import events as ev
from csms.domain.projection import (
    events_for,
    events_for_abandoned,
    events_for_answer,
    events_for_call,
)
from csms.domain.state import DomainState, apply
from csms.storage.base import Changes, MeterReadingRow, SampleRow, Store
from ocppj import frames
from ocppj.errors import FrameError
from ocppj.outgoing import abandoned_was_sent
from ocppj.tolerance import Tolerated

log = logging.getLogger("csms.recorder")


def sample_rows(event: ev.MeterSampled) -> tuple[SampleRow, ...]:
    """The stored rows of a MeterSampled event."""
    return tuple(
        SampleRow(event.charger_id, event.connector_id, event.transaction_id, event.at, sample)
        for sample in event.samples
    )


def connection_event(
    charger_id: str, direction: str, frame: str, at: datetime.datetime
) -> ev.Event | None:
    """The event of a ``connect`` / ``disconnect`` log row (None for a replaced connection,
    whose successor is already connected)."""
    data = orjson.loads(frame)
    if direction == "connect":
        return ev.ChargerConnected(charger_id, at, str(data.get("remote", "")))
    if data.get("replaced"):
        return None
    return ev.ChargerDisconnected(charger_id, at, str(data.get("reason", "")))


def events_for_our_frame(
    state: DomainState, charger_id: str, direction: str, frame: str, at: datetime.datetime
) -> list[ev.Event]:
    """The events of a message-log row of ours: a CALL we sent (``out``), or one we gave
    up (``abandoned``, its text ``{"uniqueId", "action"}``)."""
    if direction == "abandoned":
        data = orjson.loads(frame)
        # Rows written before reasons were recorded are timeouts or cancellations; before
        # ``logged`` was, every CALL was logged before it was to leave.
        return events_for_abandoned(state, charger_id, str(data.get("action")), at,
                                    sent=abandoned_was_sent(data),
                                    logged=data.get("logged") is not False)
    if direction != "out":
        return []
    try:
        parsed = frames.parse(frame)
    except FrameError:
        return []
    if not isinstance(parsed, frames.Call):
        return []
    return events_for_call(state, charger_id, parsed.action, parsed.payload, at)


class Recorder:
    """Applies exchanges to ``state`` and queues the changes on ``store``."""

    def __init__(self, state: DomainState, store: Store) -> None:
        self.state = state
        self.store = store

    def exchange(
        self, charger_id: str, action: str, request: Any, response: Any, at: datetime.datetime,
        tolerated: Tolerated | None = None,
    ) -> list[ev.Event]:
        """Record an answered CALL (``tolerated``: how its payload was repaired, if it
        was); returns the events it produced."""
        events = events_for(self.state, charger_id, action, request, response, at, tolerated)
        self._apply(events)
        return events

    def answer(
        self,
        charger_id: str,
        action: str,
        request: dict[str, Any],
        response: dict[str, Any] | None,
        error: str | None,
        at: datetime.datetime,
    ) -> list[ev.Event]:
        """Record a charger's answer to a CALL of ours (``at``: when the answer was read)."""
        events = events_for_answer(self.state, charger_id, action, request, response, error, at)
        if events:
            self._apply(events)
        return events

    def call_frame(self, charger_id: str, direction: str, frame: str,
                   at: datetime.datetime) -> None:
        """Apply what one of our CALLs going out, or given up, changes (``frame``: as the
        message log keeps it). Cheap for every other frame: only SetChargingProfile counts."""
        if '"SetChargingProfile"' not in frame:
            return
        events = events_for_our_frame(self.state, charger_id, direction, frame, at)
        if events:
            self._apply(events)

    def connection(
        self, charger_id: str, direction: str, at: datetime.datetime, **data: Any
    ) -> None:
        """Record a WebSocket opening (``connect``) or closing (``disconnect``)."""
        frame = orjson.dumps(data).decode()
        self.store.append_frame(charger_id, direction, frame, at)
        event = connection_event(charger_id, direction, frame, at)
        if event is not None:
            self._apply([event])

    def _apply(self, events: list[ev.Event]) -> None:
        next_tx = self.state.next_transaction_id
        readings: list[MeterReadingRow] = []
        for event in events:
            if isinstance(event, ev.ProjectionFailed):
                log.error("%s: %s not projected (a bug; kept as an unprojectable anomaly): %s",
                          event.charger_id, event.action, event.detail)
            apply(self.state, event)
            if isinstance(event, ev.MeterSampled):
                readings.append(MeterReadingRow(event.charger_id, event.connector_id,
                                                event.transaction_id, event.at, event.samples))
        self.store.save(changes_of(self.state, readings, next_tx))


def changes_of(
    state: DomainState, readings: list[MeterReadingRow], previous_next_tx: int
) -> Changes:
    """The records ``state`` marked dirty, as a Changes to write.

    One pass over the dirty set, sorting its keys by kind (each kind keeps the set's
    order), and only the kinds present are gathered: every answer comes here, most touch
    one or two kinds (a Heartbeat or a repeated MeterValues only the last-seen time), and
    building all eleven cost 5.6 us.
    """
    dirty = state.take_dirty()
    by_kind: dict[str, list[Any]] = {}
    for kind, key in dirty:
        by_kind.setdefault(kind, []).append(key)
    fields: dict[str, Any] = {}
    for kind, keys in by_kind.items():
        if kind == "seen":
            fields["seen"] = tuple((key, state.chargers[key].last_seen) for key in keys
                                   if ("charger", key) not in dirty)
        elif kind == "charger":
            fields["chargers"] = tuple(state.chargers[key] for key in keys)
        elif kind == "evse":
            fields["evses"] = tuple(state.evses[key] for key in keys)
        elif kind == "session":
            fields["sessions"] = tuple(state.sessions[key] for key in keys)
        elif kind == "anomaly":
            fields["anomalies"] = tuple((key, state.anomalies[key]) for key in keys)
        elif kind == "profile":
            fields["profiles"] = tuple(state.profiles[key] for key in keys
                                       if key in state.profiles)
            fields["removed_profiles"] = tuple(key for key in keys if key not in state.profiles)
        elif kind == "reservation":
            fields["reservations"] = tuple(state.reservations[key] for key in keys)
        elif kind == "meter_key":
            fields["meter_keys"] = tuple((key, state.meter_keys[key]) for key in keys)
        elif kind == "remote_command":
            fields["remote_commands"] = tuple((key, state.remote_commands[key]) for key in keys)
        else:
            raise ValueError(f"a dirty record of unknown kind {kind!r}")
    if readings:
        fields["readings"] = tuple(readings)
    if state.next_transaction_id != previous_next_tx:
        fields["next_transaction_id"] = state.next_transaction_id
    return Changes(**fields)
