"""Properties of the domain over generated sequences of OCPP exchanges (hypothesis).

A sequence is a list of commands for two chargers with two connectors each; each command
becomes an answered exchange (wire payloads → typed → projection → fold), answered the way
the handlers answer (StartTransaction: the known transactionId of a retransmission, else
the next one). Retransmissions of earlier Start/StopTransactions are generated too.
"""

from __future__ import annotations

import ast
import datetime
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from csms.domain import events as ev
from csms.domain.model import (
    Anomaly,
    Charger,
    Evse,
    RemoteCommand,
    Reservation,
    SentProfile,
    Session,
)
from csms.domain.replace import replace
from csms.domain.state import DomainState, replay
from csms.recorder import connection_event
from domain_helpers import AT, Csms, without_last_seen

CHARGERS = st.sampled_from(["A", "B"])
CONNECTORS = st.integers(1, 2)
STATUSES = st.sampled_from(["Available", "Preparing", "Charging", "Finishing", "Faulted"])
#: A transactionId to send: mostly the latest session's (sent by its charger, on its
#: connector) or the connector's open session's; else none, or any (maybe unknown, maybe
#: another charger's).
TX = st.one_of(st.just("latest"), st.just("latest"), st.just("open"), st.none(), st.integers(1, 8))
#: Few distinct start timestamps, so that identical StartTransactions happen.
START_TIMESTAMPS = st.sampled_from(["2024-05-01T10:00:00Z", "2024-05-01T10:05:00Z"])

Command = tuple[Any, ...]

START = st.tuples(
    st.just("start"),
    CHARGERS,
    CONNECTORS,
    st.sampled_from(["T1", "T2"]),
    st.sampled_from([0, 1000, 5000]),
    START_TIMESTAMPS,
)
METER = st.tuples(
    st.just("meter"),
    CHARGERS,
    st.integers(0, 2),
    TX,
    st.integers(-2000, 20_000),
    st.sampled_from(["Wh", "kWh"]),
)
STOP = st.tuples(
    st.just("stop"), CHARGERS, CONNECTORS, TX, st.integers(-100, 20_000), st.booleans()
)
OTHERS = st.one_of(
    st.tuples(st.just("boot"), CHARGERS),
    st.tuples(st.just("heartbeat"), CHARGERS),
    st.tuples(st.just("connect"), CHARGERS),
    st.tuples(st.just("disconnect"), CHARGERS),
    st.tuples(st.just("status"), CHARGERS, st.integers(0, 2), STATUSES),
)
#: A retransmission of an earlier Start/StopTransaction (an index into those sent).
REPEAT = st.tuples(st.just("repeat"), st.integers(0, 1000))


def _weighted(**weights: int) -> st.SearchStrategy[Command]:
    """Commands drawn with the given weights (one_of alone would favour OTHERS' branches)."""
    strategies = {"start": START, "meter": METER, "stop": STOP, "repeat": REPEAT, "other": OTHERS}
    kinds = [kind for kind, weight in weights.items() for _ in range(weight)]
    return st.sampled_from(kinds).flatmap(strategies.__getitem__)


# Weighted towards the transaction messages, where the properties have something to say.
SEQUENCES = st.lists(
    _weighted(other=2, start=3, meter=4, stop=2, repeat=1), min_size=1, max_size=50
)
SEQUENCES_WITHOUT_START = st.lists(
    _weighted(other=2, meter=3, stop=3, repeat=1), min_size=1, max_size=50
)


