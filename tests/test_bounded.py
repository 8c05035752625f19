"""Bounded resources (issue 14): what one misbehaving socket can cost the CSMS.

The regression: one socket sending 1 MiB junk frames grew the database by 315 MB in
2.5 s. Now the first few bad frames are recorded cut short, the rest only counted, and
every malformed CALL is still answered.

Real loopback WebSockets, a real SQLite file; real time (see ``api_helpers``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from api_helpers import running_csms
from csms.ocpp.server import PendingHandshakes
from ocppj.session import BAD_FRAME_CHARS, RECORDED_BAD_FRAMES

OCPP16 = "ocpp1.6"
FLOOD = 40
JUNK = "x" * (1024 * 1024 - 64)  # just under the 1 MiB frame limit


async def test_a_junk_flood_is_bounded_and_disturbs_no_one(tmp_path: Path) -> None:
    db = tmp_path / "csms.db"
    url = "ws://127.0.0.1:{}/ocpp/{}"
    with trio.fail_after(60):
        async with (
            running_csms(db) as (csms, port),
            open_websocket_url(url.format(port, "GOOD"), subprotocols=[OCPP16]) as good,
            open_websocket_url(url.format(port, "JUNK"), subprotocols=[OCPP16]) as junk,
        ):
            for n in range(FLOOD):
                await junk.send_message(JUNK)
                # A malformed CALL among them is still answered, past the cap too.
                await junk.send_message(f'[2, "m{n}", "Heartbeat", [1]]')
                reply = json.loads(await junk.get_message())
                assert reply[:3] == [4, f"m{n}", "FormationViolation"]
            await good.send_message('[2, "h", "Heartbeat", {}]')
            assert json.loads(await good.get_message())[:2] == [3, "h"]
            conn = csms.connections.get("JUNK")
            assert conn is not None and conn.session is not None
            stats = conn.session.statistics()
            assert stats.bad_frames == 2 * FLOOD
            assert stats.bad_frames_unrecorded == 2 * FLOOD - RECORDED_BAD_FRAMES
            await csms.store.flush()
            rows = [r for r in await csms.store.read_messages("JUNK", 1000)
                    if r.direction == "in"]
            assert len(rows) == RECORDED_BAD_FRAMES
            assert all(len(r.frame) <= BAD_FRAME_CHARS + 40 for r in rows)
            assert any(r.frame.endswith(f"[{len(JUNK)} characters, cut]") for r in rows)
            # The CALLERRORs sent are all recorded: what the charger was told.
            out = [r for r in await csms.store.read_messages("JUNK", 1000)
                   if r.direction == "out"]
            assert len(out) == FLOOD
    # 40 MiB arrived; the database holds a few KiB of it.
    stored = sum(f.stat().st_size for f in tmp_path.glob("csms.db*"))  # noqa: ASYNC240
    assert stored < 2 * 1024 * 1024, stored


async def test_connections_beyond_the_maximum_are_refused_but_a_known_id_gets_back_in(
    tmp_path: Path,
) -> None:
    url = "ws://127.0.0.1:{}/ocpp/{}"
    with trio.fail_after(30):
        async with (
            running_csms(tmp_path / "csms.db", max_connections=2) as (csms, port),
            open_websocket_url(url.format(port, "CP_1"), subprotocols=[OCPP16]),
            open_websocket_url(url.format(port, "CP_2"), subprotocols=[OCPP16]),
        ):
            with pytest.raises(ConnectionRejected) as refused:
                async with open_websocket_url(url.format(port, "CP_3"), subprotocols=[OCPP16]):
                    pass
            assert refused.value.status_code == 503
            # CP_1 reconnecting (its old link dead, as after a power cut) replaces itself.
            async with open_websocket_url(url.format(port, "CP_1"), subprotocols=[OCPP16]) as ws:
                await ws.send_message('[2, "h", "Heartbeat", {}]')
                assert json.loads(await ws.get_message())[:2] == [3, "h"]
            assert csms.connections.count <= 2


def test_pending_handshakes_are_counted_up_to_the_limit() -> None:
    pending = PendingHandshakes(2)
    first, second = pending.enter(), pending.enter()
    assert first is not None and second is not None
    assert pending.enter() is None and pending.dropped == 1
    first.release()
    first.release()  # idempotent: a handshake done, then its connection ended
    assert pending.count == 1
    third = pending.enter()
    assert third is not None and pending.count == 2
