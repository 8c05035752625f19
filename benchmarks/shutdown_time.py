"""How long ``python -m csms`` takes to exit on SIGTERM, against how many chargers are
connected, quiet or reconnecting (issue 19, point 3).

For every N in ``--chargers`` and every mode in ``--modes``, a fresh CSMS process is
started on a scratch SQLite file, then a load-generator process opens N WebSocket
connections and sets each up as a charging station would (BootNotification,
StatusNotification, StartTransaction, StatusNotification: the lean RFC 6455 client of
``rpc_throughput.py``). Then SIGTERM goes to the CSMS and the script measures the time
until the process has exited, and its exit code. In mode ``reconnecting`` every charger
connects again ``--reconnect-delay`` seconds (50 ms) after it was dropped, as real
chargers do, without jitter: the harder case; in ``quiet`` nobody comes back.

It prints, per run: exit seconds, exit code, how many WebSocket handshakes completed
after the signal (none should: the CSMS stops listening first), and how many chargers
saw the CSMS close their connection with 1001.

Targets (issue 19): within 3 s with 5,000 connected and quiet, within 5 s with 5,000
reconnecting every 50 ms. The open-files limit is raised to its hard limit in both
processes (5,000 chargers need 5,000 sockets on each side).

Run: ``.venv/bin/python benchmarks/shutdown_time.py --chargers 1000 3000 5000``.
Exit status 0 once it has run (targets are reported, not enforced).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import rpc_throughput as rt  # a sibling script, not a package

TARGETS = {"quiet": 3.0, "reconnecting": 5.0}


class StormClient(rt.WsClient):
    """A charger of the load generator that notes its handshakes and close codes, and
    connects again after a delay when the CSMS drops it (``delay`` None: never)."""

    def __init__(self, storm: Storm, index: int) -> None:
        super().__init__(storm.gen, index, storm.port)
        self.storm = storm
        self.ready.add_done_callback(self._handshaken)

    def _handshaken(self, future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is None:
            self.storm.handshakes.append(time.monotonic())

    def data_received(self, data: bytes) -> None:
        if self.handshaken and len(data) >= 4 and data[0] & 0x0F == 0x8:
            self.storm.close_codes.append(int.from_bytes(data[2:4], "big"))
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        for future in (self.ready, self.booted):
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: a dropped charger is expected here
        self.storm.lost(self.index)


class Storm:
    def __init__(self, port: int, delay: float | None) -> None:
        self.port = port
        self.delay = delay
        self.gen = rt.LoadGen("heartbeat")
        self.handshakes: list[float] = []
        self.close_codes: list[int] = []
        self.refused = 0
        self.stopping = False

    def lost(self, index: int) -> None:
        if self.delay is None or self.stopping:
            return
        asyncio.get_running_loop().call_later(self.delay, self.reconnect, index)

    def reconnect(self, index: int) -> None:
        if self.stopping:
            return
        asyncio.get_running_loop().create_task(self._connect(index))

    async def _connect(self, index: int) -> None:
        loop = asyncio.get_running_loop()
        client = StormClient(self, index)
        try:
            await loop.create_connection(lambda: client, rt.HOST, self.port)
            await client.ready
            client.boot()
        except (OSError, ConnectionError):
            self.refused += 1
            self.lost(index)


async def loadgen_main(cfg: dict[str, Any]) -> None:
    storm = Storm(cfg["port"], cfg["delay"])
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(200)

    async def one(i: int) -> bool:
        async with sem:
            client = StormClient(storm, i)
            await loop.create_connection(lambda: client, rt.HOST, storm.port)
            await client.ready
            client.boot()
            await client.booted
            return True

    results = await asyncio.gather(*(one(i) for i in range(cfg["chargers"])),
                                   return_exceptions=True)
    connected = sum(1 for r in results if r is True)
    rt._emit({"event": "ready", "connected": connected})
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    signalled = float((await reader.readline()).decode())
    await reader.readline()  # "stop": the CSMS has exited
    storm.stopping = True
    rt._emit({
        "event": "done",
        "handshakes_after_signal": sum(1 for t in storm.handshakes if t > signalled),
        "closed_1001": storm.close_codes.count(1001),
        "reconnects_refused": storm.refused,
    })


def run_loadgen(cfg_json: str) -> int:
    rt.raise_nofile_limit()
    asyncio.run(loadgen_main(json.loads(cfg_json)))
    return 0


def run_one(chargers: int, mode: str, delay: float, csms_args: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="shutdown-bench-") as scratch:
        port = rt.free_port()
        command = rt.server_command("csms", port, [
            "--db", str(Path(scratch) / "csms.db"), "--no-api", "--ping-interval", "0",
            "--max-connections", "20000", *csms_args,
        ])
        # No threads in this process yet: preexec_fn is safe.
        csms = subprocess.Popen(command, cwd=scratch,
                                preexec_fn=rt.raise_nofile_limit)  # noqa: PLW1509
        try:
            if not rt.wait_listening(csms, port):
                return {"chargers": chargers, "mode": mode, "error": "CSMS did not listen"}
            cfg = {"port": port, "chargers": chargers,
                   "delay": delay if mode == "reconnecting" else None}
            loadgen = subprocess.Popen(
                [sys.executable, __file__, "--loadgen", json.dumps(cfg)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            )
            assert loadgen.stdin is not None
            ready = rt.read_event(loadgen, "ready")
            signalled = time.monotonic()
            loadgen.stdin.write(f"{signalled}\n".encode())
            loadgen.stdin.flush()
            csms.send_signal(signal.SIGTERM)
            try:
                code = csms.wait(timeout=120)
            except subprocess.TimeoutExpired:
                code = None
            exit_s = time.monotonic() - signalled
            loadgen.stdin.write(b"stop\n")
            loadgen.stdin.flush()
            done = rt.read_event(loadgen, "done")
            loadgen.wait(timeout=30)
        finally:
            rt.stop_process(csms)
    return {"chargers": chargers, "mode": mode, "connected": ready["connected"],
            "exit_s": exit_s, "exit_code": code, **done}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chargers", type=int, nargs="+", default=[1000, 3000, 5000])
    parser.add_argument("--modes", nargs="+", choices=sorted(TARGETS),
                        default=["quiet", "reconnecting"])
    parser.add_argument("--reconnect-delay", type=float, default=0.05)
    parser.add_argument("--csms-arg", action="append", default=[],
                        help="an extra argument for python -m csms (repeatable)")
    parser.add_argument("--loadgen", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loadgen:
        return run_loadgen(args.loadgen)
    rt.raise_nofile_limit()
    print(f"python -m csms exit time on SIGTERM ({os.cpu_count()} CPUs; load generator and "
          f"CSMS share them)")
    print(f"{'chargers':>8} {'mode':>12} {'connected':>9} {'exit s':>7} {'code':>4} "
          f"{'hs after':>8} {'1001s':>6} {'target':>7}")
    for chargers in args.chargers:
        for mode in args.modes:
            r = run_one(chargers, mode, args.reconnect_delay, args.csms_arg)
            if "error" in r:
                print(f"{chargers:>8} {mode:>12} {r['error']}")
                continue
            verdict = "met" if r["exit_code"] == 0 and r["exit_s"] <= TARGETS[mode] else "MISSED"
            print(f"{chargers:>8} {mode:>12} {r['connected']:>9} {r['exit_s']:>7.2f} "
                  f"{r['exit_code']!s:>4} {r['handshakes_after_signal']:>8} "
                  f"{r['closed_1001']:>6} {TARGETS[mode]:>5.0f} s {verdict}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