@attrs.define
class Run:
    """A sequence being played: the CSMS, every event, the Start/Stop exchanges sent."""

    csms: Csms = attrs.Factory(Csms)
    events: list[ev.Event] = attrs.Factory(list)
    sent: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = attrs.Factory(list)
    #: for each sent Stop, whether its transactionId was known when first sent
    stop_known: list[bool] = attrs.Factory(list)

    @property
    def state(self) -> DomainState:
        return self.csms.state

    def _target(
        self, charger_id: str, connector_id: int, choice: Any
    ) -> tuple[str, int, int | None]:
        """Who sends, on which connector, with which transactionId."""
        if choice == "latest" and self.state.sessions:
            session = self.state.sessions[max(self.state.sessions)]
            return session.charger_id, session.connector_id, session.transaction_id
        if choice in ("open", "latest"):
            session = self.state.open_session(charger_id, connector_id)
            return charger_id, connector_id, session.transaction_id if session else None
        return charger_id, connector_id, choice

    def _base(self, tx: int | None) -> int:
        session = self.state.sessions.get(tx) if tx is not None else None
        return session.meter_start if session is not None else 0

    def play(self, step: int, command: Command) -> list[ev.Event]:
        """One command as an exchange; its events."""
        at = AT + datetime.timedelta(seconds=step)
        csms, kind = self.csms, command[0]
        events: list[ev.Event] = []
        if kind == "boot":
            events = csms.boot(command[1], at=at)
        elif kind == "heartbeat":
            events = csms.heartbeat(command[1], at=at)
        elif kind in ("connect", "disconnect"):
            getattr(csms, kind)(command[1], at=at)
            # The event the recorder applied for the logged connection row.
            charger_id, direction, frame, logged_at = csms.store.frames[-1]
            event = connection_event(charger_id, direction, frame, logged_at)
            events = [event] if event is not None else []
        elif kind == "status":
            events = csms.status(command[1], command[2], command[3], at=at)
        elif kind == "start":
            _, charger_id, connector_id, id_tag, meter_start, timestamp = command
            request = csms.start_request(connector_id, id_tag, meter_start, timestamp)
            response = csms.start_response(charger_id, request)
            events = csms.exchange(charger_id, "StartTransaction", request, response, at)
            self.sent.append((charger_id, "StartTransaction", request, response))
        elif kind == "meter":
            _, charger_id, connector_id, choice, delta, unit = command
            charger_id, connector_id, tx = self._target(charger_id, connector_id, choice)
            register = max(0, self._base(tx) + delta)
            value = str(register) if unit == "Wh" else f"{register / 1000:.3f}"
            sampled = [{"value": value, "unit": unit}]
            events = csms.meter_values(charger_id, connector_id, sampled, tx, at)
        elif kind == "stop":
            _, charger_id, connector_id, choice, delta, with_data = command
            charger_id, connector_id, tx = self._target(charger_id, connector_id, choice)
            if tx is None:
                tx = self.state.next_transaction_id  # one nobody was given
            meter_stop = max(0, self._base(tx) + delta)
            request: dict[str, Any] = {
                "transactionId": tx,
                "meterStop": meter_stop,
                "timestamp": at.isoformat(),
            }
            if with_data:
                request["transactionData"] = [
                    {"timestamp": at.isoformat(), "sampledValue": [{"value": str(meter_stop)}]}
                ]
            self.stop_known.append(tx in self.state.sessions)
            events = csms.exchange(charger_id, "StopTransaction", request, {}, at)
            self.sent.append((charger_id, "StopTransaction", request, {}))
        elif kind == "repeat" and self.sent:
            events = self.retransmit(command[1] % len(self.sent), at)
        self.events += events
        return events

    def retransmit(self, index: int, at: datetime.datetime) -> list[ev.Event]:
        """Send an earlier Start/StopTransaction again; check that it changes nothing."""
        charger_id, action, request, response = self.sent[index]
        if action == "StartTransaction":
            # The handler answers a retransmission with the transactionId it gave first.
            assert self.csms.start_response(charger_id, request) == response
        before = without_last_seen(self.state)
        events = self.csms.exchange(charger_id, action, request, response, at)
        after = without_last_seen(self.state)
        assert events == [ev.ChargerSeen(charger_id, at)]
        assert after == before
        assert self.state.chargers[charger_id].last_seen == at
        return events


def check_invariants(run: Run, open_energy: dict[int, float]) -> None:
    state = run.state
    started = [e.transaction_id for e in run.events if isinstance(e, ev.SessionStarted)]
    # transactionIds are unique: no SessionStarted ever reuses one.
    assert len(started) == len(set(started))
    # Every session comes from a SessionStarted, and every SessionStarted left a session.
    assert set(state.sessions) == set(started)
    for tx, session in state.sessions.items():
        assert session.transaction_id == tx
        assert tx < state.next_transaction_id
        key = (session.charger_id, session.connector_id)
        if session.open:
            assert state.open_sessions[key] == tx
            # The energy of an open session never decreases.
            assert session.energy_wh >= open_energy.get(tx, 0.0)
            assert session.energy_wh >= 0.0
            open_energy[tx] = session.energy_wh
        else:
            assert state.open_sessions.get(key) != tx
            assert session.stop_reason is not None
            if session.meter_stop is not None:
                assert session.energy_wh == session.meter_stop - session.meter_start
            else:
                assert session.stop_reason in ("Superseded", "Orphaned")
    # At most one open session per connector, and only open ones are listed.
    for (charger_id, connector_id), tx in state.open_sessions.items():
        session = state.sessions[tx]
        assert session.open
        assert (session.charger_id, session.connector_id) == (charger_id, connector_id)
    # Every start key names the session it started.
    for (charger_id, connector_id, id_tag, meter_start, timestamp), tx in state.start_keys.items():
        session = state.sessions[tx]
        assert (charger_id, connector_id, id_tag) == (
            session.charger_id,
            session.connector_id,
            session.id_tag,
        )
        assert (meter_start, timestamp) == (session.meter_start, session.start_timestamp)


def play(commands: list[Command], check: bool = True) -> Run:
    run = Run()
    open_energy: dict[int, float] = {}
    for step, command in enumerate(commands):
        run.play(step, command)
        if check:
            check_invariants(run, open_energy)
    return run


@given(SEQUENCES)
def test_invariants_hold_after_every_exchange(commands: list[Command]) -> None:
    play(commands)


