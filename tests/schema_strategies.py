"""Hypothesis strategies for payloads that meet an OCPP 1.6 JSON schema, any schema.

The 1.6 schemas use a small part of draft 4 (object, array, string, integer, number,
boolean; enum, maxLength, minItems, required, additionalProperties, date-time), so this
is a short walk rather than a dependency (hypothesis-jsonschema 0.23 no longer runs on
current hypothesis). Values lean to the edges a projector meets: empty lists where the
schema allows them, zero, negative and huge numbers, long and empty strings, every enum
value, ids near the ones a test's state holds.
"""

from __future__ import annotations

import datetime
from typing import Any

from hypothesis import strategies as st

from ocppj.schemas import schema, validate_request, validate_response

_MOMENTS = st.datetimes(
    min_value=datetime.datetime(2000, 1, 1), max_value=datetime.datetime(2100, 1, 1),
    timezones=st.just(datetime.UTC),
).map(lambda moment: moment.isoformat().replace("+00:00", "Z"))
_INTEGERS = st.one_of(st.integers(-3, 10), st.integers(-(2**31), 2**31 - 1))
_NUMBERS = st.one_of(st.integers(-5, 100), st.floats(-1e6, 1e9, allow_nan=False),
                     st.just(0.0))


def from_schema(spec: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values that meet ``spec`` (a part of an OCPP 1.6 schema)."""
    kind = spec.get("type")
    if "enum" in spec:
        return st.sampled_from(spec["enum"])
    if kind == "object":
        properties: dict[str, Any] = spec.get("properties", {})
        required = set(spec.get("required", ()))
        return st.fixed_dictionaries(
            {key: from_schema(sub) for key, sub in properties.items() if key in required},
            optional={key: from_schema(sub) for key, sub in properties.items()
                      if key not in required},
        )
    if kind == "array":
        return st.lists(from_schema(spec.get("items", {})), min_size=spec.get("minItems", 0),
                        max_size=max(3, spec.get("minItems", 0)))
    if kind == "string":
        if spec.get("format") == "date-time":
            return _MOMENTS
        return st.text(max_size=spec.get("maxLength", 60))
    if kind == "integer":
        return _INTEGERS
    if kind == "number":
        return _NUMBERS
    if kind == "boolean":
        return st.booleans()
    return st.none()


def requests(action: str) -> st.SearchStrategy[dict[str, Any]]:
    """Schema-valid CALL payloads of ``action``."""
    return from_schema(schema(action)).filter(lambda p: _valid(validate_request, action, p))


def responses(action: str) -> st.SearchStrategy[dict[str, Any]]:
    """Schema-valid CALLRESULT payloads answering ``action``."""
    return from_schema(schema(f"{action}Response")).filter(
        lambda p: _valid(validate_response, action, p))


def _valid(check: Any, action: str, payload: Any) -> bool:
    try:
        check(action, payload)
    except Exception:
        return False
    return True
