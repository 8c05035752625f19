"""Rebuild the domain state from the OCPP message log alone, and compare it with the store.

The rebuild pairs every CALL a charger sent with the answer we sent, by the live session's
own rule: per connection, in the order the CALLs were read (so a uniqueId a charger
reuses, or reuses after reconnecting, pairs right), and runs each CALL answered with a
CALLRESULT through the same projection and fold as the live CSMS. Connection rows open and
close chargers. Frames that were answered with a CALLERROR, or never answered, change
nothing, live or replayed. A row that cannot be read stops the rebuild with
:class:`UnreadableRow`, naming it.
"""

from __future__ import annotations

import collections
import datetime
from collections.abc import Iterable
from typing import Any

import attrs
import orjson

from csms.domain import events as ev
from csms.domain.projection import events_for, events_for_answer, events_for_call
from csms.domain.state import DomainState, apply
from csms.recorder import connection_event, events_for_our_frame, sample_rows
from csms.storage.base import LogRow, SampleRow
from ocppj import frames
from ocppj.errors import FrameError, PayloadError
from ocppj.outgoing import keep_given_up
from ocppj.payloads import request_from_payload, response_from_payload
from ocppj.schemas import ACTIONS, validate_response
from ocppj.tolerance import Tolerated, admit


@attrs.frozen
class Rebuilt:
    """The result of a rebuild: the state and every sampled value, in order."""

    state: DomainState
    samples: list[SampleRow]


class UnreadableRow(Exception):
    """A message-log row the rebuild could not take (a damaged row, or a bug).

    Attributes:
        row: the row.
    """

    def __init__(self, row: LogRow, error: Exception) -> None:
        frame = row.frame if len(row.frame) <= 200 else row.frame[:200] + "…"
        super().__init__(
            f"message_log row {row.seq} ({row.charger_id}, {row.direction}, "
            f"{row.at.isoformat()}) could not be read: {type(error).__name__}: {error}; "
            f"its text: {frame}"
        )
        self.row = row


def rebuild(rows: Iterable[LogRow]) -> Rebuilt:
    """Fold the message log into a fresh domain state.

    Raises:
        UnreadableRow: a row that cannot be read, named; nothing else.
    """
    rebuild = _Rebuild()
    for row in rows:
        try:
            rebuild.row(row)
        except Exception as exc:
            raise UnreadableRow(row, exc) from exc
    rebuild.state.take_dirty()
    return Rebuilt(rebuild.state, rebuild.samples)


#: A charger's CALL as the live CSMS queued it for its handler: uniqueId, and what the
#: handler saw (None: it was answered with a CALLERROR).
_Queued = tuple[str, "_Received | None"]


@attrs.define
class _Inbox:
    """A charger's CALLs awaiting our answer, in the order its connection read them: the
    live session answers them one at a time, in that order (only a frame it cannot parse
    is answered at once, with a CALLERROR, out of turn). A new connection starts a new
    inbox; the previous one's first CALL may still be answered after it opened (its
    handler was running when the connection was replaced)."""

    current: collections.deque[_Queued] = attrs.Factory(collections.deque)
    previous: collections.deque[_Queued] = attrs.Factory(collections.deque)

    def reconnected(self) -> None:
        self.previous, self.current = self.current, collections.deque()

    def answered(self, unique_id: str) -> _Queued | None:
        """The CALL an answer with ``unique_id`` answers: the first awaiting one, if it has
        that id; None for an answer given out of turn (to a frame that could not be
        parsed)."""
        for queue in (self.current, self.previous):
            if queue and queue[0][0] == unique_id:
                return queue.popleft()
        return None


@attrs.define
class _Rebuild:
    state: DomainState = attrs.Factory(DomainState)
    samples: list[SampleRow] = attrs.Factory(list)
    inboxes: dict[str, _Inbox] = attrs.Factory(dict)
    # Our CALL awaiting its answer, per charger: at most one is outstanding. It is given
    # up by an 'abandoned' row (timed out, or its caller cancelled), or, in a log written
    # before those rows existed, by our next CALL; an answer after that was dropped live.
    ours: dict[str, tuple[str, str, dict[str, Any]]] = attrs.Factory(dict)
    # Our CALLs given up, per charger (its connection's last LATE_ANSWERS_KEPT): a late
    # answer to one was recorded live, and is here.
    late: dict[str, dict[str, tuple[str, str, dict[str, Any]]]] = attrs.Factory(dict)

    def apply_all(self, events: Iterable[ev.Event]) -> None:
        for event in events:
            apply(self.state, event)
            if isinstance(event, ev.MeterSampled):
                self.samples.extend(sample_rows(event))

    def row(self, row: LogRow) -> None:
        cp_id = row.charger_id
        if row.direction in ("connect", "disconnect"):
            self.late.pop(cp_id, None)  # a new connection: a new session
            if row.direction == "connect":
                self.inboxes.setdefault(cp_id, _Inbox()).reconnected()
            event = connection_event(cp_id, row.direction, row.frame, row.at)
            self.apply_all([event] if event is not None else [])
            return
        if row.direction == "abandoned":
            self.apply_all(events_for_our_frame(self.state, cp_id, row.direction, row.frame,
                                                row.at))
            _give_up(self.ours, self.late.setdefault(cp_id, {}), row)
            return
        try:
            frame = frames.parse(row.frame)
        except FrameError:
            return
        if isinstance(frame, frames.Call):
            if row.direction == "in":
                inbox = self.inboxes.setdefault(cp_id, _Inbox())
                inbox.current.append((frame.unique_id, _received(frame, row.at)))
            elif row.direction == "out":
                self.ours[cp_id] = (frame.unique_id, frame.action, frame.payload)
                self.apply_all(events_for_call(self.state, cp_id, frame.action,
                                               frame.payload, row.at))
        elif row.direction == "out":
            self.our_answer(cp_id, frame)
        elif row.direction == "in":
            mine = _awaited(self.ours, self.late, cp_id, str(frame.unique_id))
            if mine is None:
                return  # an answer to nothing outstanding: the live CSMS dropped it too
            _, action, payload = mine
            answer, error = _answer_of(action, frame)
            self.apply_all(events_for_answer(self.state, cp_id, action, payload, answer,
                                             error, row.at))

    def our_answer(self, cp_id: str, frame: frames.CallResult | frames.CallErrorFrame) -> None:
        """Our answer to a charger's CALL: a CALLRESULT applies what its handler did."""
        inbox = self.inboxes.get(cp_id)
        queued = inbox.answered(str(frame.unique_id)) if inbox is not None else None
        if queued is None or queued[1] is None or not isinstance(frame, frames.CallResult):
            return
        action, payload, at, tolerated = queued[1]
        request = request_from_payload(action, payload)
        response = response_from_payload(action, frame.payload)
        self.apply_all(events_for(self.state, cp_id, action, request, response, at, tolerated))


