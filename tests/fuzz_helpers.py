"""Shared machinery of the fuzz tests (``tests/test_fuzz_*.py``).

* :class:`TrioThread`: a trio system running in a helper thread with its own ``trio.run``,
  which a hypothesis state machine (plain synchronous code) drives with
  ``trio.from_thread.run``. The hypothesis-trio adapter is unmaintained; this needs none.
* :class:`LiveCsms`: a real :class:`~csms.app.Csms` (SQLite file, smart charging on)
  served on 127.0.0.1 port 0 inside that thread, and :class:`RawCharger`, a raw OCPP-J
  client over a real loopback WebSocket that keeps every answer by uniqueId and answers
  the CSMS's own CALLs (SetChargingProfile) the way the test tells it to.
* :func:`settle`: wait until nothing is in flight (every task blocked, the store idle).
* :func:`invariant_violations`: the checks shared by the stateful fuzzer and the scale test.

The clock is the real one: the store commits on a worker thread, which trio takes for
"all tasks blocked", so an autojumping clock would jump mid-commit. Every wait is under a
``fail_after`` watchdog.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import attrs
import trio
import trio.lowlevel
import trio.testing
import trio_websocket

from csms.app import Csms
from csms.domain.model import Session
from csms.domain.state import DomainState
from csms.replay import Rebuilt, diff, rebuild
from csms.smart.allocator import allocate
from csms.storage.sqlite import SqliteStore
from ocppj import SUBPROTOCOL
from ocppj.charging import min_power_w

#: Real seconds any single operation in the trio thread may take before the test fails.
STEP_TIMEOUT = 20.0


class TrioThread:
    """``trio.run`` in a daemon thread, with a nursery for long-lived tasks.

    Use it as a context manager; :meth:`run` runs an async function in the trio thread
    (as a new task) and returns its result, or raises what it raised.
    """

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="fuzz-trio", daemon=True)
        self.token: trio.lowlevel.TrioToken | None = None
        self.nursery: trio.Nursery | None = None
        self._stop: trio.Event | None = None
        #: What ended trio.run, if it ended with an exception.
        self.crashed: BaseException | None = None

    def _main(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:  # reported to the test thread by run() / close()
            self.crashed = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self.token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            self._ready.set()
            await self._stop.wait()
            nursery.cancel_scope.cancel()

    def __enter__(self) -> TrioThread:
        self._thread.start()
        self._ready.wait()
        if self.crashed is not None:
            raise RuntimeError("the trio thread did not start") from self.crashed
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def run(self, fn: Callable[..., Awaitable[Any]], *args: Any,
            timeout: float = STEP_TIMEOUT) -> Any:
        """Run ``await fn(*args)`` in the trio thread under a ``fail_after(timeout)``."""
        if self.crashed is not None:
            raise AssertionError("the trio thread crashed") from self.crashed

        async def guarded() -> Any:
            with trio.fail_after(timeout):
                return await fn(*args)

        assert self.token is not None
        return trio.from_thread.run(guarded, trio_token=self.token)

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start a long-lived task in the thread's nursery."""
        assert self.nursery is not None and self.token is not None
        trio.from_thread.run_sync(self.nursery.start_soon, fn, *args, trio_token=self.token)

    def close(self) -> None:
        """Cancel everything still running and join the thread."""
        if self._thread.is_alive() and self._stop is not None and self.token is not None:
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._stop.set, trio_token=self.token)
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the trio thread did not stop"


# -- errors logged anywhere -----------------------------------------------------------------


