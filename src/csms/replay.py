"""Rebuild the domain state from the OCPP message log alone, and compare it with the store.

The rebuild pairs every CALL a charger sent with the CALLRESULT we answered (by charger
and uniqueId), and runs each pair through the same projection and fold as the live CSMS.
Connection rows open and close chargers. Frames that were answered with a CALLERROR, or
never answered, change nothing, live or replayed.
"""

from __future__ import annotations

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
from ocppj.payloads import request_from_payload, response_from_payload
from ocppj.schemas import ACTIONS, validate_request, validate_response
from ocppj.session import keep_given_up
from ocppj.tolerance import Tolerated, tolerate


@attrs.frozen
class Rebuilt:
    """The result of a rebuild: the state and every sampled value, in order."""

    state: DomainState
    samples: list[SampleRow]


def rebuild(rows: Iterable[LogRow]) -> Rebuilt:
    """Fold the message log into a fresh domain state."""
    state = DomainState()
    samples: list[SampleRow] = []
    calls: dict[tuple[str, str], _Received] = {}
    # Our CALL awaiting its answer, per charger: at most one is outstanding. It is given
    # up by an 'abandoned' row (timed out, or its caller cancelled), or, in a log written
    # before those rows existed, by our next CALL; an answer after that was dropped live.
    ours: dict[str, tuple[str, str, dict[str, Any]]] = {}
    # Our CALLs given up, per charger (its connection's last LATE_ANSWERS_KEPT): a late
    # answer to one was recorded live, and is here.
    late: dict[str, dict[str, tuple[str, str, dict[str, Any]]]] = {}

    def apply_all(events: Iterable[ev.Event]) -> None:
        for event in events:
            apply(state, event)
            if isinstance(event, ev.MeterSampled):
                samples.extend(sample_rows(event))

    for row in rows:
        if row.direction in ("connect", "disconnect"):
            late.pop(row.charger_id, None)  # a new connection: a new session
            event = connection_event(row.charger_id, row.direction, row.frame, row.at)
            apply_all([event] if event is not None else [])
            continue
        if row.direction == "abandoned":
            apply_all(events_for_our_frame(state, row.charger_id, row.direction, row.frame,
                                           row.at))
            _give_up(ours, late.setdefault(row.charger_id, {}), row)
            continue
        try:
            frame = frames.parse(row.frame)
        except FrameError:
            continue
        if row.direction == "in" and isinstance(frame, frames.Call):
            received = _received(frame, row.at)
            if received is not None:
                calls[(row.charger_id, frame.unique_id)] = received
        elif row.direction == "out" and isinstance(frame, frames.CallResult):
            call = calls.pop((row.charger_id, frame.unique_id), None)
            if call is None:
                continue
            action, payload, at, tolerated = call
            request = request_from_payload(action, payload)
            response = response_from_payload(action, frame.payload)
            apply_all(events_for(state, row.charger_id, action, request, response, at,
                                 tolerated))
        elif row.direction == "out" and isinstance(frame, frames.Call):
            ours[row.charger_id] = (frame.unique_id, frame.action, frame.payload)
            apply_all(events_for_call(state, row.charger_id, frame.action, frame.payload,
                                      row.at))
        elif row.direction == "in" and not isinstance(frame, frames.Call):
            mine = _awaited(ours, late, row.charger_id, str(frame.unique_id))
            if mine is None:
                continue  # an answer to nothing outstanding: the live CSMS dropped it too
            _, action, payload = mine
            answer, error = _answer_of(action, frame)
            apply_all(events_for_answer(state, row.charger_id, action, payload, answer, error,
                                        row.at))
    state.take_dirty()
    return Rebuilt(state, samples)


#: A charger's CALL as its handler saw it: action, payload (repaired, if it was), receive
#: time, and how it was repaired.
_Received = tuple[str, dict[str, Any], datetime.datetime, Tolerated | None]


def _received(frame: frames.Call, at: datetime.datetime) -> _Received | None:
    """``frame`` as the live CSMS handed it to its handler: valid, or repaired as the live
    CSMS repaired it; None: it was answered with a CALLERROR, and changes nothing."""
    if frame.action not in ACTIONS:
        return None
    try:
        validate_request(frame.action, frame.payload)
    except PayloadError:
        tolerated = tolerate(frame.action, frame.payload, at)
        if tolerated is None:
            return None
        return frame.action, tolerated.payload, at, tolerated
    return frame.action, frame.payload, at, None


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
            f"meter_samples: {len(stored_samples)} stored, {len(rebuilt.samples)} replayed"
        )
        for i, (a, b) in enumerate(zip(stored_samples, rebuilt.samples, strict=False)):
            if a != b:
                lines.append(f"meter_samples[{i}]: stored {a!r}, replayed {b!r}")
                break
    return lines
