"""A shutdown operators can rely on (issue 19, point 3): on SIGTERM the CSMS stops
listening first (no handshake completes after the signal), refuses new commands (503),
closes every connection at once with 1001 within a bounded wait, commits what it holds
and exits 0; nothing it acknowledged is lost.

Real processes and sockets, real time; every wait is bounded. The moments compared come
from one clock, the CSMS's own: its log line and its message log's ``connect`` rows.
"""

from __future__ import annotations

import datetime
import json
import signal
from pathlib import Path
from typing import Any

import orjson
import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from api_helpers import send, wait_until
from csms.app import Csms
from csms.config import CsmsConfig
from csms.storage.sqlite import open_sqlite_store
from process_helpers import csms_process
from test_slow_chargers import deaf_charger

WATCHDOG = 60
CHARGERS = 20
RECEIVED = "SIGTERM received: no longer accepting connections"


class Fleet:
    """Chargers that boot, send StatusNotifications and reconnect 50 ms after being
    dropped, until told to stop."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.booted: set[str] = set()
        self.all_booted = trio.Event()
        self.answered: dict[str, list[str]] = {}
        self.close_codes: list[int] = []
        self.attempts_after: int = 0
        self.signalled = False
        self.stop = False

    async def charger(self, cp_id: str) -> None:
        url = f"ws://127.0.0.1:{self.port}/ocpp/{cp_id}"
        n = 0
        while not self.stop:
            self.attempts_after += self.signalled
            try:
                async with open_websocket_url(url, subprotocols=["ocpp1.6"]) as ws:
                    while True:
                        n += 1
                        if cp_id not in self.booted:
                            frame = [2, f"{cp_id}-{n}", "BootNotification",
                                     {"chargePointVendor": "V", "chargePointModel": "M"}]
                        else:
                            frame = [2, f"{cp_id}-{n}", "StatusNotification",
                                     {"connectorId": 1, "errorCode": "NoError",
                                      "status": "Available" if n % 2 else "Preparing"}]
                        await ws.send_message(json.dumps(frame))
                        answer = json.loads(await ws.get_message())
                        assert answer[:2] == [3, frame[1]]
                        self.answered.setdefault(cp_id, []).append(frame[1])
                        if cp_id not in self.booted:
                            self.booted.add(cp_id)
                            if len(self.booted) == CHARGERS:
                                self.all_booted.set()
                        await trio.sleep(0.01)
            except ConnectionClosed as closed:
                if closed.reason is not None:
                    self.close_codes.append(closed.reason.code)
            except (OSError, HandshakeError):
                pass  # refused: the CSMS no longer listens
            await trio.sleep(0.05)


def _logged_at(log: str, text: str) -> datetime.datetime:
    """The moment (``%(asctime)s``, local time, to the millisecond) of the line with
    ``text``, in UTC."""
    line = next(line for line in log.splitlines() if text in line)
    stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    return stamp.astimezone(datetime.UTC)


async def test_sigterm_stops_listening_first_and_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "csms.db"
    async with csms_process("--port", "0", "--db", str(db), "--no-api",
                            "--log-level", "INFO") as child:
        fleet = Fleet(child.port)
        with trio.fail_after(WATCHDOG):
            async with trio.open_nursery() as nursery:
                for i in range(CHARGERS):
                    nursery.start_soon(fleet.charger, f"CP_{i + 1:02d}")
                await fleet.all_booted.wait()
                fleet.signalled = True
                start = trio.current_time()
                child.process.send_signal(signal.SIGTERM)
                code = await child.wait()
                exit_s = trio.current_time() - start
                # Reconnecting continues a moment longer: the port is closed.
                await trio.sleep(0.2)
                fleet.stop = True
    assert code == 0, child.log
    assert "Traceback" not in child.log
    print(f"\n{CHARGERS} chargers reconnecting every 50 ms: exited {exit_s:.2f} s after "
          f"SIGTERM, {fleet.attempts_after} connection attempts after it")
    assert fleet.attempts_after > 0
    assert fleet.close_codes.count(1001) >= CHARGERS
    stopped_listening = _logged_at(child.log, RECEIVED)
    async with open_sqlite_store(str(db)) as store:
        rows = await store.read_log()
    connects = [r.at for r in rows if r.direction == "connect"]
    # No handshake completed after the CSMS stopped listening (its log line is cut to the
    # millisecond).
    assert max(connects) < stopped_listening + datetime.timedelta(milliseconds=1)
    # Every CALL it answered is in its message log.
    logged = {json.loads(r.frame)[1] for r in rows if r.direction == "in"}
    answered = {uid for uids in fleet.answered.values() for uid in uids}
    assert answered <= logged
    disconnects = [orjson.loads(r.frame) for r in rows if r.direction == "disconnect"]
    assert sum(d.get("reason") == "server shutting down" for d in disconnects) >= CHARGERS


async def test_while_shutting_down_commands_and_chargers_are_refused(tmp_path: Path) -> None:
    config = CsmsConfig(port=0, api_port=0, db_path=str(tmp_path / "csms.db"),
                        synchronous="OFF", shutdown_grace=3.0)
    csms = Csms(config)
    with trio.fail_after(WATCHDOG):
        async with trio.open_nursery() as nursery:
            port: int = await nursery.start(csms.serve)
            # A charger that never reads holds the shutdown for its whole grace.
            stream = await deaf_charger(port, "CP_DEAF")
            await wait_until(lambda: csms.connections.count == 1)
            nursery.start_soon(csms.shutdown)
            await wait_until(lambda: csms.stopping)
            response = await send(csms, "CP_DEAF", "ClearCache", {})
            assert (response.status, response.body["error"]) == (503, "ShuttingDown")
            assert (response.body["delivery"], response.body["retrySafe"]) == ("not_sent", True)
            refused: Any = None
            try:
                async with open_websocket_url(f"ws://127.0.0.1:{port}/ocpp/CP_NEW",
                                              subprotocols=["ocpp1.6"]):
                    pass
            except (OSError, HandshakeError) as exc:
                refused = exc
            assert refused is not None
            start = trio.current_time()
        print(f"\nshutdown with a charger that never reads took {trio.current_time() - start:.2f} "
              "s more (grace 3 s)")
        await stream.aclose()