class ErrorLog(logging.Handler):
    """Collects every ERROR record (a handler that raised, a connection that failed …)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()}" + (f" ({r.exc_info[1]!r})" if r.exc_info else "")
                for r in self.records]


@contextlib.contextmanager
def capture_errors() -> Iterator[ErrorLog]:
    """An :class:`ErrorLog` attached to the root logger for the ``with`` block."""
    handler = ErrorLog()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


# -- a raw charger --------------------------------------------------------------------------


def answer_key(unique_id: Any) -> str:
    """How an answer is filed: a string uniqueId as itself, anything else as its JSON."""
    return unique_id if isinstance(unique_id, str) else "#" + json.dumps(unique_id)


@attrs.define(eq=False)
class RawCharger:
    """One WebSocket of a charge point id, driven frame by frame.

    A reader task files every CALLRESULT / CALLERROR by uniqueId (:attr:`answers`) and
    answers every CALL of the CSMS at once according to :attr:`profile_answer`
    (``Accepted``, ``Rejected`` or ``CallError``).
    """

    cp_id: str
    ws: trio_websocket.WebSocketConnection
    profile_answer: str = "Accepted"
    answers: dict[str, list[Any]] = attrs.Factory(dict)
    #: Anything received that is neither a CALL nor an answer with a filed uniqueId.
    garbage: list[str] = attrs.Factory(list)
    csms_calls: list[list[Any]] = attrs.Factory(list)
    #: Keys of the frames sent on this connection that are owed exactly one answer.
    owed: set[str] = attrs.Factory(set)
    #: Keys of :attr:`owed` sent twice (a uniqueId reused in flight): owed two answers.
    owed_twice: set[str] = attrs.Factory(set)
    #: How to answer particular CALLs of the CSMS, by their payload: ("result", payload),
    #: ("error", None) or ("late", payload): held back until :meth:`release_late`.
    scripted: list[tuple[dict[str, Any], str, Any]] = attrs.Factory(list)
    #: Answers held back, to send late.
    withheld: list[list[Any]] = attrs.Factory(list)
    closed: trio.Event = attrs.Factory(trio.Event)
    close_code: int | None = None
    close_reason: str | None = None
    _changed: trio.Event = attrs.Factory(trio.Event)
    _counter: int = 0

    def next_id(self) -> str:
        self._counter += 1
        return f"{self.cp_id}-{self._counter}"

    async def read(self) -> None:
        """The reader task: until the WebSocket closes."""
        try:
            while True:
                text = await self.ws.get_message()
                assert isinstance(text, str)
                try:
                    frame = json.loads(text)
                except ValueError:
                    self.garbage.append(text)
                    continue
                if isinstance(frame, list) and frame[:1] == [2] and len(frame) == 4:
                    self.csms_calls.append(frame)
                    await self._answer_csms(frame)
                elif isinstance(frame, list) and frame[:1] in ([3], [4]) and len(frame) >= 2:
                    self.answers.setdefault(answer_key(frame[1]), []).append(frame)
                else:
                    self.garbage.append(text)
                self._wake()
        except trio_websocket.ConnectionClosed as exc:
            if exc.reason is not None:
                self.close_code, self.close_reason = exc.reason.code, exc.reason.reason
        finally:
            self.closed.set()
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _answer_csms(self, frame: list[Any]) -> None:
        unique_id, action = frame[1], frame[2]
        script = next((s for s in self.scripted if s[0] == frame[3]), None)
        if script is not None:
            self.scripted.remove(script)
            _, how, payload = script
            if how == "late":
                self.withheld.append([3, unique_id, payload])
                return
            reply: list[Any] = ([3, unique_id, payload] if how == "result"
                                else [4, unique_id, "InternalError", "scripted", {}])
        elif action == "SetChargingProfile" and self.profile_answer == "CallError":
            reply = [4, unique_id, "NotSupported", "no smart charging here", {}]
        elif action == "SetChargingProfile":
            reply = [3, unique_id, {"status": self.profile_answer}]
        else:
            reply = [4, unique_id, "NotImplemented", "", {}]
        with contextlib.suppress(trio_websocket.ConnectionClosed):
            await self.ws.send_message(json.dumps(reply))

    async def send(self, text: str | bytes) -> None:
        await self.ws.send_message(text)

    async def release_late(self) -> None:
        """Send the answers held back."""
        withheld, self.withheld = self.withheld, []
        for reply in withheld:
            with contextlib.suppress(trio_websocket.ConnectionClosed):
                await self.ws.send_message(json.dumps(reply))

    async def wait_answer(self, key: str) -> list[Any] | None:
        """The answer filed under ``key``; None when the socket closed first."""
        while key not in self.answers:
            if self.closed.is_set():
                return None
            await self._changed.wait()
        return self.answers[key][0]

    async def wait_answers(self, key: str, count: int) -> list[list[Any]]:
        """The first ``count`` answers filed under ``key`` (fewer if the socket closed)."""
        while len(self.answers.get(key, ())) < count and not self.closed.is_set():
            await self._changed.wait()
        return self.answers.get(key, [])[:count]

    async def call(self, action: str, payload: dict[str, Any],
                   unique_id: str | None = None) -> list[Any]:
        """Send a CALL and return its answer frame (CALLRESULT or CALLERROR)."""
        unique_id = unique_id or self.next_id()
        await self.send(json.dumps([2, unique_id, action, payload]))
        answer = await self.wait_answer(unique_id)
        assert answer is not None, f"{self.cp_id}: closed before answering {action}"
        return answer

    async def wait_closed(self) -> None:
        await self.closed.wait()

    async def aclose(self) -> None:
        await self.ws.aclose()
        await self.closed.wait()


async def open_charger(thread_nursery: trio.Nursery, port: int, cp_id: str) -> RawCharger:
    """Connect ``cp_id`` to the CSMS on ``port``; its reader runs in ``thread_nursery``."""
    ws = await trio_websocket.connect_websocket_url(
        thread_nursery, f"ws://127.0.0.1:{port}/ocpp/{cp_id}", subprotocols=[SUBPROTOCOL],
        max_message_size=64 * 1024 * 1024,
    )
    assert ws.subprotocol == SUBPROTOCOL
    charger = RawCharger(cp_id, ws)
    thread_nursery.start_soon(charger.read)
    return charger


# -- quiescence -----------------------------------------------------------------------------


async def settle(csms: Csms) -> None:
    """Return once every task in this trio run is blocked and the store is idle.

    Loopback writes land in the peer's socket buffer at once, so ready I/O keeps
    ``wait_all_tasks_blocked`` from returning; the store's thread is checked separately.
    """
    while True:
        await trio.testing.wait_all_tasks_blocked()
        store = csms.store
        if isinstance(store, SqliteStore) and store.busy:
            await store.wait_idle()
            continue
        return


# -- invariants -----------------------------------------------------------------------------


@attrs.frozen
class Snapshot:
    """What the store holds and what the log rebuilds, read together."""

    stored: DomainState
    rebuilt: Rebuilt
    replay_diff: list[str]
    live_diff: list[str]


async def snapshot(csms: Csms) -> Snapshot:
    """Read the log, the projection and the samples; rebuild; diff against both states.

    Call it settled: the live state is compared with the log read here.
    """
    store = csms.store
    await store.flush()
    rows = await store.read_log()
    stored = await store.load_state()
    samples = await store.read_samples()
    rebuilt = rebuild(rows)
    live_diff = diff(csms.state, samples, rebuilt)
    live, again = csms.state, rebuilt.state
    for name in ("open_sessions", "start_keys", "unknown_stops", "next_transaction_id"):
        if getattr(live, name) != getattr(again, name):
            live_diff.append(f"{name}: live {getattr(live, name)!r}, "
                             f"replayed {getattr(again, name)!r}")
    return Snapshot(stored, rebuilt, diff(stored, samples, rebuilt), live_diff)


def session_violations(state: DomainState) -> list[str]:
    """Sessions that break the domain's own rules."""
    problems = []
    for tx, s in state.sessions.items():
        if tx != s.transaction_id:
            problems.append(f"session filed under {tx} is {s.transaction_id}")
        if not s.open and s.meter_stop is not None and s.energy_wh != s.meter_stop - s.meter_start:
            problems.append(f"closed session {tx}: energy {s.energy_wh} != "
                            f"{s.meter_stop} - {s.meter_start}")
        if s.open and s.energy_wh < 0:
            problems.append(f"open session {tx}: negative energy {s.energy_wh}")
        if s.open and state.open_sessions.get((s.charger_id, s.connector_id)) != tx:
            problems.append(f"open session {tx} is not the open one of its connector")
    for key, tx in state.open_sessions.items():
        session: Session | None = state.sessions.get(tx)
        if session is None or not session.open or (session.charger_id,
                                                   session.connector_id) != key:
            problems.append(f"open_sessions[{key}] = {tx} names no open session there")
    by_tag: dict[str, set[tuple[str, int]]] = {}
    for key, tx in state.open_sessions.items():
        if tx in state.sessions:
            by_tag.setdefault(state.sessions[tx].id_tag.casefold(), set()).add(key)
    if by_tag != state.open_by_tag:
        problems.append(f"open_by_tag {state.open_by_tag!r} is not the open sessions' "
                        f"idTags {by_tag!r}")
    if state.sessions and state.next_transaction_id <= max(state.sessions):
        problems.append(f"next transactionId {state.next_transaction_id} already given out")
    return problems


