"""Durability across a crash, and the database tools, as real subprocesses.

``python -m csms`` is killed with SIGKILL in the middle of a session, right after its
charge point received an answer; whatever had been answered must be on disk, and the
session must carry on after a restart on the same file. ``python -m csms replay`` and
``python -m csms status`` are run on the files left behind (and on a tampered one).

Real time (other processes are involved): every wait is under a ``fail_after`` watchdog,
nothing sleeps, and a CSMS process still running when a test ends is killed.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import pytest
import trio
from trio_websocket import ConnectionClosed

from csms.app import Csms
from csms.config import CsmsConfig
from process_helpers import csms_process, run_python
from raw_cp_helpers import RawChargePoint, Wire

#: Real seconds for a conversation with a running CSMS.
TALK_TIMEOUT = 10.0


async def csms_tool(*args: str) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m csms ARGS`` to completion."""
    return await run_python("-m", "csms", *args)


# -- a raw charge point -------------------------------------------------------------------


class ChargePoint(RawChargePoint):
    """A raw charge point that meters on its connector 1."""

    async def meter(self, transaction_id: int, wh: int, timestamp: str) -> None:
        payload = {
            "connectorId": 1,
            "transactionId": transaction_id,
            "meterValue": [{"timestamp": timestamp, "sampledValue": [{"value": str(wh)}]}],
        }
        assert await self.call("MeterValues", payload) == {}


BOOT = {"chargePointVendor": "Acme", "chargePointModel": "AC-22"}


# -- the database, read directly ----------------------------------------------------------


def log_rows(db: Path, direction: str, cp_id: str) -> list[str]:
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT frame FROM message_log WHERE direction = ? AND charger_id = ? ORDER BY seq",
            (direction, cp_id),
        ).fetchall()
    return [frame for (frame,) in rows]


# -- crash and restart --------------------------------------------------------------------


