"""Our CALLs: the bookkeeping of one on its way out and of its answer, and the record a
CALL ended without an answer leaves (the message log's ``abandoned`` rows). Pure: no I/O;
:class:`ocppj.session.RpcSession` drives it, replay reads the same records."""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import orjson
import trio

from ocppj.errors import CallError, SessionClosed

#: How many of our CALLs given up (with an ``on_answer``) a session remembers, so that a
#: late answer to one is still recorded; replay keeps the same number.
LATE_ANSWERS_KEPT = 8

_T = TypeVar("_T")


def keep_given_up(given_up: dict[str, _T], unique_id: str, call: _T) -> None:
    """Remember a CALL given up, forgetting the oldest beyond :data:`LATE_ANSWERS_KEPT`:
    the live session and replay keep the same ones."""
    given_up[unique_id] = call
    while len(given_up) > LATE_ANSWERS_KEPT:
        del given_up[next(iter(given_up))]


@attrs.define
class PendingCall:
    unique_id: str
    action: str
    done: trio.Event = attrs.field(factory=trio.Event)
    payload: dict[str, Any] | None = None
    error: CallError | SessionClosed | None = None
    answered_at: datetime.datetime | None = None
    on_answer: Callable[[Answer], None] | None = None

    def resolve(
        self,
        payload: dict[str, Any] | None,
        error: CallError | SessionClosed | None,
        at: datetime.datetime | None = None,
    ) -> None:
        self.payload, self.error, self.answered_at = payload, error, at
        self.done.set()


@attrs.frozen
class Answer:
    """How the peer answered one of our CALLs (see :meth:`RpcSession.exchange`).

    Attributes:
        unique_id: the CALL's uniqueId.
        action: the CALL's action.
        payload: the CALLRESULT payload, or None when the answer was an error.
        error: the CALLERROR (or the invalid CALLRESULT) as a CallError, else None.
        answered_at: when the answer frame was read (the time the observer saw).
    """

    unique_id: str
    action: str
    payload: dict[str, Any] | None
    error: CallError | None
    answered_at: datetime.datetime


@attrs.define(eq=False)
class Sending:
    """One CALL of ours on its way out."""

    text: str
    payload: dict[str, Any]
    #: The observer was given the frame (a message log has it).
    logged: bool = False
    started: bool = False
    #: The send ended without the whole frame on the wire.
    failed: bool = False
    done: trio.Event = attrs.field(factory=trio.Event)

    @property
    def sent(self) -> bool:
        """On the wire, or on its way (a send still in progress may yet complete)."""
        return self.started and not self.failed


#: Reasons of an ``abandoned`` record whose CALL never left: the connection closed
#: before or while it was sent (``not_sent``), its deadline passed while it waited for its
#: turn (``deadline``), too many CALLs waited already (``queue_full``). A caller cancelled
#: before its CALL left is ``cancelled`` with ``sent`` false.
NOT_SENT_REASONS = frozenset({"not_sent", "deadline", "queue_full"})


def abandoned_record(unique_id: str, action: str, reason: str,
                     sending: Sending) -> dict[str, Any]:
    """The text of an :attr:`Direction.ABANDONED` record: ``uniqueId``, ``action``,
    ``reason`` (``timeout``, ``cancelled``, ``closed``, or one of
    :data:`NOT_SENT_REASONS`) and ``sent``. A CALL that never left also gets its
    ``size`` (the frame's bytes) and the ``sha256`` of its payload, never the payload; and
    ``logged``: the observer had been given its frame, which a message log is to replace
    by this summary."""
    record: dict[str, Any] = {"uniqueId": unique_id, "action": action, "reason": reason,
                              "sent": sending.sent}
    if not sending.sent:
        record["logged"] = sending.logged
        record["size"] = len(sending.text.encode())
        record["sha256"] = hashlib.sha256(orjson.dumps(sending.payload)).hexdigest()
    return record


def abandoned_was_sent(record: dict[str, Any]) -> bool:
    """Whether the CALL of an abandoned record may have reached the peer (records written
    before ``sent`` existed: all but ``not_sent``)."""
    sent = record.get("sent")
    if isinstance(sent, bool):
        return sent
    return record.get("reason") not in NOT_SENT_REASONS
