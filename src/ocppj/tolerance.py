"""What a real charger sends when its meaning is clear: transaction-bearing CALLs that break
their schema in a way that loses nothing, accepted with the usable data kept.

A charger whose StopTransaction is refused sends it again, for days, and the session never
closes; refusing a MeterValues loses its readings. So for the five actions that carry a
transaction's data (:data:`TOLERANT_ACTIONS`) a payload that fails the strict schema is
walked once more, field by field, against the same schema. Each deviation that leaves the
message's meaning unambiguous is repaired and named (a :class:`Deviation`, one of
:data:`KINDS`); one that does not (a missing or unreadable key field: the connector, the
transaction, the status, the meter value of a start or stop) makes :func:`tolerate`
return None, and the caller answers with the strict schema's CALLERROR as before.

Pure: no I/O, no clock (the receive time comes in), so replay repairs a logged frame
exactly as the live CSMS did.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import orjson

from ocppj.errors import PayloadError
from ocppj.schemas import compiled, path_text, schema, validate_request
from ocppj.timestamps import format_timestamp

#: The actions whose schema deviations are tolerated.
TOLERANT_ACTIONS = frozenset(
    {"StartTransaction", "StopTransaction", "MeterValues", "StatusNotification", "Authorize"}
)

#: Every kind of deviation, and what is done about it.
KINDS: Mapping[str, str] = {
    "extra_property": "a property the schema does not define: dropped",
    "overlong_string": "a string longer than the schema allows: kept whole",
    "enum_alias": "an enum value in another case, or '%' for Percent: read as that value",
    "unknown_enum": "an unknown value in a field with a catch-all: the catch-all "
                    "(errorCode OtherError, reason Other)",
    "odd_timestamp": "a date-time in a form ISO 8601 readers refuse but whose moment is "
                     "clear (' UTC', unpadded fields): rewritten in ISO 8601",
    "unreadable_timestamp": "a date-time nobody can read: the receive time instead "
                            "(StatusNotification: left out)",
    "coerced_number": "a number sent as a string, or a float where an integer belongs "
                      "(meterStart and meterStop are rounded to the Wh)",
    "coerced_string": "a number where a string belongs: its JSON text",
    "malformed_sample": "a sampled value that cannot be read (unknown measurand, unit, "
                        "phase or format, no value): dropped, the other samples kept",
    "dropped_field": "an optional field of no usable type or value (a sampled value's "
                     "unknown context or location, StatusNotification's unreadable "
                     "timestamp ...): left out",
}

#: The longest raw payload an anomaly keeps (the message log keeps the whole frame).
RAW_CHARS = 4096


@attrs.frozen
class Deviation:
    """One way a payload broke its schema, and what was done.

    Attributes:
        path: where (``meterValue[0].sampledValue[2].unit``).
        kind: one of :data:`KINDS`.
        detail: what was sent, and what was kept.
    """

    path: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path or 'payload'}: {self.kind} ({self.detail})"


@attrs.frozen
class Tolerated:
    """A repaired payload, the deviations repaired, and the payload as sent.

    Attributes:
        payload: what the handler and the projection see.
        deviations: in the order found.
        raw: the payload as sent, as JSON (cut to :data:`RAW_CHARS`).
    """

    payload: dict[str, Any]
    deviations: tuple[Deviation, ...]
    raw: str

    @property
    def detail(self) -> str:
        """The deviations in one line."""
        return "; ".join(str(d) for d in self.deviations)


# Paths below are tuples of property names, with "*" for any array index.
_Pattern = tuple[str, ...]

#: A value outside the enum becomes the catch-all.
_CATCH_ALL: dict[tuple[str, _Pattern], str] = {
    ("StatusNotification", ("errorCode",)): "OtherError",
    ("StopTransaction", ("reason",)): "Other",
}
#: Optional fields of a sampled value that say how it was taken, not what it is: left
#: out when unusable, and the reading kept (measurand, unit, phase and format say what
#: the value means: a sample with one of those unusable is dropped whole).
_SAMPLE_NOTES = ("context", "location")
#: Optional fields that are left out when unusable.
_DROPPABLE: frozenset[tuple[str, _Pattern]] = frozenset({
    ("StatusNotification", ("timestamp",)),
    ("StatusNotification", ("info",)),
    ("StatusNotification", ("vendorId",)),
    ("StatusNotification", ("vendorErrorCode",)),
    ("StartTransaction", ("reservationId",)),
    ("StopTransaction", ("idTag",)),
    *(("MeterValues", ("meterValue", "*", "sampledValue", "*", note))
      for note in _SAMPLE_NOTES),
    *(("StopTransaction", ("transactionData", "*", "sampledValue", "*", note))
      for note in _SAMPLE_NOTES),
})
#: Timestamps that take the receive time when unreadable.
_RECEIVE_TIME: frozenset[tuple[str, _Pattern]] = frozenset({
    ("StartTransaction", ("timestamp",)),
    ("StopTransaction", ("timestamp",)),
    ("MeterValues", ("meterValue", "*", "timestamp")),
    ("StopTransaction", ("transactionData", "*", "timestamp")),
})
#: Energy registers in whole Wh: a float is rounded.
_ROUNDED: frozenset[tuple[str, _Pattern]] = frozenset({
    ("StartTransaction", ("meterStart",)),
    ("StopTransaction", ("meterStop",)),
})
#: Arrays of sampled values: an unreadable one is dropped, the others kept.
_SAMPLE_LISTS: frozenset[_Pattern] = frozenset({
    ("meterValue", "*", "sampledValue"),
    ("transactionData", "*", "sampledValue"),
})
#: Arrays of meter values: one left with no readable sample is dropped.
_READING_LISTS: frozenset[_Pattern] = frozenset({("meterValue",), ("transactionData",)})
#: Spellings whose meaning is clear: the unit '%' is OCPP's 'Percent'.
_ALIASES = {"%": "Percent"}

#: The largest integer a coercion gives: every float up to it is exact, and far beyond any
#: meter register (an integer orjson read beyond 64 bits arrives as a float, and must not
#: reach the store's 64-bit columns).
_EXACT = 2**53
_INTEGER = re.compile(r"^\s*[-+]?\d+\s*$")
_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


class _Unusable(Exception):
    """A value that cannot be repaired (caught where the rules allow dropping it)."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = path
        self.detail = detail


