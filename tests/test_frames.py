"""The pure OCPP-J codec (ocppj.frames): parse and encode, no I/O."""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ocppj import ErrorCode, Failure
from ocppj.errors import FrameError
from ocppj.frames import (
    Call,
    CallErrorFrame,
    CallResult,
    encode_call,
    encode_error,
    encode_result,
    parse,
)

# -- well-formed frames ------------------------------------------------------------------


def test_parse_call() -> None:
    frame = parse('[2, "19223201", "BootNotification", {"chargePointVendor": "VendorX"}]')
    assert frame == Call("19223201", "BootNotification", {"chargePointVendor": "VendorX"})


def test_parse_call_from_bytes() -> None:
    assert parse(b'[2,"a","Heartbeat",{}]') == Call("a", "Heartbeat", {})


def test_parse_call_result() -> None:
    frame = parse('[3, "19223201", {"currentTime": "2026-11-24T10:00:00Z", "interval": 300}]')
    assert frame == CallResult("19223201", {"currentTime": "2026-11-24T10:00:00Z", "interval": 300})


def test_parse_call_error() -> None:
    frame = parse('[4, "19223201", "NotSupported", "no such thing", {"hint": 1}]')
    assert frame == CallErrorFrame("19223201", "NotSupported", "no such thing", {"hint": 1})


def test_call_error_without_details_is_accepted() -> None:
    # ErrorDetails is required by OCPP-J, but a 4-element CALLERROR is still understood.
    assert parse('[4, "x", "GenericError", "oops"]') == CallErrorFrame(
        "x", "GenericError", "oops", {}
    )


def test_numeric_unique_id_of_a_response_is_read_as_text() -> None:
    assert parse("[3, 17, {}]") == CallResult("17", {})
    assert parse('[4, 17, "GenericError", "", {}]') == CallErrorFrame("17", "GenericError", "", {})


# -- malformed frames: nobody to answer --------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty text"),
        pytest.param("not json", id="not JSON"),
        pytest.param('[2, "a", "Heartbeat", {}', id="truncated JSON"),
        pytest.param('{"2": "a"}', id="object"),
        pytest.param('"[2, \\"a\\", \\"Heartbeat\\", {}]"', id="string"),
        pytest.param("2", id="number"),
        pytest.param("null", id="null"),
        pytest.param("[]", id="empty array"),
        pytest.param("[2]", id="no uniqueId"),
        pytest.param('[2, null, "Heartbeat", {}]', id="null uniqueId"),
        pytest.param('[2, true, "Heartbeat", {}]', id="boolean uniqueId"),
        pytest.param('[2, 1.5, "Heartbeat", {}]', id="float uniqueId"),
        pytest.param('[2, ["a"], "Heartbeat", {}]', id="array uniqueId"),
        pytest.param('[2, {"id": "a"}, "Heartbeat", {}]', id="object uniqueId"),
        pytest.param(b'[2, "a", "\xff", {}]', id="invalid UTF-8"),
        pytest.param('["\\ud800"]', id="lone surrogate"),
    ],
)
def test_unreadable_frame_has_no_unique_id_and_owes_no_reply(text: str | bytes) -> None:
    with pytest.raises(FrameError) as info:
        parse(text)
    assert info.value.unique_id is None
    assert info.value.failure is None
    assert info.value.reply is False


