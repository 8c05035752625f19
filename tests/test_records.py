"""Session records an operator can trust (issue 15, point 4), seen from a raw charger over
a real WebSocket, with the file read back and replayed: an omitted stop reason is Local, a
closed session's figures are final, and a second session for one idTag is ConcurrentTx
when the CSMS is told to refuse it."""

from __future__ import annotations

import json
import signal
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import trio
from trio_websocket import open_websocket_url

from csms.config import CsmsConfig
from raw_cp_helpers import Wire
from test_cli import csms_in
from test_csms_e2e import WATCHDOG, ChargePoint, energy, read_back, running_csms, shut_down, ts


async def test_an_omitted_reason_is_local_and_late_meter_values_change_nothing_closed(
    tmp_path: Path,
) -> None:
    db = tmp_path / "csms.db"
    wire = Wire()
    with trio.fail_after(WATCHDOG):
        async with running_csms(db) as (csms, port), ChargePoint.connect(port, "CP_01", wire) as cp:
            await cp.boot()
            tx = (await cp.start(1, "TAG", 1000, 0))["transactionId"]
            await cp.meter(1, [energy("1500"), {"value": "7000", "unit": "W",
                                                "measurand": "Power.Active.Import"}], 5, tx)
            assert await cp.stop(tx, 2000, 10) == {}  # no reason: OCPP 1.6 means Local
            final = csms.state.sessions[tx]
            assert (final.stop_reason, final.energy_wh, final.power_w, final.samples) == (
                "Local", 1000.0, 7000.0, 2)
            # The charger's queue delivers a reading after the stop.
            await cp.meter(1, [energy("2600"), {"value": "0", "unit": "W",
                                                "measurand": "Power.Active.Import"}], 11, tx)
            assert csms.state.sessions[tx] == final
            assert csms.state.anomalies[-1].kind == "late_meter_values"
            await shut_down(csms, cp)
        stored = await read_back(db)
    assert stored.diff == []
    assert stored.state.sessions[tx] == final
    assert stored_values(db, tx) == ["1500", "7000", "2600", "0"]


def stored_values(db: Path, transaction_id: int) -> list[str]:
    """The sampled values ``db`` holds for ``transaction_id``, in order."""
    with closing(sqlite3.connect(db)) as conn:
        return [value for (value,) in conn.execute(
            "SELECT json_extract(sample.value, '$[1]') FROM meter_readings, "
            "json_each(meter_readings.samples) AS sample WHERE transaction_id = ? "
            "ORDER BY meter_readings.id, sample.key", (transaction_id,))]


async def _start_twice(tmp_path: Path, **config: Any) -> tuple[list[str], list[str]]:
    """CP_01 starts a session for TAG; CP_02 then authorizes and starts one for 'tag'
    (the same IdToken), sends that StartTransaction again, and starts once more after
    CP_01's session stopped. The answers' statuses, live and as replayed."""
    db = tmp_path / "csms.db"
    wire = Wire()
    statuses: list[str] = []
    with trio.fail_after(WATCHDOG):
        async with running_csms(db, **config) as (csms, port), \
                ChargePoint.connect(port, "CP_01", wire) as one, \
                ChargePoint.connect(port, "CP_02", wire) as two:
            first = await one.start(1, "TAG", 0, 0)
            statuses.append(first["idTagInfo"]["status"])
            statuses.append((await two.call("Authorize", {"idTag": "tag"}))["idTagInfo"]["status"])
            second = await two.start(2, "tag", 0, 1)
            statuses.append(second["idTagInfo"]["status"])
            again = await two.start(2, "tag", 0, 1)  # a retransmission: the same answer
            assert again == second
            statuses.append(again["idTagInfo"]["status"])
            await one.stop(first["transactionId"], 100, 2)
            await two.stop(second["transactionId"], 100, 2, reason="DeAuthorized")
            third = await two.start(2, "tag", 100, 3)
            statuses.append(third["idTagInfo"]["status"])
            await shut_down(csms, one, two)
        stored = await read_back(db)
    assert stored.diff == []
    recorded = [s.auth_status for s in sorted(stored.state.sessions.values(),
                                              key=lambda s: s.transaction_id)]
    return statuses, recorded


async def test_a_second_session_for_an_id_tag_is_concurrent_tx_when_refused(
    tmp_path: Path,
) -> None:
    statuses, recorded = await _start_twice(tmp_path, concurrent_tx="refuse")
    # Authorize is never ConcurrentTx: OCPP 1.6 defines it for StartTransaction only.
    assert statuses == ["Accepted", "Accepted", "ConcurrentTx", "ConcurrentTx", "Accepted"]
    assert recorded == ["Accepted", "ConcurrentTx", "Accepted"]  # each session recorded


async def test_concurrent_sessions_are_allowed_by_the_library_default(tmp_path: Path) -> None:
    assert CsmsConfig().concurrent_tx == "allow"
    statuses, recorded = await _start_twice(tmp_path)
    assert statuses == ["Accepted"] * 5
    assert recorded == ["Accepted"] * 3


async def test_python_m_csms_refuses_concurrent_sessions_unless_told(tmp_path: Path) -> None:
    for extra, expected in (((), "ConcurrentTx"), (("--concurrent-tx", "allow"), "Accepted")):
        workdir = tmp_path / (extra[-1] if extra else "default")
        workdir.mkdir()
        async with csms_in(workdir, "--unknown-id-tags", "accept", *extra) as child:
            with trio.fail_after(20):
                answers = []
                for n, cp_id in enumerate(("CP_A", "CP_B")):
                    async with open_websocket_url(f"ws://127.0.0.1:{child.port}/ocpp/{cp_id}",
                                                  subprotocols=["ocpp1.6"]) as ws:
                        await ws.send_message(json.dumps([2, str(n), "StartTransaction", {
                            "connectorId": 1, "idTag": "T1", "meterStart": 0,
                            "timestamp": ts(n)}]))
                        answers.append(json.loads(await ws.get_message())[2]["idTagInfo"])
            assert answers == [{"status": "Accepted"}, {"status": expected}], extra
            await child.stop(signal.SIGTERM)