def allocation_violations(csms: Csms) -> list[str]:
    """The smart-charging allocation in force, and a fresh one, against every limit."""
    smart = csms.smart
    if smart is None:
        return []
    site = smart.site
    problems: list[str] = []
    demands = smart.demands()
    fresh = allocate(demands, site.limit_w, site.group_limits_w(), tick=smart.tick,
                     guard_band_w=site.guard_band_kw * 1000)
    # Each allocation against the fixed load it was computed with: the last rebalance's
    # (what it counted for the sessions it did not allocate), and today's.
    fixed_then = sum(w for key, w in smart.bounds.items() if key not in smart.allocation)
    fixed_now = sum(d.fixed_load_w for d in demands if not d.controlled)
    for name, allocation, fixed in (("in force", smart.allocation, fixed_then),
                                    ("fresh", fresh, fixed_now)):
        total = sum(allocation.values())
        if site.limit_w is not None and total > max(site.limit_w - fixed, 0.0) + 1e-6:
            problems.append(f"allocation {name}: {total:.1f} W + fixed {fixed:.1f} W "
                            f"> site limit {site.limit_w:.1f} W")
        for key, watts in allocation.items():
            max_w, phases, _ = site.rating(*key)
            min_w = min_power_w(phases)
            if watts < 0 or watts > max_w + 1e-6:
                problems.append(f"allocation {name} {key}: {watts} W outside 0..{max_w}")
            if 0 < watts < min_w - 1e-6:
                problems.append(f"allocation {name} {key}: {watts} W in (0, {min_w}) W")
    return problems


def utc(moment: datetime.datetime) -> str:
    """An OCPP timestamp with ``Z``."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