# -- malformed CALLs: a CALLERROR is owed ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "failure", "unique_id"),
    [
        pytest.param('[5, "a", "Heartbeat", {}]', Failure.BAD_MESSAGE_TYPE, "a", id="type 5"),
        pytest.param('[0, "a", "Heartbeat", {}]', Failure.BAD_MESSAGE_TYPE, "a", id="type 0"),
        pytest.param('[2.0, "a", "Heartbeat", {}]', Failure.BAD_MESSAGE_TYPE, "a", id="type 2.0"),
        pytest.param('["2", "a", "Heartbeat", {}]', Failure.BAD_MESSAGE_TYPE, "a", id='type "2"'),
        pytest.param('[true, "a", "Heartbeat", {}]', Failure.BAD_MESSAGE_TYPE, "a", id="type true"),
        pytest.param('[null, "a", "Heartbeat", {}]', Failure.BAD_MESSAGE_TYPE, "a", id="type null"),
        pytest.param('[2, "a", "Heartbeat"]', Failure.WRONG_ARITY, "a", id="CALL of 3"),
        pytest.param('[2, "a"]', Failure.WRONG_ARITY, "a", id="CALL of 2"),
        pytest.param('[2, "a", "Heartbeat", {}, {}]', Failure.WRONG_ARITY, "a", id="CALL of 5"),
        pytest.param('[2, 17, "Heartbeat", {}]', Failure.BAD_UNIQUE_ID, 17, id="numeric id"),
        pytest.param('[2, "a", 42, {}]', Failure.BAD_ACTION_TYPE, "a", id="numeric action"),
        pytest.param('[2, "a", null, {}]', Failure.BAD_ACTION_TYPE, "a", id="null action"),
        pytest.param(
            '[2, "a", ["Heartbeat"], {}]', Failure.BAD_ACTION_TYPE, "a", id="array action"
        ),
        pytest.param(
            '[2, "a", "Heartbeat", []]', Failure.PAYLOAD_NOT_OBJECT, "a", id="array payload"
        ),
        pytest.param(
            '[2, "a", "Heartbeat", null]', Failure.PAYLOAD_NOT_OBJECT, "a", id="null payload"
        ),
        pytest.param(
            '[2, "a", "Heartbeat", "{}"]', Failure.PAYLOAD_NOT_OBJECT, "a", id="str payload"
        ),
    ],
)
def test_broken_call_owes_a_callerror(text: str, failure: Failure, unique_id: Any) -> None:
    with pytest.raises(FrameError) as info:
        parse(text)
    assert info.value.failure is failure
    assert info.value.unique_id == unique_id
    assert type(info.value.unique_id) is type(unique_id)
    assert info.value.reply is True


@pytest.mark.parametrize(
    ("text", "failure"),
    [
        pytest.param('[3, "a"]', Failure.WRONG_ARITY, id="CALLRESULT of 2"),
        pytest.param('[3, "a", {}, {}]', Failure.WRONG_ARITY, id="CALLRESULT of 4"),
        pytest.param('[3, "a", []]', Failure.PAYLOAD_NOT_OBJECT, id="CALLRESULT array payload"),
        pytest.param('[4, "a", "GenericError"]', Failure.WRONG_ARITY, id="CALLERROR of 3"),
        pytest.param(
            '[4, "a", "GenericError", "", {}, 1]', Failure.WRONG_ARITY, id="CALLERROR of 6"
        ),
        pytest.param('[4, "a", 7, "", {}]', Failure.PAYLOAD_NOT_OBJECT, id="numeric error code"),
        pytest.param(
            '[4, "a", "GenericError", 7, {}]', Failure.PAYLOAD_NOT_OBJECT, id="numeric text"
        ),
        pytest.param(
            '[4, "a", "GenericError", "", []]', Failure.PAYLOAD_NOT_OBJECT, id="array details"
        ),
    ],
)
def test_broken_response_is_never_answered(text: str, failure: Failure) -> None:
    with pytest.raises(FrameError) as info:
        parse(text)
    assert info.value.failure is failure
    assert info.value.unique_id == "a"
    assert info.value.reply is False


# -- encoding ----------------------------------------------------------------------------


def test_encode_call_is_compact() -> None:
    text = encode_call(
        "a1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}
    )
    assert text == '[2,"a1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]'


def test_encode_result_is_compact() -> None:
    assert encode_result("a1", {"currentTime": "2026-11-24T10:00:00Z"}) == (
        '[3,"a1",{"currentTime":"2026-11-24T10:00:00Z"}]'
    )
    assert encode_result("a1", {}) == '[3,"a1",{}]'


def test_encode_error_is_compact_and_always_has_five_elements() -> None:
    assert encode_error("a1", ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION, "missing", {"f": 1}) == (
        '[4,"a1","OccurenceConstraintViolation","missing",{"f":1}]'
    )
    assert encode_error("a1", ErrorCode.GENERIC_ERROR) == '[4,"a1","GenericError","",{}]'