async def test_a_session_survives_a_sigkill_and_closes_after_the_restart(
    tmp_path: Path,
) -> None:
    db = tmp_path / "csms.db"
    wire = Wire()
    async with csms_process("--port", "0", "--api-port", "0", "--db", str(db),
                            "--unknown-id-tags", "accept") as first:
        with trio.fail_after(TALK_TIMEOUT):
            async with ChargePoint.connect(first.port, "CP_K", wire) as cp:
                assert (await cp.call("BootNotification", BOOT))["status"] == "Accepted"
                started = await cp.call(
                    "StartTransaction",
                    {
                        "connectorId": 1,
                        "idTag": "TAG",
                        "meterStart": 10_000,
                        "timestamp": "2024-05-01T10:00:00Z",
                    },
                )
                tx = started["transactionId"]
                await cp.meter(tx, 11_000, "2024-05-01T10:05:00Z")
                await cp.meter(tx, 12_000, "2024-05-01T10:10:00Z")
                # Mid-session, right after an answer arrived: no goodbye of any kind.
                first.process.kill()
                assert await first.process.wait() == -signal.SIGKILL
                with pytest.raises(ConnectionClosed):
                    await cp.ws.get_message()
    assert "Traceback" not in first.log

    # Nothing the charge point was answered is lost: every answer it received (and every
    # CALL it sent) is in the log, as on the wire.
    assert log_rows(db, "out", "CP_K") == wire.received
    assert log_rows(db, "in", "CP_K") == wire.sent

    async with csms_process("--port", "0", "--api-port", "0", "--db", str(db),
                            "--unknown-id-tags", "accept") as second:
        with trio.fail_after(TALK_TIMEOUT):
            async with ChargePoint.connect(second.port, "CP_K", wire) as cp:
                assert (await cp.call("BootNotification", BOOT))["status"] == "Accepted"
                # The charger delivers what it metered while the CSMS was down, then stops.
                await cp.meter(tx, 13_000, "2024-05-01T10:15:00Z")
                stopped = await cp.call(
                    "StopTransaction",
                    {
                        "transactionId": tx,
                        "meterStop": 14_000,
                        "timestamp": "2024-05-01T10:20:00Z",
                        "reason": "EVDisconnected",
                    },
                )
                assert stopped == {}
                # A graceful stop while the charger is still connected.
                assert await second.stop(signal.SIGTERM) == 0
                await cp.wait_closed(1001)
    assert "Traceback" not in second.log, second.log

    status = await csms_tool("status", "--db", str(db), "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["open_sessions"] == []
    [session] = report["recent_sessions"]
    assert session["transaction_id"] == tx
    assert session["open"] is False
    assert session["meter_start"] == 10_000
    assert session["meter_stop"] == 14_000
    assert session["energy_wh"] == 14_000 - 10_000
    assert session["stop_reason"] == "EVDisconnected"
    assert session["samples"] == 3
    [charger] = report["chargers"]
    assert charger["id"] == "CP_K"
    assert charger["connected"] is False

    # The killed connection was closed by the restart, the second one by the SIGTERM.
    reasons = [json.loads(frame)["reason"] for frame in log_rows(db, "disconnect", "CP_K")]
    assert reasons == ["CSMS restarted", "server shutting down"]
    assert log_rows(db, "out", "CP_K") == wire.received
    assert log_rows(db, "in", "CP_K") == wire.sent

    replay = await csms_tool("replay", "--db", str(db))
    assert replay.returncode == 0, replay.stdout + replay.stderr
    lines = replay.stdout.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("replay identical: ")
    assert "1 chargers" in lines[0]
    assert "1 sessions" in lines[0]


# -- replay and status on files made in-process ------------------------------------------


async def make_database(db: Path) -> dict[str, int]:
    """A file with one closed and one open session of CP_01, made by an in-process CSMS."""
    csms = Csms(CsmsConfig(port=0, db_path=str(db)))
    wire = Wire()
    tx: dict[str, int] = {}
    with trio.fail_after(TALK_TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(csms.serve)
            async with ChargePoint.connect(port, "CP_01", wire) as cp:
                await cp.call("BootNotification", BOOT)
                for connector in (1, 2):
                    await cp.call(
                        "StatusNotification",
                        {"connectorId": connector, "status": "Charging", "errorCode": "NoError"},
                    )
                for name, connector in (("closed", 1), ("open", 2)):
                    started = await cp.call(
                        "StartTransaction",
                        {
                            "connectorId": connector,
                            "idTag": f"TAG{connector}",
                            "meterStart": 1000,
                            "timestamp": "2024-05-01T10:00:00Z",
                        },
                    )
                    tx[name] = started["transactionId"]
                await cp.call(
                    "StopTransaction",
                    {
                        "transactionId": tx["closed"],
                        "meterStop": 2500,
                        "timestamp": "2024-05-01T11:00:00Z",
                    },
                )
                await csms.shutdown()
    return tx


async def test_replay_exits_1_naming_the_session_and_field_of_a_tampered_projection(
    tmp_path: Path,
) -> None:
    db = tmp_path / "csms.db"
    tx = await make_database(db)
    identical = await csms_tool("replay", "--db", str(db))
    assert identical.returncode == 0, identical.stdout + identical.stderr
    assert identical.stdout.decode().startswith("replay identical: ")

    with closing(sqlite3.connect(db)) as conn, conn:
        changed = conn.execute(
            "UPDATE sessions SET data = json_set(data, '$.energy_wh', 1) WHERE transaction_id = ?",
            (tx["closed"],),
        ).rowcount
    assert changed == 1

    tampered = await csms_tool("replay", "--db", str(db))
    out = tampered.stdout.decode()
    assert tampered.returncode == 1, out + tampered.stderr.decode()
    assert out.startswith("replay differs from the stored state (1 differences;")
    assert f"sessions[{tx['closed']}].energy_wh: stored 1.0, replayed 1500.0" in out
    assert "Traceback" not in tampered.stderr.decode()


@pytest.mark.parametrize("command", [["replay"], ["status"], ["status", "--json"]])
async def test_the_tools_exit_2_on_a_missing_file(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "nowhere.db"
    result = await csms_tool(*command, "--db", str(missing))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == b""
    assert f"no database at {missing}" in result.stderr.decode()
    # Nothing was created by looking.
    assert not missing.exists()


async def test_status_prints_the_tables_and_json_for_scripts(tmp_path: Path) -> None:
    db = tmp_path / "csms.db"
    tx = await make_database(db)
    text_result = await csms_tool("status", "--db", str(db))
    json_result = await csms_tool("status", "--db", str(db), "--json")

    assert text_result.returncode == 0, text_result.stderr
    text = text_result.stdout.decode()
    for heading in ("Chargers (1)", "EVSEs (2)", "Open sessions (1)", "Recent sessions (last"):
        assert heading in text, text
    chargers, evses, open_sessions, recent = re.split(
        r"^(?:EVSEs|Open sessions|Recent sessions) .*$", text, flags=re.MULTILINE
    )
    assert "CP_01" in chargers
    assert "Acme" in chargers
    assert "EVSE_1" in evses
    assert "EVSE_2" in evses
    assert "Charging" in evses
    assert re.search(rf"^{tx['open']}\s+CP_01\s+EVSE_2\s+TAG2\s+Accepted", open_sessions, re.M)
    assert re.search(rf"^{tx['closed']}\s+CP_01\s+EVSE_1\s+TAG1\s+.*\s1\.500\s", recent, re.M)

    assert json_result.returncode == 0, json_result.stderr
    report = json.loads(json_result.stdout)
    assert set(report) == {
        "chargers",
        "evses",
        "open_sessions",
        "recent_sessions",
        "closed_sessions_left_out",
        "anomalies",
        "next_transaction_id",
    }
    assert report["closed_sessions_left_out"] == 0
    assert [c["id"] for c in report["chargers"]] == ["CP_01"]
    assert [(e["evse"], e["status"], e["open_transaction_id"]) for e in report["evses"]] == [
        ("EVSE_1", "Charging", None),
        ("EVSE_2", "Charging", tx["open"]),
    ]
    assert [s["transaction_id"] for s in report["open_sessions"]] == [tx["open"]]
    assert [s["transaction_id"] for s in report["recent_sessions"]] == [tx["closed"]]
    assert report["recent_sessions"][0]["energy_wh"] == 1500.0
    assert report["anomalies"] == []
    assert report["next_transaction_id"] == max(tx.values()) + 1
