"""Replay pairs a charger's CALLs with our answers by the live session's rule (per
connection, in the order read) and never stops with a traceback (issue 15, point 2)."""

from __future__ import annotations

import datetime
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import trio

from csms.replay import UnreadableRow, rebuild
from csms.storage.base import LogRow
from process_helpers import run_python
from raw_cp_helpers import Wire
from test_csms_e2e import WATCHDOG, ChargePoint, read_back, running_csms, shut_down, ts

AT = datetime.datetime(2024, 5, 1, 10, 0, tzinfo=datetime.UTC)


def _frame(*parts: Any) -> str:
    return json.dumps(list(parts), separators=(",", ":"))


def _start(tag: str, meter: int, minute: int) -> dict[str, Any]:
    return {"connectorId": 1, "idTag": tag, "meterStart": meter, "timestamp": ts(minute)}


class Log:
    """Message-log rows of one charger, CP."""

    def __init__(self) -> None:
        self.rows: list[LogRow] = []

    def add(self, direction: str, frame: str) -> None:
        at = AT + datetime.timedelta(seconds=len(self.rows))
        self.rows.append(LogRow(len(self.rows) + 1, "CP", direction, at, frame))

    def connect(self) -> None:
        self.add("connect", '{"remote":"127.0.0.1"}')


def test_two_calls_with_one_unique_id_pair_in_the_order_read() -> None:
    log = Log()
    log.connect()
    log.add("in", _frame(2, "1", "StartTransaction", _start("A", 0, 0)))
    log.add("in", _frame(2, "1", "StartTransaction", {**_start("B", 50, 1), "connectorId": 2}))
    log.add("out", _frame(3, "1", {"transactionId": 1, "idTagInfo": {"status": "Accepted"}}))
    log.add("out", _frame(3, "1", {"transactionId": 2, "idTagInfo": {"status": "Accepted"}}))
    sessions = rebuild(log.rows).state.sessions
    assert [(s.transaction_id, s.id_tag, s.connector_id, s.meter_start)
            for s in sessions.values()] == [(1, "A", 1, 0), (2, "B", 2, 50)]


def test_a_call_never_answered_before_a_reconnect_is_not_paired_with_a_new_one() -> None:
    """Chargers count uniqueIds from 1 again after a reboot: the new "1" is answered, not
    the old one, which the closed connection never got an answer to."""
    log = Log()
    log.connect()
    log.add("in", _frame(2, "1", "StartTransaction", _start("OLD", 0, 0)))
    log.add("disconnect", '{"reason":"peer closed"}')
    log.connect()
    log.add("in", _frame(2, "1", "StartTransaction", _start("NEW", 10, 1)))
    log.add("out", _frame(3, "1", {"transactionId": 1, "idTagInfo": {"status": "Accepted"}}))
    (session,) = rebuild(log.rows).state.sessions.values()
    assert (session.id_tag, session.meter_start) == ("NEW", 10)


def test_a_replaced_connection_s_call_in_progress_is_still_paired() -> None:
    """The handler of the old connection's CALL ran (and its answer was logged) after the
    new connection opened."""
    log = Log()
    log.connect()
    log.add("in", _frame(2, "7", "StartTransaction", _start("A", 0, 0)))
    log.connect()
    log.add("out", _frame(3, "7", {"transactionId": 1, "idTagInfo": {"status": "Accepted"}}))
    log.add("disconnect", '{"reason":"replaced by a new connection","replaced":true}')
    (session,) = rebuild(log.rows).state.sessions.values()
    assert session.id_tag == "A"


def test_an_error_given_out_of_turn_does_not_take_the_waiting_call() -> None:
    log = Log()
    log.connect()
    log.add("in", _frame(2, "1", "StartTransaction", _start("A", 0, 0)))
    log.add("in", '[2, "2", "StartTransaction"]')  # three elements: answered at once
    log.add("out", _frame(4, "2", "ProtocolError", "wrong arity", {}))
    log.add("out", _frame(3, "1", {"transactionId": 1, "idTagInfo": {"status": "Accepted"}}))
    (session,) = rebuild(log.rows).state.sessions.values()
    assert session.id_tag == "A"


def test_a_call_answered_with_an_error_leaves_the_next_one_paired() -> None:
    log = Log()
    log.connect()
    log.add("in", _frame(2, "1", "StartTransaction", {"connectorId": "x"}))
    log.add("in", _frame(2, "1", "StartTransaction", _start("A", 0, 0)))
    log.add("out", _frame(4, "1", "OccurenceConstraintViolation", "idTag missing", {}))
    log.add("out", _frame(3, "1", {"transactionId": 1, "idTagInfo": {"status": "Accepted"}}))
    (session,) = rebuild(log.rows).state.sessions.values()
    assert session.id_tag == "A"


@pytest.mark.parametrize(
    "row",
    [
        LogRow(2, "CP", "connect", AT, "{not json"),
        LogRow(2, "CP", "abandoned", AT, "[1, 2"),
    ],
)
def test_an_unreadable_row_is_named(row: LogRow) -> None:
    log = Log()
    log.connect()
    with pytest.raises(UnreadableRow, match=f"message_log row 2 \\(CP, {row.direction},"):
        rebuild([*log.rows, row])


async def test_replay_pairs_reused_ids_live_and_exits_2_on_a_damaged_row(
    tmp_path: Path,
) -> None:
    db = tmp_path / "csms.db"
    wire = Wire()
    with trio.fail_after(WATCHDOG):
        async with running_csms(db) as (csms, port), ChargePoint.connect(port, "CP_01", wire) as cp:
            await cp.boot()
            # Two CALLs in flight with one uniqueId (OCPP-J forbids it; chargers do it).
            for payload in (_start("A", 0, 0), {**_start("B", 50, 1), "connectorId": 2}):
                await cp.ws.send_message(_frame(2, "dup", "StartTransaction", payload))
            answers = [json.loads(await cp.ws.get_message()) for _ in range(2)]
            assert [a[2]["transactionId"] for a in answers] == [1, 2]
            live = {tx: (s.id_tag, s.connector_id) for tx, s in csms.state.sessions.items()}
            assert live == {1: ("A", 1), 2: ("B", 2)}
            await shut_down(csms, cp)
        stored = await read_back(db)
        assert stored.diff == []
        identical = await run_python("-m", "csms", "replay", "--db", str(db))
        assert identical.returncode == 0, identical.stdout
        with closing(sqlite3.connect(db)) as conn:
            conn.execute("UPDATE message_log SET frame = '{' WHERE direction = 'connect'")
            conn.commit()
        damaged = await run_python("-m", "csms", "replay", "--db", str(db))
        assert damaged.returncode == 2
        assert b"message_log row 1 (CP_01, connect," in damaged.stderr
        assert b"Traceback" not in damaged.stderr
        with closing(sqlite3.connect(db)) as conn:
            conn.execute("UPDATE message_log SET at = 'noon' WHERE seq = 2")
            conn.commit()
        unreadable = await run_python("-m", "csms", "replay", "--db", str(db))
    assert unreadable.returncode == 2
    assert b"message_log row 2" in unreadable.stderr and b"Traceback" not in unreadable.stderr