def test_encode_error_echoes_a_numeric_unique_id_as_a_number() -> None:
    with pytest.raises(FrameError) as info:
        parse('[2, 17, "Heartbeat", {}]')
    text = encode_error(info.value.unique_id, ErrorCode.FORMATION_VIOLATION, "id")
    assert json.loads(text) == [4, 17, "FormationViolation", "id", {}]


def test_encode_keeps_non_ascii_text() -> None:
    text = encode_call("é", "DataTransfer", {"vendorId": "Ünïcode ⚡"})
    assert parse(text) == Call("é", "DataTransfer", {"vendorId": "Ünïcode ⚡"})


# -- properties --------------------------------------------------------------------------

# Text orjson can encode (no lone surrogates) and integers it can encode (64-bit).
_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
)
json_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_text, children, max_size=5),
    max_leaves=8,
)
json_objects = st.dictionaries(_text, json_values, max_size=5)
unique_ids = st.text(alphabet=string.ascii_letters + string.digits + "-", min_size=1, max_size=36)


@given(unique_ids, _text, json_objects)
def test_call_round_trips(unique_id: str, action: str, payload: dict[str, Any]) -> None:
    text = encode_call(unique_id, action, payload)
    assert parse(text) == Call(unique_id, action, payload)
    assert parse(text.encode()) == Call(unique_id, action, payload)


@given(unique_ids, json_objects)
def test_call_result_round_trips(unique_id: str, payload: dict[str, Any]) -> None:
    assert parse(encode_result(unique_id, payload)) == CallResult(unique_id, payload)


@given(unique_ids, st.sampled_from(ErrorCode) | _text, _text, json_objects)
def test_call_error_round_trips(
    unique_id: str, code: str, description: str, details: dict[str, Any]
) -> None:
    assert parse(encode_error(unique_id, code, description, details)) == CallErrorFrame(
        unique_id, str(code), description, details
    )


# Strings without whitespace, so any whitespace in the output would be padding.
_solid_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), max_size=10
)
_solid_objects = st.dictionaries(
    _solid_text,
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _solid_text,
        lambda c: st.lists(c, max_size=3) | st.dictionaries(_solid_text, c, max_size=3),
        max_leaves=10,
    ),
    max_size=5,
)


@given(unique_ids, _solid_text, _solid_objects, _solid_objects)
def test_encoded_frames_have_no_padding(
    unique_id: str, text: str, payload: dict[str, Any], details: dict[str, Any]
) -> None:
    for encoded in (
        encode_call(unique_id, text, payload),
        encode_result(unique_id, payload),
        encode_error(unique_id, text, text, details),
    ):
        assert not any(char.isspace() for char in encoded), encoded


def _parse_or_frame_error(data: str | bytes) -> None:
    try:
        frame = parse(data)
    except FrameError as exc:
        # A FrameError is coherent: a reply is owed only for a failure with a readable id.
        if exc.reply:
            assert exc.failure is not None
            assert exc.unique_id is not None
        if exc.unique_id is None:
            assert exc.failure is None
        return
    assert isinstance(frame, Call | CallResult | CallErrorFrame)
    assert isinstance(frame.unique_id, str)


@given(st.text())
def test_parse_of_arbitrary_text_raises_only_frame_error(text: str) -> None:
    _parse_or_frame_error(text)


@given(st.binary())
def test_parse_of_arbitrary_bytes_raises_only_frame_error(data: bytes) -> None:
    _parse_or_frame_error(data)


@given(json_values)
def test_parse_of_arbitrary_json_raises_only_frame_error(value: Any) -> None:
    _parse_or_frame_error(json.dumps(value))


frame_like = st.tuples(
    st.sampled_from([2, 3, 4]) | json_values,
    unique_ids | json_values,
    st.lists(json_values, max_size=4),
).map(lambda t: [t[0], t[1], *t[2]])


@given(frame_like)
def test_parse_of_frame_shaped_json_raises_only_frame_error(value: list[Any]) -> None:
    _parse_or_frame_error(json.dumps(value))
