"""The trio shell around the OCPP-J codec: one :class:`RpcSession` per WebSocket.

A session runs two tasks (:meth:`RpcSession.run`):

* the **reader** takes every WebSocket message, hands CALLRESULT / CALLERROR frames to
  the CALL of ours that waits for them, and queues incoming CALLs on a bounded channel;
* the **dispatcher** answers the queued CALLs one at a time, in arrival order, through the
  handlers of a :class:`Router`.

Because the reader never waits for a handler, a handler may itself :meth:`~RpcSession.call`
the peer: the answer is read while the handler waits. At most one CALL of ours is
outstanding (OCPP-J); concurrent callers queue on a fair lock and go in arrival order.

Nothing a peer sends can end the session except closing the WebSocket: unreadable
frames are logged and counted, broken CALLs and handler exceptions are answered with
the OCPP 1.6 code from :data:`ocppj.errors.ERROR_TABLE`.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import attrs
import orjson
import trio
import trio_websocket

from ocppj import frames
from ocppj.errors import (
    CallError,
    CallTimeout,
    ClosedBeforeAnswer,
    ErrorCode,
    Failure,
    FrameError,
    InvalidResponse,
    NotSent,
    PayloadError,
    SessionClosed,
    code_for,
)
from ocppj.outgoing import (
    LATE_ANSWERS_KEPT,
    NOT_SENT_REASONS,
    Answer,
    PendingCall,
    Sending,
    abandoned_record,
    abandoned_was_sent,
    keep_given_up,
)
from ocppj.payloads import (
    action_of,
    converter,
    in_schema_order,
    request_from_payload,
    response_from_payload,
    to_payload,
)
from ocppj.routing import CallInfo, Handler, Router, current_call
from ocppj.schemas import ACTIONS, validate_request, validate_response
from ocppj.tolerance import admit

__all__ = [
    "LATE_ANSWERS_KEPT",
    "NOT_SENT_REASONS",
    "Answer",
    "CallInfo",
    "Direction",
    "FrameObserver",
    "Handler",
    "MessageStream",
    "Router",
    "RpcSession",
    "SessionStatistics",
    "abandoned_record",
    "abandoned_was_sent",
    "current_call",
    "keep_given_up",
    "utc_now",
]

log = logging.getLogger("ocppj")

_CLOSED = (trio_websocket.ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError)
_LOGGED_FRAME_CHARS = 200
#: Frames that are not well-formed OCPP-J that the observer (the message log) is given per
#: session, each cut to :data:`BAD_FRAME_CHARS`; later ones are only counted
#: (``SessionStatistics.bad_frames_unrecorded``): one socket sending 1 MiB of junk a
#: frame must not fill the disk.
RECORDED_BAD_FRAMES = 10
#: Characters of a bad frame kept for the observer and the log.
BAD_FRAME_CHARS = 1024


class MessageStream(Protocol):
    """What a session needs from a WebSocket (``trio_websocket.WebSocketConnection``)."""

    async def get_message(self) -> str | bytes: ...

    async def send_message(self, message: str | bytes) -> None: ...


class Direction(enum.StrEnum):
    """Which way a frame travelled, seen from this side; or ``ABANDONED``: one of our
    CALLs was given up (no answer in time, or its caller was cancelled), so that an answer
    arriving later is dropped. The text then is ``{"uniqueId": ..., "action": ...}``, not
    a frame: a message log that keeps it tells a replay to drop that late answer too."""

    IN = "in"
    OUT = "out"
    ABANDONED = "abandoned"


#: Awaited with every frame, in and out: its direction, its text on the wire and the
#: moment (the session's clock) it was read or is about to be sent (and with every
#: CALL of ours given up, see :attr:`Direction.ABANDONED`). An outgoing frame is
#: sent only once the observer returns, so an observer that commits the frame to a log
#: makes the log durable before the peer sees the frame.
FrameObserver = Callable[[Direction, str, datetime.datetime], Awaitable[None]]


def utc_now() -> datetime.datetime:
    """The wall clock, in UTC (the default session clock)."""
    return datetime.datetime.now(datetime.UTC)


@attrs.frozen
class SessionStatistics:
    """Counters of one session, as returned by :meth:`RpcSession.statistics`."""

    calls_received: int
    calls_sent: int
    errors_sent: int
    unreadable_frames: int
    unmatched_responses: int
    #: Frames that are not well-formed OCPP-J (malformed CALLs included) ...
    bad_frames: int = 0
    #: ... of which the observer was not given a copy (past ``RECORDED_BAD_FRAMES``).
    bad_frames_unrecorded: int = 0
    #: Incoming CALLs the reader waited before (over ``call_rate``).
    calls_throttled: int = 0


@attrs.define
class _Counters:
    calls_received: int = 0
    calls_sent: int = 0
    errors_sent: int = 0
    unreadable_frames: int = 0
    unmatched_responses: int = 0
    bad_frames: int = 0
    bad_frames_unrecorded: int = 0
    calls_throttled: int = 0


#: For each record reason of a CALL that never left: :class:`NotSent`'s ``reason`` and
#: what its message says.
_NOT_SENT = {
    "deadline": ("deadline", "its deadline passed before its turn"),
    "queue_full": ("queue_full", "too many CALLs already wait their turn"),
    "not_sent": ("closed", "the connection closed first"),
}


class _Flood(Exception):
    """The peer stayed over its CALL rate for too long."""


class _PeerCallError(CallError):
    """A CALLERROR the peer answered one of our CALLs with."""


class RpcSession:
    """OCPP-J RPC over one WebSocket, for either side (CSMS or charge point).

    Args:
        stream: the open WebSocket.
        router: handlers for incoming CALLs.
        name: who the peer is, for log lines (the charge point id).
        call_timeout: default seconds to wait for the answer to one of our CALLs.
        observer: awaited with every frame in and out.
        clock: the wall clock stamped on frames (tests pass their own).
        queue_size: incoming CALLs buffered before the reader waits for the dispatcher.
        call_rate: incoming CALLs per second allowed on average (None: no limit), with
            bursts of ``call_burst``. Past it the reader waits before reading on: TCP
            pushes back on the peer, and nothing is refused (a charger may drop a
            transaction message refused too often).
        call_burst: CALLs allowed at once before ``call_rate`` applies.
        call_flood_after: seconds a peer may stay over ``call_rate`` without a pause
            (every CALL read late) before the session ends itself: :attr:`ended_for` is
            then ``(1008, "CALL rate exceeded")`` and the CSMS closes with that code. A
            charger catching up on a backlog is over the rate for minutes at most, and
            after a close it reconnects and goes on, losing nothing.
        max_queued_calls: our CALLs that may wait behind the outstanding one (None: no
            bound); one more is not sent (:class:`NotSent`, reason ``queue_full``).
        drop_after_timeouts: after this many of our CALLs in a row go unanswered, the
            session ends itself (:attr:`ended_for` ``(1001, ...)``); None: never.
        answer_in_reader: answer each incoming CALL in the reader task itself, with no
            dispatcher task: no second task, no channel, no scheduling round trip per
            CALL. Only for handlers that never wait on the peer (a handler that called
            the peer back and awaited the answer would wait for ever: nobody reads it);
            while one runs, and while its answer goes out, nothing more is read. The
            CSMS answers so; the simulator does not (a charger that answers late must
            go on reading).
    """

    def __init__(
        self,
        stream: MessageStream,
        router: Router,
        *,
        name: str = "peer",
        call_timeout: float = 30.0,
        observer: FrameObserver | None = None,
        clock: Callable[[], datetime.datetime] = utc_now,
        queue_size: int = 8,
        call_rate: float | None = None,
        call_burst: float = 100.0,
        call_flood_after: float = 600.0,
        max_queued_calls: int | None = None,
        drop_after_timeouts: int | None = None,
        answer_in_reader: bool = False,
    ) -> None:
        self._max_queued_calls = max_queued_calls
        #: Our CALLs waiting for their turn behind the one outstanding.
        self._queued = 0
        self._drop_after_timeouts = drop_after_timeouts
        self._timeouts_in_a_row = 0
        self._nursery: trio.Nursery | None = None
        self._clock = clock
        self._call_rate = call_rate
        self._call_burst = max(call_burst, 1.0)
        self._flood_after = call_flood_after
        #: trio time since which every CALL was read late (None: not over the rate).
        self._over_rate_since: float | None = None
        #: (close code, reason) when the session ended itself (a CALL flood); else None.
        self.ended_for: tuple[int, str] | None = None
        self._tokens = self._call_burst
        self._tokens_at = trio.current_time()
        self.name = name
        self.call_timeout = call_timeout
        self._stream = stream
        self._router = router
        self._observer = observer
        self._call_sender: trio.MemorySendChannel[tuple[frames.Call, datetime.datetime]] | None
        self._call_receiver: trio.MemoryReceiveChannel[
            tuple[frames.Call, datetime.datetime]] | None
        if answer_in_reader:
            self._call_sender = self._call_receiver = None
        else:
            self._call_sender, self._call_receiver = trio.open_memory_channel[
                tuple[frames.Call, datetime.datetime]
            ](queue_size)
        self._call_lock = trio.Lock()
        self._pending: PendingCall | None = None
        #: Our CALLs given up with an ``on_answer``, newest last (at most
        #: LATE_ANSWERS_KEPT): a late answer to one is still recorded.
        self._given_up: dict[str, PendingCall] = {}
        self._closed = False
        self._ended = trio.Event()
        self._counters = _Counters()
        #: trio time of our last CALL (for a charge point's heartbeat rule).
        self.last_call_at = trio.current_time()
        #: trio time the last message was read (for a keepalive ping on silence).
        self.last_read_at = trio.current_time()
        #: Why the WebSocket closed, once it has (``trio_websocket.CloseReason``).
        self.close_reason: trio_websocket.CloseReason | None = None

    @property
    def closed(self) -> bool:
        """True once the WebSocket has closed."""
        return self._closed

    async def wait_closed(self) -> None:
        """Return once the session has ended (the WebSocket closed)."""
        await self._ended.wait()

    def statistics(self) -> SessionStatistics:
        """A snapshot of this session's counters."""
        return SessionStatistics(**attrs.asdict(self._counters))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read and answer until the WebSocket closes; then return.

        Started with ``await nursery.start(session.run)``, it reports ready once the
        dispatcher is running.
        """
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if self._call_receiver is not None:
                nursery.start_soon(self._dispatcher, self._call_receiver)
            task_status.started()
            try:
                await self._reader()
            finally:
                self._nursery = None
                self._closed = True
                self._ended.set()
                if self._call_sender is not None:
                    self._call_sender.close()
                if self._pending is not None:
                    self._pending.resolve(None, SessionClosed(f"{self.name}: connection closed"))

    # -- our CALLs -----------------------------------------------------------------------

    # The per-CALL timeout is OCPP's answer deadline: its expiry is a protocol outcome
    # (CallTimeout) that callers handle, not a cancellation of the caller.
    async def call(self, request: Any, *, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """Send an ``ocpp.v16.call`` request and return its ``ocpp.v16.call_result``.

        Raises:
            PayloadError: the request breaks its schema; nothing was sent.
            CallError: the peer answered with a CALLERROR (its code in ``.code``).
            InvalidResponse: the peer's CALLRESULT breaks the response schema.
            CallTimeout: no answer within ``timeout`` (default: the session's).
            SessionClosed: the connection closed first.
        """
        action = action_of(request)
        # Unordered here: exchange() puts every outgoing payload in schema order once.
        payload = await self.call_payload(
            action, converter.unstructure(request), timeout=timeout
        )
        return response_from_payload(action, payload)

    async def call_payload(
        self,
        action: str,
        payload: dict[str, Any],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (see call)
    ) -> dict[str, Any]:
        """Like :meth:`call`, with the wire payload as a dict in and out."""
        answer = await self.exchange(action, payload, timeout=timeout)
        if answer.error is not None:
            raise answer.error
        assert answer.payload is not None
        return answer.payload

    async def exchange(
        self,
        action: str,
        payload: dict[str, Any],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (see call)
        on_answer: Callable[[Answer], None] | None = None,
    ) -> Answer:
        """Send a CALL and return the peer's answer, a CALLERROR included.

        The payload goes out with its keys in the schema's order (:func:`in_schema_order`),
        top level and nested, whatever the order of the dict given.

        Args:
            action: the OCPP action.
            payload: the wire payload.
            timeout: seconds from this call to the answer (default: the session's),
                the wait behind our earlier CALLs to the peer included.
            on_answer: called synchronously by the reader with the answer as soon as its
                frame is read (a CALLRESULT or CALLERROR, not a malformed frame), before
                the next frame is read: what records the answer then takes effect in
                the order of the message log, ahead of any CALL the peer sends next.
                Also for an answer that comes after the timeout, while the CALL is
                among the session's last :data:`LATE_ANSWERS_KEPT` given up.

        Raises:
            PayloadError: the request breaks its schema; nothing was sent.
            CallError: ``action`` is not OCPP 1.6 (NotImplemented); nothing was sent.
            CallTimeout: sent (or being sent), and no answer in time.
            NotSent: the CALL never left (a SessionClosed): the connection closed first
                (``reason`` ``closed``), its deadline passed while it waited for its turn
                (``deadline``), or ``max_queued_calls`` CALLs already waited
                (``queue_full``).
            ClosedBeforeAnswer: sent, and the connection closed before the answer (a
                SessionClosed): the peer may have acted on it.

        Every CALL that ends unanswered is told to the observer as ``ABANDONED``, with
        the reason (see :func:`abandoned_record`), before anything else is read. After
        ``drop_after_timeouts`` timeouts in a row the session ends itself.
        """
        if action not in ACTIONS:
            raise CallError.from_failure(Failure.UNKNOWN_ACTION, f"{action!r} is not OCPP 1.6")
        validate_request(action, payload)
        payload = in_schema_order(action, payload)
        deadline = trio.current_time() + (self.call_timeout if timeout is None else timeout)
        pending = PendingCall(str(uuid.uuid4()), action, on_answer=on_answer)
        sending = Sending(frames.encode_call(pending.unique_id, action, payload), payload)
        outcome = await self._take_turn(pending, sending, deadline)
        if outcome is None:
            try:
                outcome = await self._transact(pending, sending, deadline)
            finally:
                self._call_lock.release()
        if outcome == "timeout":
            self._timeouts_in_a_row += 1
            limit = self._drop_after_timeouts
            if limit is not None and self._timeouts_in_a_row >= limit:
                self._end(1001, f"no answer to {limit} CALLs in a row")
            raise CallTimeout(
                f"{self.name}: no answer to {action} {pending.unique_id}",
                unique_id=pending.unique_id,
            )
        if outcome == "closed":
            raise ClosedBeforeAnswer(
                f"{self.name}: connection closed after {action} {pending.unique_id} was "
                "sent, before its answer"
            )
        if outcome in NOT_SENT_REASONS:
            reason, why = _NOT_SENT[outcome]
            raise NotSent(f"{self.name}: {action} not sent: {why}", reason=reason)
        assert pending.answered_at is not None
        assert not isinstance(pending.error, SessionClosed)  # that is outcome "closed"
        return Answer(
            pending.unique_id, action, pending.payload, pending.error, pending.answered_at
        )

    async def _take_turn(
        self, pending: PendingCall, sending: Sending, deadline: float
    ) -> str | None:
        """Take the CALL lock: wait behind our earlier CALLs (at most ``max_queued_calls``
        wait) until ``deadline``.

        Returns:
            None (the lock is taken), or why the CALL did not get its turn, after its
            record: ``queue_full`` or ``deadline``.
        """
        # The lock is fair: acquire_nowait succeeds only when nobody holds it or waits for
        # it. Taking it so spares the scheduling round trip of ``await acquire()`` on the
        # common path.
        try:
            self._call_lock.acquire_nowait()
            return None
        except trio.WouldBlock:
            pass
        if self._max_queued_calls is not None and self._queued >= self._max_queued_calls:
            await self._gave_up(pending, "queue_full", sending)
            return "queue_full"
        self._queued += 1
        try:
            with trio.move_on_at(deadline):
                await self._call_lock.acquire()
                return None
        finally:
            self._queued -= 1
        await self._gave_up(pending, "deadline", sending)
        return "deadline"

    async def _transact(
        self, pending: PendingCall, sending: Sending, deadline: float
    ) -> str | None:
        """With the CALL lock held: send our CALL and wait for its answer until ``deadline``.

        Returns:
            None (answered), or why not: ``timeout`` (sent, no answer in time), ``closed``
            (sent; the connection closed first), ``not_sent`` (the connection closed
            before it left) or ``deadline`` (its deadline passed before it left). A
            cancelled caller gets Cancelled, after the ``cancelled`` row.
        """
        if self._closed:
            await self._gave_up(pending, "not_sent", sending)
            return "not_sent"
        self._pending = pending
        outcome: str | None = "cancelled"
        try:
            with trio.move_on_at(deadline) as scope:
                if self._observer is not None:
                    # Committed before it leaves (see FrameObserver); from here on, a CALL
                    # that does not leave has its logged frame replaced by a summary.
                    sending.logged = True
                    await self._observer(Direction.OUT, sending.text, self._clock())
                if self._closed:
                    sending.started = sending.failed = True
                    sending.done.set()
                elif self._nursery is None:
                    await self._transmit(sending)
                else:
                    # In a task of the session, so that the deadline is kept even when
                    # the peer reads nothing: a send cut short would leave half a frame
                    # on the wire. (A peer that reads nothing is the transport's to
                    # notice: the CSMS's StallGuard breaks the stream.)
                    self._nursery.start_soon(self._transmit, sending)
                    await sending.done.wait()
                if not sending.failed:
                    self._counters.calls_sent += 1
                    self.last_call_at = trio.current_time()
                    await pending.done.wait()
            if not sending.sent:
                outcome = "not_sent" if sending.done.is_set() else "deadline"
            elif pending.done.is_set():
                outcome = "closed" if isinstance(pending.error, SessionClosed) else None
            elif scope.cancelled_caught:
                # Sent (or still being sent: it may yet arrive); no answer in time.
                outcome = "timeout"
        finally:
            # From here on an answer to this CALL is dropped as unmatched; the observer
            # hears it before any later frame is read.
            self._pending = None
            if outcome is not None:
                if outcome in ("timeout", "cancelled") and sending.sent \
                        and pending.on_answer is not None:
                    keep_given_up(self._given_up, pending.unique_id, pending)
                await self._gave_up(pending, outcome, sending)
        return outcome

    async def _transmit(self, sending: Sending) -> None:
        """Put our CALL on the wire; ``sending`` says how that went."""
        sending.started = True
        try:
            await self._put_on_wire(sending.text)
        except SessionClosed:
            sending.failed = True
        except BaseException:
            sending.failed = True
            raise
        finally:
            sending.done.set()

    def _end(self, code: int, reason: str) -> None:
        """End the session from within (its peer does not answer or does not read): the
        connection is to be closed with ``code`` and ``reason`` (:attr:`ended_for`)."""
        if self.ended_for is None:
            log.warning("%s: ending the session: %s", self.name, reason)
            self.ended_for = (code, reason)
        self._closed = True
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def _gave_up(self, pending: PendingCall, reason: str, sending: Sending) -> None:
        """Tell the observer that our CALL ``pending`` ends unanswered, and why (see
        :func:`abandoned_record`)."""
        if self._observer is None:
            return
        given_up = abandoned_record(pending.unique_id, pending.action, reason, sending)
        with trio.CancelScope(shield=True):
            await self._observer(
                Direction.ABANDONED, orjson.dumps(given_up).decode(), self._clock()
            )

    # -- the two tasks -------------------------------------------------------------------

    async def _reader(self) -> None:
        try:
            while True:
                data = await self._stream.get_message()
                self.last_read_at = trio.current_time()
                text = data if isinstance(data, str) else data.decode("utf-8", "replace")
                at = self._clock()
                try:
                    frame: frames.Frame | FrameError = frames.parse(text)
                except FrameError as exc:
                    frame = exc
                if self._observer is not None:
                    recorded = text if not isinstance(frame, FrameError) else self._bad(text)
                    if recorded is not None:
                        await self._observer(Direction.IN, recorded, at)
                if isinstance(frame, FrameError):
                    await self._on_frame_error(frame, text, at)
                else:
                    await self._on_frame(frame, at)
        except trio_websocket.ConnectionClosed as exc:
            self.close_reason = exc.reason
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except _Flood as flood:
            log.warning("%s: ending the session: %s", self.name, flood)
            self.ended_for = (1008, "CALL rate exceeded")

    def _bad(self, text: str) -> str | None:
        """What the observer records of a frame that is not well-formed OCPP-J: the first
        ones, cut to ``BAD_FRAME_CHARS``; then nothing (counted)."""
        counters = self._counters
        counters.bad_frames += 1
        if counters.bad_frames > RECORDED_BAD_FRAMES:
            counters.bad_frames_unrecorded += 1
            if counters.bad_frames_unrecorded == 1:
                log.warning("%s: %d bad frames; further ones are counted, not recorded",
                            self.name, RECORDED_BAD_FRAMES)
            return None
        if len(text) <= BAD_FRAME_CHARS:
            return text
        return f"{text[:BAD_FRAME_CHARS]}…[{len(text)} characters, cut]"

    async def _throttle(self) -> None:
        """Take a token of the CALL budget; wait for one when there is none."""
        rate = self._call_rate
        if rate is None:
            return
        now = trio.current_time()
        self._tokens = min(self._call_burst, self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        if self._tokens < 1:
            if self._over_rate_since is None:
                self._over_rate_since = now
            elif now - self._over_rate_since > self._flood_after:
                raise _Flood(f"over {rate:g} CALLs per second for "
                             f"{now - self._over_rate_since:.0f} s")
            self._counters.calls_throttled += 1
            if self._counters.calls_throttled == 1:
                log.warning("%s: more than %g CALLs per second; reading slower", self.name,
                            rate)
            await trio.sleep((1 - self._tokens) / rate)
            self._tokens, self._tokens_at = 1.0, trio.current_time()
        else:
            self._over_rate_since = None
        self._tokens -= 1

    async def _on_frame(self, frame: frames.Frame, at: datetime.datetime) -> None:
        if isinstance(frame, frames.Call):
            await self._throttle()
            self._counters.calls_received += 1
            sender = self._call_sender
            if sender is None:
                await self._dispatch(frame, at)  # answer_in_reader
                return
            try:
                # No scheduling round trip when the channel has room (the usual case).
                sender.send_nowait((frame, at))
            except trio.WouldBlock:
                await sender.send((frame, at))
        else:
            self._on_response(frame, at)

    async def _on_frame_error(self, exc: FrameError, text: str, at: datetime.datetime) -> None:
        quiet = self._counters.bad_frames > RECORDED_BAD_FRAMES  # logged once, then counted
        if exc.reply and exc.failure is not None:
            if not quiet:
                log.warning("%s: malformed CALL (%s): %.*s", self.name, exc,
                            _LOGGED_FRAME_CHARS, text)
            await self._send_error(exc.unique_id, code_for(exc.failure), exc.description)
            return
        pending = self._pending
        if (
            exc.unique_id is not None
            and pending is not None
            and pending.unique_id == str(exc.unique_id)
        ):
            code = code_for(exc.failure) if exc.failure else ErrorCode.FORMATION_VIOLATION
            pending.resolve(None, CallError(code, f"malformed response: {exc}"), at)
            return
        self._counters.unreadable_frames += 1
        if not quiet:
            log.warning("%s: unreadable frame (%s): %.*s", self.name, exc,
                        _LOGGED_FRAME_CHARS, text)

    def _on_response(
        self, frame: frames.CallResult | frames.CallErrorFrame, at: datetime.datetime
    ) -> None:
        pending = self._pending
        if pending is None or pending.unique_id != frame.unique_id or pending.done.is_set():
            late = self._given_up.pop(str(frame.unique_id), None)
            if late is not None:
                # Its caller has had its CallTimeout; the answer is still what the peer
                # did: it goes to on_answer (the message log has the abandoned row first).
                log.info("%s: late answer to %s %s", self.name, late.action, late.unique_id)
                self._resolve(late, frame, at)
                return
            self._counters.unmatched_responses += 1
            log.warning("%s: dropped response to unknown uniqueId %r", self.name, frame.unique_id)
            return
        self._resolve(pending, frame, at)

    def _resolve(self, pending: PendingCall, frame: frames.CallResult | frames.CallErrorFrame,
                 at: datetime.datetime) -> None:
        """Resolve ``pending`` with its answer frame, and hand the answer to on_answer."""
        self._timeouts_in_a_row = 0
        if isinstance(frame, frames.CallErrorFrame):
            pending.resolve(
                None,
                _PeerCallError(
                    frame.code, frame.description, frame.details, unique_id=frame.unique_id
                ),
                at,
            )
        else:
            try:
                validate_response(pending.action, frame.payload)
            except PayloadError as exc:
                pending.resolve(None, InvalidResponse(exc, frame.payload), at)
            else:
                pending.resolve(frame.payload, None, at)
        if pending.on_answer is not None:
            error = pending.error
            assert not isinstance(error, SessionClosed)
            answer = Answer(pending.unique_id, pending.action, pending.payload, error, at)
            try:
                pending.on_answer(answer)
            except Exception:
                log.exception("%s: on_answer of %s failed", self.name, pending.action)

    async def _dispatcher(
        self, calls: trio.MemoryReceiveChannel[tuple[frames.Call, datetime.datetime]]
    ) -> None:
        async for call, received_at in calls:
            await self._dispatch(call, received_at)

    async def _dispatch(self, call: frames.Call, received_at: datetime.datetime) -> None:
        """Answer ``call``, then run what waits for the answer to be out."""
        info = CallInfo(call.unique_id, call.action, received_at)
        token = current_call.set(info)
        try:
            reply = await self._answer(call)
            try:
                await self._send(reply)
            except SessionClosed:
                return
        finally:
            current_call.reset(token)
        for callback in info.after_answer:
            try:
                callback()
            except Exception:
                log.exception("%s: after-answer callback of %s failed", self.name, call.action)

    async def _answer(self, call: frames.Call) -> str:
        """The frame answering ``call``: a CALLRESULT, or a CALLERROR from the error table."""
        action = call.action
        try:
            if action not in ACTIONS:
                raise CallError.from_failure(Failure.UNKNOWN_ACTION, f"{action!r} is not OCPP 1.6")
            handler = self._router.get(action)
            if handler is None:
                raise CallError.from_failure(Failure.NO_HANDLER, f"{action} is not supported")
            info = current_call.get()
            payload, info.tolerated = admit(
                action, call.payload, info.received_at, self._router.tolerance
            )
            response = await self._run_handler(handler, action, payload)
            payload = to_payload(response, response_to=action)
            try:
                validate_response(action, payload)
                # Schema-valid is not always encodable (an integer beyond 64 bits).
                return frames.encode_result(call.unique_id, payload)
            except (PayloadError, TypeError) as exc:
                log.error("%s: our %s response is invalid: %s", self.name, action, exc)
                raise CallError.from_failure(Failure.INVALID_RESULT) from None
        except CallError as exc:
            error = exc
        except Exception:
            log.exception("%s: handler for %s %s failed", self.name, action, call.unique_id)
            error = CallError.from_failure(Failure.HANDLER_FAILED, "internal error")
        self._counters.errors_sent += 1
        try:
            return frames.encode_error(
                call.unique_id, error.code, error.description, dict(error.details)
            )
        except TypeError:
            # A handler's CallError whose details cannot be encoded: the session lives on.
            log.exception("%s: unencodable error for %s %s", self.name, action, call.unique_id)
            return frames.encode_error(
                call.unique_id, code_for(Failure.HANDLER_FAILED), "internal error"
            )

    async def _run_handler(self, handler: Handler, action: str, payload: dict[str, Any]) -> Any:
        """Run a handler. Only a plain :class:`CallError` it raises chooses the answer's
        code: the errors of its own ``call()`` to the peer (a CALLERROR received, an invalid
        response, an invalid request of ours) say nothing about the peer's CALL."""
        try:
            return await handler(request_from_payload(action, payload))
        except CallError as exc:
            if type(exc) is CallError:
                raise
            log.exception("%s: handler for %s failed", self.name, action)
            raise CallError.from_failure(Failure.HANDLER_FAILED, "internal error") from None

    # -- sending -------------------------------------------------------------------------

    async def _send_error(self, unique_id: Any, code: ErrorCode, description: str) -> None:
        self._counters.errors_sent += 1
        with contextlib.suppress(SessionClosed):
            await self._send(frames.encode_error(unique_id, code, description))

    async def _send(self, text: str) -> None:
        if self._observer is not None:
            await self._observer(Direction.OUT, text, self._clock())
        await self._put_on_wire(text)

    async def _put_on_wire(self, text: str) -> None:
        """Send one frame.

        Raises:
            SessionClosed: the connection is closed.
        """
        try:
            await self._stream.send_message(text)
        except _CLOSED as exc:
            self._closed = True
            raise SessionClosed(f"{self.name}: connection closed") from exc
