"""A disk that refuses writes (issue 14, point 7): the CSMS acknowledges nothing it did not
store, stays up with every connection, tells loudly, and recovers when the disk does.

The disk error is real: the CSMS runs as its own process (``python -m csms``) and the
test lowers that process's file size limit (``RLIMIT_FSIZE``, set from outside with
``prlimit``), so SQLite's next write of its WAL fails with EFBIG, a "disk I/O error";
raising the limit again is the disk coming back. Real WebSockets and a real SQLite file.
"""

from __future__ import annotations

import json
import resource
import sqlite3
import sys
from contextlib import closing
from pathlib import Path

import pytest
import trio
from trio_websocket import open_websocket_url

from csms.api.client import call_api
from process_helpers import api_url_of, csms_process

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="prlimit on another process is Linux's")

OCPP16 = "ocpp1.6"
BOOT = {"chargePointVendor": "Acme", "chargePointModel": "AC-22"}
START = {"connectorId": 1, "idTag": "TAG1", "meterStart": 1000,
         "timestamp": "2026-12-07T10:00:00.000Z"}


async def test_a_failing_disk_gets_no_acknowledgement_and_the_csms_recovers(
    tmp_path: Path,
) -> None:
    db = tmp_path / "csms.db"
    async with csms_process("--port", "0", "--api-port", "0", "--db", str(db),
                            "--unknown-id-tags", "accept") as child:
        pid = child.process.pid
        api_url = await api_url_of(child)

        async def health() -> tuple[int, str]:
            answer = await trio.to_thread.run_sync(call_api, api_url, "GET", "/api/health")
            return answer.status, answer.body["status"]

        _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
        with trio.fail_after(60):
            async with open_websocket_url(f"ws://127.0.0.1:{child.port}/ocpp/CP_D",
                                          subprotocols=[OCPP16]) as ws, \
                    open_websocket_url(f"ws://127.0.0.1:{child.port}/ocpp/CP_OK",
                                       subprotocols=[OCPP16]) as other:
                await ws.send_message(json.dumps([2, "b", "BootNotification", BOOT]))
                assert json.loads(await ws.get_message())[:2] == [3, "b"]

                # The disk fills up.
                resource.prlimit(pid, resource.RLIMIT_FSIZE, (4096, hard))
                await ws.send_message(json.dumps([2, "s1", "StartTransaction", START]))
                # No answer while it cannot be stored: the charger keeps its message.
                with trio.move_on_after(3) as waited:
                    await ws.get_message()
                assert waited.cancelled_caught, "answered a StartTransaction it did not store"
                assert child.process.returncode is None  # still up
                assert await health() == (503, "storeUnavailable")

                # The disk is back: the answer comes, and the other charger is served.
                resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard, hard))
                answer = json.loads(await ws.get_message())
                assert answer[:2] == [3, "s1"] and answer[2]["idTagInfo"]["status"] == "Accepted"
                await other.send_message(json.dumps([2, "h", "Heartbeat", {}]))
                assert json.loads(await other.get_message())[:2] == [3, "h"]
                assert await health() == (200, "ok")
        transaction_id = answer[2]["transactionId"]
        with closing(sqlite3.connect(db)) as conn:
            stored = conn.execute(
                "SELECT frame FROM message_log WHERE charger_id = 'CP_D' AND direction = 'out'"
            ).fetchall()
        assert any(f'"transactionId":{transaction_id}' in f.replace(" ", "") for (f,) in stored)
    log = child.log
    assert "the database cannot be written" in log and "disk I/O error" in log
    assert "the database is written again" in log