@given(SEQUENCES_WITHOUT_START)
def test_without_start_transaction_there_is_never_a_session(commands: list[Command]) -> None:
    run = play(commands)
    assert run.state.sessions == {}
    assert run.state.open_sessions == {}
    assert run.state.start_keys == {}
    assert not any(
        isinstance(e, ev.SessionStarted | ev.SessionStopped | ev.SessionSuperseded)
        for e in run.events
    )
    # Whatever transactionIds the chargers made up, none is given out later.
    stopped = [e.transaction_id for e in run.events if isinstance(e, ev.UnknownTransactionStopped)]
    assert run.state.next_transaction_id > max(stopped, default=0)


@given(SEQUENCES)
def test_the_fold_is_deterministic(commands: list[Command]) -> None:
    first, second = play(commands, check=False), play(commands, check=False)
    assert first.events == second.events
    assert first.state == second.state
    assert first.csms.store.changes == second.csms.store.changes


@given(SEQUENCES)
def test_replaying_the_events_rebuilds_the_state(commands: list[Command]) -> None:
    run = play(commands, check=False)
    assert replay(run.events) == run.state


@given(SEQUENCES, st.data())
def test_a_retransmitted_start_or_stop_changes_nothing_wherever_it_comes(
    commands: list[Command], data: st.DataObject
) -> None:
    run = play(commands, check=False)
    if run.sent:
        index = data.draw(st.integers(0, len(run.sent) - 1), label="retransmitted")
        run.retransmit(index, AT + datetime.timedelta(hours=1))


# -- no code path creates a session except StartTransaction ----------------------------------

SRC = Path(__file__).resolve().parents[1] / "src"


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _scan(visit: Any) -> set[tuple[str, str]]:
    """(file, enclosing function) of every node ``visit`` accepts, over src/.

    A function is named with its first parameter's annotation, which tells the fold's
    appliers (all named ``_``) apart.
    """
    found: set[tuple[str, str]] = set()
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

        def walk(node: ast.AST, where: str, path: Path = path) -> None:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                where = node.name
                if node.args.args and node.args.args[0].annotation is not None:
                    where += f"({ast.unparse(node.args.args[0].annotation)})"
            if visit(node):
                found.add((path.relative_to(SRC).as_posix(), where))
            for child in ast.iter_child_nodes(node):
                walk(child, where)

        walk(tree, "<module>")
    return found


def _calls(name: str) -> Any:
    return lambda node: isinstance(node, ast.Call) and _name(node.func) == name


def test_session_started_is_only_built_by_start_transaction() -> None:
    assert _scan(_calls("SessionStarted")) == {
        ("csms/domain/projection.py", "start_transaction(DomainState)")
    }


def test_session_is_only_built_by_the_session_started_applier() -> None:
    assert _scan(_calls("Session")) == {("csms/domain/state.py", "_(ev.SessionStarted)")}


def test_session_is_only_decoded_by_the_store_reloading_its_sessions() -> None:
    def session_as_argument(node: ast.AST) -> bool:
        return isinstance(node, ast.Call) and any(
            isinstance(arg, ast.Name) and arg.id == "Session"
            for arg in [*node.args, *(k.value for k in node.keywords)]
        )

    assert _scan(session_as_argument) == {("csms/storage/sqlite.py", "load_state")}


def test_sessions_are_only_stored_by_the_fold_and_the_store_reload() -> None:
    def writes_sessions(node: ast.AST) -> bool:
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
            return _name(node.value) == "sessions"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            mutators = ("update", "setdefault", "__setitem__")
            return node.func.attr in mutators and _name(node.func.value) == "sessions"
        return False

    assert _scan(writes_sessions) == {
        ("csms/domain/state.py", "_put_session(DomainState)"),
        ("csms/storage/sqlite.py", "load_state"),
    }



_any_value = st.one_of(st.none(), st.integers(), st.text(max_size=5), st.booleans(),
                       st.datetimes(timezones=st.just(datetime.UTC)))
_RECORDS = (Charger, Evse, Session, SentProfile, Reservation, Anomaly, RemoteCommand)


@st.composite
def _record_and_changes(draw: st.DrawFn) -> tuple[Any, dict[str, Any]]:
    cls = draw(st.sampled_from(_RECORDS))
    names = [a.name for a in attrs.fields(cls)]
    record = cls(**{name: draw(_any_value) for name in names})
    changed = draw(st.lists(st.sampled_from(names), unique=True))
    return record, {name: draw(_any_value) for name in changed}


@given(_record_and_changes())
def test_replace_is_attrs_evolve(case: tuple[Any, dict[str, Any]]) -> None:
    """The fold's fast copy of a record with some fields changed (every message makes
    one) is what attrs.evolve makes, whatever the fields hold."""
    record, changes = case
    copy = replace(record, **changes)
    assert copy == attrs.evolve(record, **changes)
    assert type(copy) is type(record)


def test_replace_refuses_a_field_the_record_does_not_have() -> None:
    with pytest.raises(TypeError, match="Charger has no field 'colour'"):
        replace(Charger(id="CP_01"), colour="red")
