"""What became of a command, as an integrator must know it (issue 15, point 5): not sent
(sending again is safe), sent and the connection closed before the answer (the charger
may have done it: a Reset reboots without answering), sent and no answer in time. The API
and the CLI say which; the message log records each, so replay agrees."""

from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
from trio_websocket import open_websocket_url

from api_helpers import api_url, running_csms, send
from csms.replay import diff, rebuild
from csms.storage.sqlite import open_sqlite_store
from ocppj import Direction, NotSent, Router
from ocppj.session import RpcSession
from process_helpers import run_python

WATCHDOG = 30


class _DeadStream:
    """A WebSocket that closed as our frame was being sent."""

    async def get_message(self) -> str:
        await trio.sleep_forever()
        raise AssertionError

    async def send_message(self, message: str | bytes) -> None:
        raise trio.ClosedResourceError


async def test_a_call_the_connection_closed_under_is_not_sent_and_logged_so() -> None:
    records: list[tuple[Direction, str]] = []

    async def observe(direction: Direction, text: str, at: datetime.datetime) -> None:
        records.append((direction, text))

    session = RpcSession(_DeadStream(), Router(), name="CP", observer=observe)
    with trio.fail_after(WATCHDOG), pytest.raises(NotSent):
        await session.exchange("Reset", {"type": "Hard"})
    (out, out_text), (abandoned, abandoned_text) = records
    assert (out, abandoned) == (Direction.OUT, Direction.ABANDONED)
    payload = json.loads(out_text)[3]
    assert json.loads(abandoned_text) == {
        "uniqueId": json.loads(out_text)[1], "action": "Reset", "reason": "not_sent",
        "sent": False, "logged": True, "size": len(out_text.encode()),
        "sha256": hashlib.sha256(json.dumps(payload, separators=(",", ":")).encode()).hexdigest(),
    }


async def _answers(ws: Any, count: int) -> list[list[Any]]:
    return [json.loads(await ws.get_message()) for _ in range(count)]


async def test_the_api_and_the_cli_say_what_became_of_a_command(tmp_path: Path) -> None:
    db = tmp_path / "csms.db"
    with trio.fail_after(WATCHDOG):
        async with running_csms(db) as (csms, port):
            url = f"ws://127.0.0.1:{port}/ocpp/CP_01"
            responses: dict[str, Any] = {}

            async def command(name: str, action: str, payload: dict[str, Any],
                              **query: Any) -> None:
                responses[name] = await send(csms, "CP_01", action, payload, **query)

            # A Hard Reset the charger carries out: it reboots instead of answering.
            async with open_websocket_url(url, subprotocols=["ocpp1.6"]) as ws:
                await ws.send_message('[2,"b1","BootNotification",'
                                      '{"chargePointVendor":"V","chargePointModel":"M"}]')
                await _answers(ws, 1)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(command, "reset", "Reset", {"type": "Hard"})
                    (reset,) = await _answers(ws, 1)
                    assert reset[2] == "Reset"
                    await ws.aclose()  # rebooting
            closed = responses["reset"]
            assert closed.status == 502
            assert (closed.body["delivery"], closed.body["retrySafe"]) == (
                "sent_connection_closed", False)
            assert "may have carried it out" in closed.body["message"]

            # Back, but deaf to our CALLs.
            async with open_websocket_url(url, subprotocols=["ocpp1.6"]) as ws:
                await ws.send_message('[2,"h1","Heartbeat",{}]')
                await _answers(ws, 1)
                await command("timeout", "ClearCache", {}, timeout=0.3)
                timed_out = responses["timeout"]
                assert timed_out.status == 504
                assert (timed_out.body["delivery"], timed_out.body["retrySafe"]) == (
                    "sent_no_answer", False)
                # The CLI: 4 when the outcome is unknown, 3 when nothing was sent.
                cli = await run_python("-m", "csms", "send", "CP_01", "ClearCache", "{}",
                                       "--timeout", "0.3", "--api", api_url(csms))
                assert cli.returncode == 4, cli.stderr
            absent = await send(csms, "CP_9", "Reset", {"type": "Soft"})
            assert absent.status == 404
            assert (absent.body["delivery"], absent.body["retrySafe"]) == ("not_sent", True)
            cli = await run_python("-m", "csms", "send", "CP_9", "Reset", '{"type": "Soft"}',
                                   "--api", api_url(csms))
            assert cli.returncode == 3, cli.stderr
    async with open_sqlite_store(str(db)) as store:
        rows = await store.read_log()
        stored = await store.load_state()
        samples = await store.read_samples()
    reasons = [orjson.loads(r.frame)["reason"] for r in rows if r.direction == "abandoned"]
    assert reasons == ["closed", "timeout", "timeout"]
    assert diff(stored, samples, rebuild(rows)) == []