def tolerate(
    action: str, payload: Any, received_at: datetime.datetime
) -> Tolerated | None:
    """Repair ``payload``, a CALL of ``action`` that failed its schema, if its meaning is
    clear; None when it is not (or ``action`` is not tolerated): answer the strict error."""
    if action not in TOLERANT_ACTIONS or not isinstance(payload, dict):
        return None
    walk = _Walk(action, format_timestamp(received_at))
    try:
        repaired = walk.value(schema(action), payload, ())
    except _Unusable:
        return None
    if not _acceptable(action, repaired):
        return None
    raw = orjson.dumps(payload).decode()
    if len(raw) > RAW_CHARS:
        raw = f"{raw[:RAW_CHARS]}…[{len(raw)} characters, cut]"
    return Tolerated(repaired, tuple(walk.deviations), raw)


#: Repairs a CALL payload that broke its schema: (action, payload, receive time) → the
#: repair, or None to refuse it (:func:`tolerate`, or None for strict validation).
Tolerance = Callable[[str, Any, datetime.datetime], Tolerated | None]


def admit(
    action: str, payload: Any, received_at: datetime.datetime,
    tolerance: Tolerance | None = tolerate,
) -> tuple[Any, Tolerated | None]:
    """``payload`` as its handler is given it: as sent when it meets its schema, else as
    ``tolerance`` repaired it (with the repair). The live session and replay both ask
    here, so they agree on what a handler saw.

    Raises:
        PayloadError: it breaks its schema, and nothing repaired it.
    """
    try:
        validate_request(action, payload)
    except PayloadError:
        tolerated = tolerance(action, payload, received_at) if tolerance is not None else None
        if tolerated is None:
            raise
        return tolerated.payload, tolerated
    return payload, None


