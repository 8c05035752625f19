"""One CSMS per database file, and its records read from the file alone (issue 15, points 3
and 6). Real subprocesses: ``python -m csms`` serving, a second one refused, and the
readers (``status``, ``replay``, ``sessions``) beside it."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import open_websocket_url

from csms.app import Csms
from csms.config import CsmsConfig
from csms.oserrors import sole_leaf
from csms.storage.writer_lock import DatabaseInUse, exclusive_writer, lock_path
from process_helpers import csms_process, run_python
from test_csms_e2e import ts

WATCHDOG = 60


async def _charge(port: int, cp_id: str, sessions: int, *, leave_open: bool = False) -> None:
    """``cp_id`` runs ``sessions`` sessions on its connector 1 (the last left open if
    ``leave_open``)."""
    async with open_websocket_url(f"ws://127.0.0.1:{port}/ocpp/{cp_id}",
                                  subprotocols=["ocpp1.6"]) as ws:
        n = 0

        async def call(action: str, payload: dict[str, Any]) -> dict[str, Any]:
            nonlocal n
            n += 1
            await ws.send_message(json.dumps([2, str(n), action, payload]))
            answer = json.loads(await ws.get_message())
            assert answer[0] == 3, answer
            result: dict[str, Any] = answer[2]
            return result

        for i in range(sessions):
            started = await call("StartTransaction", {
                "connectorId": 1, "idTag": f"T{i}", "meterStart": 1000 * i,
                "timestamp": ts(10 * i)})
            if leave_open and i == sessions - 1:
                break
            await call("StopTransaction", {"transactionId": started["transactionId"],
                                           "meterStop": 1000 * i + 500,
                                           "timestamp": ts(10 * i + 5)})


async def test_a_second_csms_on_the_same_file_exits_2_naming_the_holder(tmp_path: Path) -> None:
    db = str(tmp_path / "csms.db")
    args = ("--port", "0", "--no-api", "--unknown-id-tags", "accept", "--db", db)
    with trio.fail_after(WATCHDOG):
        async with csms_process(*args) as first:
            await _charge(first.port, "CP_01", 12)
            await _charge(first.port, "CP_02", 2, leave_open=True)
            second = await run_python("-m", "csms", *args)
            assert second.returncode == 2, second.stderr
            message = second.stderr.decode()
            assert "in use by another CSMS" in message
            assert f"process {first.process.pid} on " in message, message
            # Readers work beside the writer.
            status = await run_python("-m", "csms", "status", "--db", db, "--json")
            assert status.returncode == 0, status.stderr
            shown = json.loads(status.stdout)
            assert len(shown["recent_sessions"]) == 10
            assert shown["closed_sessions_left_out"] == 3
            text = await run_python("-m", "csms", "status", "--db", db)
            assert b"3 older closed sessions left out" in text.stdout
            replay = await run_python("-m", "csms", "replay", "--db", db)
            assert replay.returncode == 0, replay.stdout
            listed = await run_python("-m", "csms", "sessions", "--db", db, "--json")
            assert listed.returncode == 0, listed.stderr
            assert [s["transaction_id"] for s in json.loads(listed.stdout)] == list(range(1, 15))
            assert await first.stop(signal.SIGTERM) == 0
        # Stopped: the file is free again, and so after a kill -9 (the kernel drops the lock).
        async with csms_process(*args) as again:
            again.process.kill()
            await again.wait()
        assert await trio.Path(lock_path(db)).exists()  # left behind, and harmless
        async with csms_process(*args) as third:
            assert await third.stop(signal.SIGTERM) == 0


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ((), list(range(1, 9))),
        (("--active",), [4, 8]),
        (("--charge-point", "CP_02"), [5, 6, 7, 8]),
        (("--charge-point", "CP_02", "--active"), [8]),
        (("--since", ts(20)), [3, 4, 7, 8]),
        (("--since", "2030-01-01"), []),
    ],
)
async def test_sessions_lists_every_session_from_the_file_alone(
    tmp_path: Path, options: tuple[str, ...], expected: list[int]
) -> None:
    db = str(tmp_path / "csms.db")
    csms = Csms(CsmsConfig(port=0, db_path=db, synchronous="OFF"))
    with trio.fail_after(WATCHDOG):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(csms.serve)
            await _charge(port, "CP_01", 4, leave_open=True)
            await _charge(port, "CP_02", 4, leave_open=True)
            await csms.shutdown()
        listed = await run_python("-m", "csms", "sessions", "--db", db, "--json", *options)
        assert listed.returncode == 0, listed.stderr
        assert [s["transaction_id"] for s in json.loads(listed.stdout)] == expected
        text = await run_python("-m", "csms", "sessions", "--db", db, *options)
    assert text.returncode == 0
    assert text.stdout.decode().rstrip().endswith(f"{len(expected)} of 8 sessions")


async def test_sessions_refuses_a_bad_since_and_a_missing_file(tmp_path: Path) -> None:
    missing = await run_python("-m", "csms", "sessions", "--db", str(tmp_path / "none.db"))
    assert missing.returncode == 2 and b"no database" in missing.stderr
    (tmp_path / "csms.db").touch()
    bad = await run_python("-m", "csms", "sessions", "--db", str(tmp_path / "csms.db"),
                           "--since", "last tuesday")
    assert bad.returncode == 2 and b"is not a date-time" in bad.stderr


async def test_the_library_csms_refuses_a_file_another_one_serves(tmp_path: Path) -> None:
    db = str(tmp_path / "csms.db")
    with exclusive_writer(db), pytest.raises(BaseExceptionGroup) as raised:
        async with trio.open_nursery() as nursery:
            await nursery.start(Csms(CsmsConfig(port=0, db_path=db)).serve)
    refused = sole_leaf(raised.value)
    assert isinstance(refused, DatabaseInUse)
    assert f"process {os.getpid()} on " in str(refused)