#: A charger's CALL as its handler saw it: action, payload (repaired, if it was), receive
#: time, and how it was repaired.
_Received = tuple[str, dict[str, Any], datetime.datetime, Tolerated | None]


def _received(frame: frames.Call, at: datetime.datetime) -> _Received | None:
    """``frame`` as the live CSMS handed it to its handler: valid, or repaired as the live
    CSMS repaired it; None: it was answered with a CALLERROR, and changes nothing."""
    if frame.action not in ACTIONS:
        return None
    try:
        payload, tolerated = admit(frame.action, frame.payload, at)
    except PayloadError:
        return None
    return frame.action, payload, at, tolerated


def _awaited(ours: dict[str, tuple[str, str, dict[str, Any]]],
             late: dict[str, dict[str, tuple[str, str, dict[str, Any]]]],
             charger_id: str, unique_id: str) -> tuple[str, str, dict[str, Any]] | None:
    """The CALL of ours an answer answers: the outstanding one, or one given up whose late
    answer the live CSMS recorded; None: it dropped the answer."""
    mine = ours.get(charger_id)
    if mine is not None and mine[0] == unique_id:
        del ours[charger_id]
        return mine
    return late.get(charger_id, {}).pop(unique_id, None)


def _give_up(ours: dict[str, tuple[str, str, dict[str, Any]]],
             late: dict[str, tuple[str, str, dict[str, Any]]], row: LogRow) -> None:
    """The live CSMS gave up the CALL of an ``abandoned`` row: no longer awaited, but a
    late answer to it is recorded (among the connection's last LATE_ANSWERS_KEPT)."""
    mine = ours.get(row.charger_id)
    if mine is not None and mine[0] == orjson.loads(row.frame).get("uniqueId"):
        del ours[row.charger_id]
        keep_given_up(late, mine[0], mine)


def _answer_of(
    action: str, frame: frames.CallResult | frames.CallErrorFrame
) -> tuple[dict[str, Any] | None, str | None]:
    """A charger's answer as the live CSMS saw it: a valid payload, or an error code."""
    if isinstance(frame, frames.CallErrorFrame):
        return None, frame.code
    try:
        validate_response(action, frame.payload)
    except PayloadError as exc:
        return None, str(exc.code)
    return frame.payload, None


def _records(state: DomainState) -> dict[str, dict[Any, Any]]:
    return {
        "chargers": dict(state.chargers),
        "evses": dict(state.evses),
        "sessions": dict(state.sessions),
        "anomalies": dict(enumerate(state.anomalies)),
        "charging_profiles": dict(state.profiles),
        "reservations": dict(state.reservations),
        "remote_commands": dict(enumerate(state.remote_commands)),
        "meter_keys": dict(state.meter_keys),
        "counters": {"next_transaction_id": state.next_transaction_id},
    }


def _field_diff(prefix: str, stored: Any, rebuilt: Any) -> list[str]:
    if attrs.has(type(stored)) and type(stored) is type(rebuilt):
        return [
            f"{prefix}.{field.name}: stored {getattr(stored, field.name)!r}, "
            f"replayed {getattr(rebuilt, field.name)!r}"
            for field in attrs.fields(type(stored))
            if getattr(stored, field.name) != getattr(rebuilt, field.name)
        ]
    return [f"{prefix}: stored {stored!r}, replayed {rebuilt!r}"]


def diff(
    stored: DomainState,
    stored_samples: list[SampleRow],
    rebuilt: Rebuilt,
) -> list[str]:
    """Readable differences between the stored projection and a rebuild (empty if equal)."""
    lines: list[str] = []
    left, right = _records(stored), _records(rebuilt.state)
    for table, stored_records in left.items():
        rebuilt_records = right[table]
        for key in sorted(set(stored_records) | set(rebuilt_records), key=repr):
            if key not in rebuilt_records:
                lines.append(f"{table}[{key!r}]: stored only")
            elif key not in stored_records:
                lines.append(f"{table}[{key!r}]: replayed only")
            elif stored_records[key] != rebuilt_records[key]:
                lines.extend(
                    _field_diff(f"{table}[{key!r}]", stored_records[key], rebuilt_records[key])
                )
    if stored_samples != rebuilt.samples:
        lines.append(
            f"samples: {len(stored_samples)} stored, {len(rebuilt.samples)} replayed"
        )
        for i, (a, b) in enumerate(zip(stored_samples, rebuilt.samples, strict=False)):
            if a != b:
                lines.append(f"samples[{i}]: stored {a!r}, replayed {b!r}")
                break
    return lines