def _acceptable(action: str, payload: dict[str, Any]) -> bool:
    """The strict schema's errors left after repair are only the ones repair keeps on
    purpose: over-long strings, and readings lists emptied of unreadable samples."""
    for error in compiled(action).iter_errors(payload):
        keyword = str(error.schema_path[-1]) if error.schema_path else ""
        if keyword == "maxLength":
            continue
        if keyword == "minItems" and _pattern(tuple(error.instance_path)) in _READING_LISTS:
            continue
        return False
    return True


def _pattern(path: tuple[str | int, ...]) -> _Pattern:
    return tuple("*" if isinstance(p, int) else p for p in path)


def _quote(value: Any) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:60] + "…"


@attrs.define
class _Walk:
    action: str
    received_at: str
    deviations: list[Deviation] = attrs.Factory(list)

    def note(self, path: tuple[str | int, ...], kind: str, detail: str) -> None:
        self.deviations.append(Deviation(path_text(path), kind, detail))

    def value(self, spec: dict[str, Any], value: Any, path: tuple[str | int, ...]) -> Any:
        kind = spec.get("type")
        if kind == "object":
            return self.object(spec, value, path)
        if kind == "array":
            return self.array(spec, value, path)
        if kind == "integer":
            return self.integer(value, path)
        if kind == "number":
            return self.number(value, path)
        if kind == "string":
            return self.string(spec, value, path)
        if kind == "boolean" and isinstance(value, bool):
            return value
        raise _Unusable(path_text(path), f"{_quote(value)} is not a {kind}")

    def object(self, spec: dict[str, Any], value: Any, path: tuple[str | int, ...]) -> Any:
        if not isinstance(value, dict):
            raise _Unusable(path_text(path), f"{_quote(value)} is not an object")
        properties: dict[str, Any] = spec.get("properties", {})
        result: dict[str, Any] = {}
        for key, item in value.items():
            at = (*path, key)
            sub = properties.get(key)
            if sub is None:
                self.note(at, "extra_property", f"{_quote(item)} dropped")
                continue
            try:
                result[key] = self.value(sub, item, at)
            except _Unusable as exc:
                if (self.action, _pattern(at)) not in _DROPPABLE:
                    raise
                self.note(at, "dropped_field", exc.detail)
        for key in spec.get("required", ()):
            if key not in result:
                raise _Unusable(path_text((*path, key)), "missing")
        return result

    def array(self, spec: dict[str, Any], value: Any, path: tuple[str | int, ...]) -> Any:
        if not isinstance(value, list):
            raise _Unusable(path_text(path), f"{_quote(value)} is not an array")
        items: dict[str, Any] = spec.get("items", {})
        pattern = _pattern(path)
        if len(value) < spec.get("minItems", 0):
            raise _Unusable(path_text(path), "too few items")
        result = []
        for index, item in enumerate(value):
            at = (*path, index)
            if pattern in _SAMPLE_LISTS:
                mark = len(self.deviations)
                try:
                    result.append(self.value(items, item, at))
                except _Unusable as exc:
                    del self.deviations[mark:]  # the whole sample goes, with what it had
                    self.note(at, "malformed_sample", f"{exc.detail}: {_quote(item)}")
                continue
            repaired = self.value(items, item, at)
            if (pattern in _READING_LISTS and not repaired.get("sampledValue")
                    and item.get("sampledValue")):
                continue  # every sample in it was unreadable: each is noted
            result.append(repaired)
        return result

    def integer(self, value: Any, path: tuple[str | int, ...]) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        where = path_text(path)
        if isinstance(value, str) and _INTEGER.match(value) and abs(int(value)) <= _EXACT:
            self.note(path, "coerced_number", f"{_quote(value)} read as {int(value)}")
            return int(value)
        number = value
        if isinstance(value, str) and _NUMBER.match(value):
            number = float(value)
        if isinstance(number, float) and math.isfinite(number) and abs(number) <= _EXACT:
            if number.is_integer():
                self.note(path, "coerced_number", f"{_quote(value)} read as {int(number)}")
                return int(number)
            if (self.action, _pattern(path)) in _ROUNDED:
                rounded = round(number)
                self.note(path, "coerced_number", f"{_quote(value)} rounded to {rounded}")
                return rounded
        raise _Unusable(where, f"{_quote(value)} is not an integer")

    def number(self, value: Any, path: tuple[str | int, ...]) -> float | int:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and _NUMBER.match(value):
            self.note(path, "coerced_number", f"{_quote(value)} read as a number")
            return float(value)
        raise _Unusable(path_text(path), f"{_quote(value)} is not a number")

    def string(self, spec: dict[str, Any], value: Any, path: tuple[str | int, ...]) -> str:
        if isinstance(value, int | float) and not isinstance(value, bool):
            text = orjson.dumps(value).decode()
            self.note(path, "coerced_string", f"{text} read as {text!r}")
            value = text
        if not isinstance(value, str):
            raise _Unusable(path_text(path), f"{_quote(value)} is not a string")
        allowed: list[str] | None = spec.get("enum")
        if allowed is not None and value not in allowed:
            value = self.enum(allowed, value, path)
        limit = spec.get("maxLength")
        if limit is not None and len(value) > limit:
            self.note(path, "overlong_string", f"{len(value)} characters, the limit is {limit}; "
                                               "kept whole")
        if spec.get("format") == "date-time":
            return self.timestamp(value, path)
        return str(value)

    def enum(self, allowed: list[str], value: str, path: tuple[str | int, ...]) -> str:
        folded = [name for name in allowed if name.casefold() == value.strip().casefold()]
        alias = _ALIASES.get(value.strip())
        if alias in allowed:
            folded = [alias]
        if len(folded) == 1:
            self.note(path, "enum_alias", f"{_quote(value)} read as {folded[0]!r}")
            return folded[0]
        catch_all = _CATCH_ALL.get((self.action, _pattern(path)))
        if catch_all is not None:
            self.note(path, "unknown_enum", f"{_quote(value)} is not OCPP 1.6: {catch_all!r}")
            return catch_all
        raise _Unusable(path_text(path), f"{_quote(value)} is not OCPP 1.6")

    def timestamp(self, value: str, path: tuple[str | int, ...]) -> str:
        try:
            datetime.datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return value
        moment = read_odd_timestamp(value)
        if moment is not None:
            rewritten = format_timestamp(moment)
            self.note(path, "odd_timestamp", f"{_quote(value)} read as {rewritten}")
            return rewritten
        if (self.action, _pattern(path)) in _RECEIVE_TIME:
            self.note(path, "unreadable_timestamp",
                      f"{_quote(value)}: the receive time {self.received_at} instead")
            return self.received_at
        raise _Unusable(path_text(path), f"{_quote(value)} is not a date-time")


_ODD = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})[T ](\d{1,2}):(\d{1,2})(?::(\d{1,2}))?([.,]\d+)?"
    r"\s*(Z|UTC|GMT|[+-]\d{2}:?\d{2})?(?:\s*Z)?$",
    re.IGNORECASE,
)


def read_odd_timestamp(value: str) -> datetime.datetime | None:
    """A date-time in a form :meth:`datetime.datetime.fromisoformat` refuses but whose
    moment is clear: unpadded fields, ``UTC`` or ``GMT`` for the zone, an offset followed
    by a stray ``Z``. None when it is not one of those (or names no real moment)."""
    match = _ODD.match(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    text = (f"{int(year):04d}-{int(month):02d}-{int(day):02d}T{int(hour):02d}:"
            f"{int(minute):02d}:{int(second or 0):02d}{(fraction or '').replace(',', '.')}")
    if zone is None or zone.upper() in ("Z", "UTC", "GMT"):
        text += "+00:00"
    else:
        text += zone if ":" in zone else f"{zone[:3]}:{zone[3:]}"
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.astimezone(datetime.UTC)
