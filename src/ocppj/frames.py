"""OCPP-J framing: parse and build the three message types. Pure; no I/O.

A frame is a JSON array:

* CALL        ``[2, uniqueId, action, payload]``
* CALLRESULT  ``[3, uniqueId, payload]``
* CALLERROR   ``[4, uniqueId, errorCode, errorDescription, errorDetails]``

Rules of :func:`parse`:

* not JSON, not an array, or no readable uniqueId (a string, or an integer that a
  careless peer used) → :class:`~ocppj.errors.FrameError` with ``unique_id=None``: there is
  nobody to answer;
* a readable uniqueId but a broken CALL (bad MessageTypeId, wrong arity, Action not a
  string, payload not an object, uniqueId not a string) → ``FrameError`` with
  ``reply=True``: a CALLERROR is owed;
* a broken CALLRESULT / CALLERROR → ``FrameError`` with ``reply=False``: a response is
  never answered, but the call it names can be failed.
"""

from __future__ import annotations

from typing import Any

import orjson
from attrs import frozen

from ocppj.errors import ErrorCode, Failure, FrameError

CALL = 2
CALL_RESULT = 3
CALL_ERROR = 4


@frozen
class Call:
    """A CALL frame."""

    unique_id: str
    action: str
    payload: dict[str, Any]


@frozen
class CallResult:
    """A CALLRESULT frame."""

    unique_id: str
    payload: dict[str, Any]


@frozen
class CallErrorFrame:
    """A CALLERROR frame."""

    unique_id: str
    code: str
    description: str
    details: dict[str, Any]


Frame = Call | CallResult | CallErrorFrame


def _readable_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def parse(data: str | bytes) -> Frame:
    """Parse one WebSocket message into a frame.

    Raises:
        FrameError: the message is not a well-formed OCPP-J frame.
    """
    try:
        msg = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise FrameError(None, f"not JSON: {exc}") from None
    if not isinstance(msg, list) or not msg:
        raise FrameError(None, "not a non-empty JSON array")
    if len(msg) < 2 or not _readable_id(msg[1]):
        raise FrameError(None, "no readable uniqueId")
    type_id, unique_id = msg[0], msg[1]
    if type(type_id) is not int or type_id not in (CALL, CALL_RESULT, CALL_ERROR):
        raise FrameError(
            Failure.BAD_MESSAGE_TYPE, f"unknown MessageTypeId {type_id!r}", unique_id, reply=True
        )
    if type_id == CALL:
        return _parse_call(msg, unique_id)
    if type_id == CALL_RESULT:
        if len(msg) != 3:
            raise FrameError(Failure.WRONG_ARITY, "CALLRESULT needs 3 elements", unique_id)
        if not isinstance(msg[2], dict):
            raise FrameError(Failure.PAYLOAD_NOT_OBJECT, "CALLRESULT payload", unique_id)
        return CallResult(str(unique_id), msg[2])
    # CALLERROR: ErrorDetails is required by OCPP-J, but peers that omit it are understood.
    if len(msg) not in (4, 5):
        raise FrameError(Failure.WRONG_ARITY, "CALLERROR needs 5 elements", unique_id)
    details = msg[4] if len(msg) == 5 else {}
    if not isinstance(msg[2], str) or not isinstance(msg[3], str) or not isinstance(details, dict):
        raise FrameError(Failure.PAYLOAD_NOT_OBJECT, "malformed CALLERROR", unique_id)
    return CallErrorFrame(str(unique_id), msg[2], msg[3], details)


def _parse_call(msg: list[Any], unique_id: Any) -> Call:
    if len(msg) != 4:
        raise FrameError(
            Failure.WRONG_ARITY, f"CALL needs 4 elements, got {len(msg)}", unique_id, reply=True
        )
    if not isinstance(unique_id, str):
        raise FrameError(Failure.BAD_UNIQUE_ID, "uniqueId must be a string", unique_id, reply=True)
    action, payload = msg[2], msg[3]
    if not isinstance(action, str):
        raise FrameError(Failure.BAD_ACTION_TYPE, "Action must be a string", unique_id, reply=True)
    if not isinstance(payload, dict):
        raise FrameError(
            Failure.PAYLOAD_NOT_OBJECT, "payload must be a JSON object", unique_id, reply=True
        )
    return Call(unique_id, action, payload)


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def encode_call(unique_id: str, action: str, payload: dict[str, Any]) -> str:
    """A CALL frame as compact JSON text.

    Raises:
        TypeError: the payload holds something JSON cannot carry (as every ``encode_*``).
    """
    return _dumps([CALL, unique_id, action, payload])


def encode_call_prefix(unique_id: str) -> str:
    """How every CALL frame :func:`encode_call` writes with ``unique_id`` begins."""
    return _dumps([CALL, unique_id])[:-1] + ","


def encode_result(unique_id: str, payload: dict[str, Any]) -> str:
    """A CALLRESULT frame as compact JSON text."""
    return _dumps([CALL_RESULT, unique_id, payload])


def encode_error(
    unique_id: Any,
    code: ErrorCode | str,
    description: str = "",
    details: dict[str, Any] | None = None,
) -> str:
    """A CALLERROR frame as compact JSON text.

    ``unique_id`` is echoed as it came, even when a careless peer sent a number, so that
    the peer can still match the answer to its CALL.
    """
    return _dumps([CALL_ERROR, unique_id, str(code), description, details or {}])
