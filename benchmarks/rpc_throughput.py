"""OCPP 1.6J RPC throughput: our CSMS (trio) against the ``ocpp`` package's reference
central system (asyncio ``ocpp.v16.ChargePoint`` on ``websockets``), under the same load.

For every N in ``--clients`` and every server, a fresh server process is started, then a
load-generator process opens N WebSocket connections to ``ws://127.0.0.1:PORT/ocpp/{id}``
(subprotocol ``ocpp1.6``) and sets each one up as a charging station would (Boot-
Notification, StatusNotification Preparing, StartTransaction, StatusNotification
Charging; not measured), so that its MeterValues carry the transactionId the server
issued. Then it runs every connection in a closed loop (one outstanding CALL per
connection, as OCPP-J requires):
the next CALL goes out as soon as the answer to the previous one arrived. For each phase
(``heartbeat``, ``metervalues``, ``mixed`` = alternating Heartbeat / MeterValues per
connection, ``realistic`` = 80 % MeterValues, 10 % StatusNotification, 10 % Heartbeat per
connection) it warms up for ``--warmup`` seconds and then measures a ``--seconds`` window:

* round trips per second (answers received in the window / window length);
* server CPU per round trip: the server process's user+sys time (all threads, from
  ``/proc/PID/stat``) over the window, divided by the round trips in the window;
* p50 / p99 round-trip latency, measured in the load generator;
* server RSS (``/proc/PID/status`` VmRSS) at the end of the window.

The load generator is deliberately thin: a single asyncio process speaking RFC 6455
directly over ``asyncio.Protocol`` (handshake, masked client frames, ping -> pong),
sending pre-built frame text in which only the uniqueId changes and checking only the
MessageTypeId and uniqueId of each answer. Its own CPU use is printed so that one can see
it is not the bottleneck. On a machine with two or more CPUs the server (all of its
threads) is pinned to CPU 0 and the load generator to CPU 1 (``--no-pin`` to let the
scheduler place them).

Each server runs with a scratch directory as its working directory (our CSMS writes its
SQLite file ``csms.db`` there by default; ``--csms-arg=--db=:memory:`` to compare).

Run: ``.venv/bin/python benchmarks/rpc_throughput.py --clients 100 500 --seconds 10``.
The script always exits 0 once it has run; both servers are stopped at the end
(SIGTERM, then SIGKILL after 5 s).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import importlib.metadata
import json
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
PATH_PREFIX = "/ocpp/"
PHASES = ("heartbeat", "metervalues", "mixed", "realistic")
SERVERS = ("csms", "reference", "floor")
#: Measured unless --servers says otherwise; "floor" is the transport floor, on request.
DEFAULT_SERVERS = ("csms", "reference")
SERVER_LABELS = {
    "csms": "A  csms (trio, ocppj)",
    "reference": "B  ocpp.v16.ChargePoint + websockets",
    "floor": "F  trio-websocket floor (no OCPP)",
}
CONNECT_TIMEOUT_S = 120.0
TARGET_CPU_US_PER_MV = 150.0
TARGET_THROUGHPUT_RATIO = 2.0
#: Server CPU per round trip at most this many times the transport floor's (issue 17).
TARGET_FLOOR_RATIO = 2.0
#: The ``realistic`` phase, per connection and in this order: 8 MeterValues, a
#: StatusNotification, a Heartbeat (80 / 10 / 10 %).
REALISTIC_CYCLE = 10
CLK_TCK = os.sysconf("SC_CLK_TCK")

# ---------------------------------------------------------------------------------------
# Helpers shared by both processes
# ---------------------------------------------------------------------------------------


def raise_nofile_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the (soft, hard) in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid``, all threads (``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent busy since boot (``/proc/stat``: all but idle/iowait)."""
    with open("/proc/stat", encoding="ascii") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (kB) and Threads of process ``pid``."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])
    return out


# ---------------------------------------------------------------------------------------
# The load generator (runs in its own process: ``rpc_throughput.py --loadgen JSON``)
# ---------------------------------------------------------------------------------------

try:
    from websockets.speedups import apply_mask as _apply_mask_c
except ImportError:  # pragma: no cover - websockets without its C extension
    _apply_mask_c = None


def _apply_mask_py(data: bytes, mask: bytes) -> bytes:
    n = len(data)
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


apply_mask: Callable[[bytes, bytes], bytes] = _apply_mask_c or _apply_mask_py


def _meter_start(client: int) -> int:
    return 1_250_000 + 37 * client


def meter_values_payload(client: int, transaction_id: int) -> bytes:
    """A realistic MeterValues payload: one meterValue, 8 sampled values, decimal strings."""
    energy = _meter_start(client) + 4_321
    payload = {
        "connectorId": 1,
        "transactionId": transaction_id,
        "meterValue": [
            {
                "timestamp": "2025-01-15T10:23:45.123Z",
                "sampledValue": [
                    {
                        "value": f"{energy}.0",
                        "context": "Sample.Periodic",
                        "format": "Raw",
                        "measurand": "Energy.Active.Import.Register",
                        "location": "Outlet",
                        "unit": "Wh",
                    },
                    {
                        "value": "11040.5",
                        "context": "Sample.Periodic",
                        "measurand": "Power.Active.Import",
                        "location": "Outlet",
                        "unit": "W",
                    },
                    {
                        "value": "16.02",
                        "context": "Sample.Periodic",
                        "measurand": "Current.Import",
                        "phase": "L1",
                        "location": "Outlet",
                        "unit": "A",
                    },
                    {
                        "value": "15.98",
                        "context": "Sample.Periodic",
                        "measurand": "Current.Import",
                        "phase": "L2",
                        "location": "Outlet",
                        "unit": "A",
                    },
                    {
                        "value": "16.01",
                        "context": "Sample.Periodic",
                        "measurand": "Current.Import",
                        "phase": "L3",
                        "location": "Outlet",
                        "unit": "A",
                    },
                    {
                        "value": "230.4",
                        "context": "Sample.Periodic",
                        "measurand": "Voltage",
                        "phase": "L1-N",
                        "location": "Outlet",
                        "unit": "V",
                    },
                    {
                        "value": "16.0",
                        "context": "Sample.Periodic",
                        "measurand": "Current.Offered",
                        "location": "Outlet",
                        "unit": "A",
                    },
                    {
                        "value": "57",
                        "context": "Sample.Periodic",
                        "measurand": "SoC",
                        "location": "EV",
                        "unit": "Percent",
                    },
                ],
            }
        ],
    }
    return json.dumps(payload, separators=(",", ":")).encode()


BOOT_PAYLOAD = json.dumps(
    {
        "chargePointVendor": "BenchVendor",
        "chargePointModel": "BenchModel-22kW",
        "chargePointSerialNumber": "SN-000000",
        "firmwareVersion": "1.0.0",
    },
    separators=(",", ":"),
).encode()

SETUP_TIMESTAMP = "2025-01-15T10:00:00.000Z"


def _compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def setup_calls(client: int) -> list[tuple[bytes, bytes]]:
    """What a charge point sends before its session's meter values: boot, status,
    StartTransaction (whose transactionId the MeterValues then carry), status."""

    def status(state: str) -> bytes:
        return _compact(
            {
                "connectorId": 1,
                "errorCode": "NoError",
                "status": state,
                "timestamp": SETUP_TIMESTAMP,
            }
        )

    start = {
        "connectorId": 1,
        "idTag": f"TAG{client:05d}",
        "meterStart": _meter_start(client),
        "timestamp": SETUP_TIMESTAMP,
    }
    return [
        (b"BootNotification", BOOT_PAYLOAD),
        (b"StatusNotification", status("Preparing")),
        (b"StartTransaction", _compact(start)),
        (b"StatusNotification", status("Charging")),
    ]


HB, MV, ST = 0, 1, 2
#: A StatusNotification of the connector in its session (as the set-up's last one).
STATUS_CHARGING = json.dumps({"connectorId": 1, "errorCode": "NoError", "status": "Charging",
                              "timestamp": SETUP_TIMESTAMP}, separators=(",", ":")).encode()


class LoadGen:
    """State shared by all connections of the load generator."""

    def __init__(self, phase: str) -> None:
        self.phase = phase
        self.measuring = False
        self.stopping = False
        self.count = 0
        self.count_by_kind = [0, 0, 0]
        self.errors = 0
        self.mismatches = 0
        self.latencies: list[float] = []
        self.closed = 0
        self.outstanding = 0
        self.drained = asyncio.Event()
        self.setup_errors: dict[str, int] = {}

    def answered(self) -> None:
        """One CALL fewer in flight."""
        self.outstanding -= 1
        if self.stopping and self.outstanding <= 0:
            self.drained.set()


class WsClient(asyncio.Protocol):
    """One charge point: a minimal RFC 6455 client speaking pre-built OCPP-J frames."""

    def __init__(self, gen: LoadGen, index: int, port: int) -> None:
        self.gen = gen
        self.index = index
        self.port = port
        self.cp_id = f"bench{index:04d}"
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.frag = bytearray()
        self.handshaken = False
        self.ws_key = base64.b64encode(os.urandom(16))
        self.mask = os.urandom(4)
        self.seq = 0
        self.expect = b""
        self.kind = HB
        self.t_sent = 0.0
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.booted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transaction_id = 100_000 + index  # replaced by the StartTransaction answer
        self.mv_payload = meter_values_payload(index, self.transaction_id)
        self.setup = setup_calls(index)
        self.setup_action = b""
        self.id_prefix = b"%d-" % index
        self.in_flight = False

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        request = (
            f"GET {PATH_PREFIX}{self.cp_id} HTTP/1.1\r\n"
            f"Host: {HOST}:{self.port}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self.ws_key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: ocpp1.6\r\n"
            "\r\n"
        )
        transport.write(request.encode())

    def connection_lost(self, exc: Exception | None) -> None:
        self.gen.closed += 1
        if self.in_flight:
            self.in_flight = False
            self.gen.answered()
        for fut in (self.ready, self.booted):
            if not fut.done():
                fut.set_exception(ConnectionError(f"{self.cp_id}: connection lost ({exc})"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.handshaken:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            del buf[: end + 4]
            if (
                not head.startswith(b"http/1.1 101")
                or b"sec-websocket-protocol: ocpp1.6" not in head
            ):
                if not self.ready.done():
                    self.ready.set_exception(
                        ConnectionError(f"{self.cp_id}: handshake refused: {head[:200]!r}")
                    )
                assert self.transport is not None
                self.transport.close()
                return
            self.handshaken = True
            self.ready.set_result(None)
        while True:
            n = len(buf)
            if n < 2:
                return
            b0, b1 = buf[0], buf[1]
            length = b1 & 0x7F
            pos = 2
            if length == 126:
                if n < 4:
                    return
                length = int.from_bytes(buf[2:4], "big")
                pos = 4
            elif length == 127:
                if n < 10:
                    return
                length = int.from_bytes(buf[2:10], "big")
                pos = 10
            mask = b""
            if b1 & 0x80:  # a server must not mask, but be lenient
                if n < pos + 4:
                    return
                mask = bytes(buf[pos : pos + 4])
                pos += 4
            if n < pos + length:
                return
            payload = bytes(buf[pos : pos + length])
            del buf[: pos + length]
            if mask:
                payload = apply_mask(payload, mask)
            opcode = b0 & 0x0F
            if opcode in (0x1, 0x2, 0x0):
                if not b0 & 0x80 or opcode == 0x0:
                    self.frag += payload
                    if not b0 & 0x80:
                        continue
                    payload, self.frag = bytes(self.frag), bytearray()
                self.on_message(payload)
            elif opcode == 0x9:
                self.send_frame(0xA, payload)
            elif opcode == 0x8:
                assert self.transport is not None
                self.transport.close()
                return

    # -- frames --------------------------------------------------------------------------

    def send_frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            header = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            header = bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
        else:
            header = bytes((0x80 | opcode, 0xFF)) + n.to_bytes(8, "big")
        assert self.transport is not None
        self.transport.write(header + self.mask + apply_mask(payload, self.mask))

    def send_call(self, kind: int, action: bytes, payload: bytes) -> None:
        self.seq += 1
        uid = self.id_prefix + b"%d" % self.seq
        self.expect = b'[3,"' + uid + b'"'
        self.kind = kind
        self.in_flight = True
        self.gen.outstanding += 1
        self.t_sent = time.perf_counter()
        self.send_frame(0x1, b'[2,"' + uid + b'","' + action + b'",' + payload + b"]")

    def send_next(self) -> None:
        gen = self.gen
        if gen.stopping or self.transport is None or self.transport.is_closing():
            return
        phase = gen.phase
        if phase == "realistic":
            step = self.seq % REALISTIC_CYCLE
            if step == REALISTIC_CYCLE - 2:
                self.send_call(ST, b"StatusNotification", STATUS_CHARGING)
            elif step == REALISTIC_CYCLE - 1:
                self.send_call(HB, b"Heartbeat", b"{}")
            else:
                self.send_call(MV, b"MeterValues", self.mv_payload)
        elif phase == "heartbeat" or (phase == "mixed" and self.seq % 2 == 0):
            self.send_call(HB, b"Heartbeat", b"{}")
        else:
            self.send_call(MV, b"MeterValues", self.mv_payload)

    def on_message(self, payload: bytes) -> None:
        now = time.perf_counter()
        gen = self.gen
        if not self.in_flight:
            gen.mismatches += 1
            return
        is_error = False
        if not payload.startswith(self.expect):
            compact = payload.replace(b" ", b"")
            if compact.startswith(b"[4," + self.expect[3:]):
                is_error = True
                gen.errors += 1
            elif not compact.startswith(self.expect):
                gen.mismatches += 1
                return  # not the answer to our CALL: keep waiting for it
        self.in_flight = False
        gen.answered()
        if not self.booted.done():
            self.on_setup_answer(payload, is_error)
            return
        if gen.measuring:
            gen.count += 1
            gen.count_by_kind[self.kind] += 1
            gen.latencies.append(now - self.t_sent)
        self.send_next()

    def boot(self) -> None:
        """Start the setup sequence; ``booted`` resolves when it is done."""
        self.next_setup()

    def next_setup(self) -> None:
        if self.booted.done():  # the connection was lost meanwhile
            return
        if not self.setup:
            self.booted.set_result(None)
            return
        self.setup_action, payload = self.setup.pop(0)
        self.send_call(HB, self.setup_action, payload)

    def on_setup_answer(self, payload: bytes, is_error: bool) -> None:
        action = self.setup_action.decode()
        if is_error:
            self.gen.setup_errors[action] = self.gen.setup_errors.get(action, 0) + 1
        elif action == "StartTransaction":
            with contextlib.suppress(ValueError, LookupError, TypeError):
                self.transaction_id = int(json.loads(payload)[2]["transactionId"])
                self.mv_payload = meter_values_payload(self.index, self.transaction_id)
        self.next_setup()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.send_frame(0x8, (1000).to_bytes(2, "big") + b"benchmark done")
            self.transport.close()


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def read_event(proc: subprocess.Popen[bytes], name: str) -> dict[str, Any]:
    """The next JSON-line event called ``name`` that a load-generator process printed
    (the lines before it are skipped)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        record: dict[str, Any] = json.loads(line)
        if record.get("event") == name:
            return record
    raise RuntimeError(f"the load generator ended before {name!r}")


def _emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


async def _connect_all(gen: LoadGen, port: int, clients: int, concurrency: int) -> list[WsClient]:
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(concurrency)
    conns: list[WsClient] = []

    async def one(i: int) -> None:
        async with sem:
            client = WsClient(gen, i, port)
            await loop.create_connection(lambda: client, HOST, port)
            await client.ready
            client.boot()
            await client.booted
            conns.append(client)

    async with asyncio.timeout(CONNECT_TIMEOUT_S):
        results = await asyncio.gather(*(one(i) for i in range(clients)), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        _emit({"event": "connect_failures", "count": len(failures), "first": repr(failures[0])})
    return conns


async def loadgen_main(cfg: dict[str, Any]) -> None:
    port: int = cfg["port"]
    server_pid: int = cfg["server_pid"]
    gen = LoadGen(cfg["phases"][0])
    t0 = time.perf_counter()
    conns = await _connect_all(gen, port, cfg["clients"], cfg["connect_concurrency"])
    _emit(
        {
            "event": "connected",
            "connected": len(conns),
            "seconds": time.perf_counter() - t0,
            "setup_errors": gen.setup_errors,
        }
    )
    if not conns:
        return
    for client in conns:
        client.send_next()
    for phase in cfg["phases"]:
        gen.phase = phase
        await asyncio.sleep(cfg["warmup"])
        gen.count = 0
        gen.count_by_kind = [0, 0, 0]
        gen.errors = 0
        gen.mismatches = 0
        gen.latencies = []
        srv0 = proc_cpu_seconds(server_pid)
        own0 = time.process_time()
        all0 = machine_busy_seconds()
        w0 = time.perf_counter()
        gen.measuring = True
        await asyncio.sleep(cfg["seconds"])
        gen.measuring = False
        w1 = time.perf_counter()
        srv1 = proc_cpu_seconds(server_pid)
        own1 = time.process_time()
        all1 = machine_busy_seconds()
        status = proc_status(server_pid)
        lat = sorted(gen.latencies)
        _emit(
            {
                "event": "window",
                "phase": phase,
                "round_trips": gen.count,
                "heartbeats": gen.count_by_kind[HB],
                "meter_values": gen.count_by_kind[MV],
                "status_notifications": gen.count_by_kind[ST],
                "window_s": w1 - w0,
                "server_cpu_s": srv1 - srv0,
                "loadgen_cpu_s": own1 - own0,
                "other_cpu_s": (all1 - all0) - (srv1 - srv0) - (own1 - own0),
                "p50_ms": _percentile(lat, 0.50) * 1e3,
                "p99_ms": _percentile(lat, 0.99) * 1e3,
                "mean_ms": (statistics.fmean(lat) * 1e3) if lat else float("nan"),
                "errors": gen.errors,
                "mismatches": gen.mismatches,
                "connections_lost": gen.closed,
                "rss_kb": status.get("VmRSS", 0),
                "hwm_kb": status.get("VmHWM", 0),
                "threads": status.get("Threads", 0),
            }
        )
    gen.stopping = True
    if gen.outstanding > 0:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await gen.drained.wait()
    for client in conns:
        client.close()
    await asyncio.sleep(0.2)


def run_loadgen(cfg_json: str) -> int:
    raise_nofile_limit()
    cfg = json.loads(cfg_json)
    try:
        asyncio.run(loadgen_main(cfg))
    except Exception as exc:
        _emit({"event": "failed", "error": repr(exc)})
    return 0


# ---------------------------------------------------------------------------------------
# The orchestrator
# ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def server_command(kind: str, port: int, csms_args: list[str]) -> list[str]:
    if kind == "csms":
        return [
            sys.executable,
            "-m",
            "csms",
            "--host",
            HOST,
            "--port",
            str(port),
            "--log-level",
            "WARNING",
            # The simulated idTags are not registered: answer them as the reference does.
            "--unknown-id-tags",
            "accept",
            # Measure the CSMS, not its per-charger CALL budget.
            "--max-call-rate",
            "0",
            *csms_args,
        ]
    name = "ocpp_reference_server.py" if kind == "reference" else "trio_websocket_floor_server.py"
    script = Path(__file__).with_name(name)
    return [sys.executable, str(script), "--host", HOST, "--port", str(port)]


def wait_listening(proc: subprocess.Popen[bytes], port: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return True
        time.sleep(0.1)
    return False


def stop_process(proc: subprocess.Popen[Any], grace: float = 5.0) -> str:
    if proc.poll() is not None:
        return f"had exited ({proc.returncode})"
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
        return f"stopped by SIGTERM ({proc.returncode})"
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return "killed after SIGTERM timeout"


def _preexec(cpus: set[int] | None, nice: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that pins the child to ``cpus`` and renices it before it execs."""
    if not cpus and not nice:
        return None

    def setup() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)
        if nice:
            with contextlib.suppress(OSError):
                os.nice(nice)

    return setup


def pin(pid: int, cpus: set[int] | None) -> None:
    """Pin every thread of ``pid`` to ``cpus`` (threads started later inherit it)."""
    if cpus:
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                os.sched_setaffinity(int(tid), cpus)


def run_one(
    kind: str, clients: int, args: argparse.Namespace, cpu_plan: dict[str, set[int]] | None
) -> dict[str, Any]:
    port = free_port()
    result: dict[str, Any] = {"server": kind, "clients": clients, "windows": {}, "notes": []}
    with tempfile.TemporaryFile() as server_log, tempfile.TemporaryDirectory() as workdir:
        # The server runs in a scratch directory: whatever it writes there (a database
        # file by default, say) is removed afterwards.
        server = subprocess.Popen(
            server_command(kind, port, args.csms_arg),
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=server_log,
            preexec_fn=_preexec(cpu_plan["server"] if cpu_plan else None, args.nice),  # noqa: PLW1509
        )
        loadgen: subprocess.Popen[str] | None = None
        try:
            if not wait_listening(server, port):
                server_log.seek(0)
                result["notes"].append(
                    "server did not start: " + server_log.read().decode(errors="replace")[-2000:]
                )
                return result
            pin(server.pid, cpu_plan["server"] if cpu_plan else None)
            idle0 = proc_status(server.pid)
            result["idle_rss_kb"] = idle0.get("VmRSS", 0)
            cfg = {
                "port": port,
                "server_pid": server.pid,
                "clients": clients,
                "phases": args.phases,
                "warmup": args.warmup,
                "seconds": args.seconds,
                "connect_concurrency": args.connect_concurrency,
            }
            loadgen = subprocess.Popen(
                [sys.executable, __file__, "--loadgen", json.dumps(cfg)],
                stdout=subprocess.PIPE,
                text=True,
                preexec_fn=_preexec(cpu_plan["load"] if cpu_plan else None, args.nice),  # noqa: PLW1509
            )
            assert loadgen.stdout is not None
            # Bounded: the load generator is killed if it overruns its schedule.
            budget = CONNECT_TIMEOUT_S + len(args.phases) * (args.warmup + args.seconds) + 30
            watchdog = threading.Timer(budget, loadgen.kill)
            watchdog.start()
            for line in loadgen.stdout:
                record = json.loads(line)
                event = record["event"]
                if event == "connected":
                    result["connected"] = record["connected"]
                    result["connect_s"] = record["seconds"]
                    if record.get("setup_errors"):
                        result["notes"].append(
                            "CALLERRORs during setup (not measured): "
                            + json.dumps(record["setup_errors"])
                        )
                elif event == "window":
                    result["windows"][record["phase"]] = record
                else:
                    result["notes"].append(json.dumps(record))
            loadgen.wait(timeout=30)
            watchdog.cancel()
        finally:
            if loadgen is not None and loadgen.poll() is None:
                stop_process(loadgen, 2.0)
            result["stop"] = stop_process(server)
            lost = any(w.get("connections_lost") for w in result["windows"].values())
            if (
                server.returncode not in (0, -signal.SIGTERM)
                or not result["windows"]
                or result["notes"]
                or lost
            ):
                server_log.seek(0)
                tail = server_log.read().decode(errors="replace")[-1500:]
                if tail.strip():
                    result["notes"].append("server stderr tail: " + tail)
    return result


def _verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def _fmt(value: float, spec: str) -> str:
    if value != value:  # NaN
        return "-"
    return format(value, spec)


def print_report(results: list[dict[str, Any]], args: argparse.Namespace, plan_text: str) -> None:
    print()
    print("=" * 118)
    print("OCPP 1.6J RPC throughput (closed loop, one outstanding CALL per connection)")
    print("=" * 118)
    print(plan_text)
    print(
        f"window {args.seconds:g} s after {args.warmup:g} s warm-up, per phase; phases: "
        + ", ".join(args.phases)
        + " (mixed = each connection alternates Heartbeat / MeterValues)"
    )
    print(
        "rt/s = round trips per second; CPU us/rt = server user+sys CPU (all threads) over the "
        "window / round trips;\nsrv CPU% = of one core; load% = load generator CPU, % of one core; "
        "other% = everything else busy on the machine\n(other processes, interrupts), % of one "
        "core; RSS at end of window (idle RSS before load); thr = server threads."
    )
    header = (
        f"{'server':<38} {'N':>4} {'phase':<11} {'rt/s':>9} {'CPU us/rt':>9} {'srv CPU%':>8} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'RSS MB':>7} {'idle MB':>7} {'thr':>3} {'err':>4} "
        f"{'load%':>6} {'other%':>6}"
    )
    print()
    print(header)
    print("-" * len(header))
    by_key: dict[tuple[str, int, str], dict[str, Any]] = {}
    #: Every round's window, in round order (``--rounds``).
    rounds: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for res in results:
        label = SERVER_LABELS[res["server"]]
        if args.rounds > 1:
            label = f"{label[:33]} #{res.get('round', 1)}"
        if not res["windows"]:
            print(f"{label:<38} {res['clients']:>4} NO RESULT: {' | '.join(res['notes'])[:300]}")
            continue
        for phase in args.phases:
            w = res["windows"].get(phase)
            if w is None:
                continue
            rate = w["round_trips"] / w["window_s"]
            cpu_us = (
                w["server_cpu_s"] / w["round_trips"] * 1e6 if w["round_trips"] else float("nan")
            )
            w["rate"], w["cpu_us"] = rate, cpu_us
            by_key[(res["server"], res["clients"], phase)] = w
            rounds.setdefault((res["server"], res["clients"], phase), []).append(w)
            print(
                f"{label:<38} {res['clients']:>4} {phase:<11} {rate:>9.0f} {_fmt(cpu_us, '9.1f')} "
                f"{w['server_cpu_s'] / w['window_s'] * 100:>8.0f} {_fmt(w['p50_ms'], '8.2f')} "
                f"{_fmt(w['p99_ms'], '8.2f')} {w['rss_kb'] / 1024:>7.1f} "
                f"{res.get('idle_rss_kb', 0) / 1024:>7.1f} {w['threads']:>3} "
                f"{w['errors'] + w['mismatches']:>4} "
                f"{w['loadgen_cpu_s'] / w['window_s'] * 100:>6.0f} "
                f"{w['other_cpu_s'] / w['window_s'] * 100:>6.0f}"
            )
        connected = f"connected {res.get('connected', 0)}/{res['clients']}"
        extra = [
            f"{connected} in {res.get('connect_s', 0):.1f} s",
            f"server {res.get('stop', '?')}",
        ]
        lost = max((w.get("connections_lost", 0) for w in res["windows"].values()), default=0)
        if lost:
            extra.append(f"{lost} connections lost")
        print(f"{'':<38} {'':>4} ({'; '.join(extra)})")
        for note in res["notes"]:
            print(f"{'':<38} {'':>4} note: {note[:400]}")

    print()
    print(
        "A/B comparison. measured = ratio of rt/s as measured; per CPU = ratio of round trips "
        "per server CPU-second\n(= B/A of CPU us/rt: the throughput ratio if each server had "
        "its core to itself; robust to other load)"
    )
    for n in args.clients:
        for phase in args.phases:
            a, b = by_key.get(("csms", n, phase)), by_key.get(("reference", n, phase))
            if a is None or b is None or not b["rate"]:
                continue
            print(
                f"  N={n:<4} {phase:<11} throughput A/B measured {a['rate'] / b['rate']:5.2f}x, "
                f"per CPU {b['cpu_us'] / a['cpu_us']:5.2f}x   "
                f"(A {a['rate']:.0f} rt/s, {a['cpu_us']:.0f} us/rt; "
                f"B {b['rate']:.0f} rt/s, {b['cpu_us']:.0f} us/rt)"
            )

    floor_lines = []
    for n in args.clients:
        for phase in args.phases:
            a, b = by_key.get(("csms", n, phase)), by_key.get(("reference", n, phase))
            f = by_key.get(("floor", n, phase))
            if f is None:
                continue
            line = f"  N={n:<4} {phase:<11} floor F {f['cpu_us']:.0f} us/rt ({f['rate']:.0f} rt/s)"
            if a is not None:
                line += f"; A above the floor {a['cpu_us'] - f['cpu_us']:.0f} us/rt"
            if b is not None and b["rate"]:
                need = b["cpu_us"] / TARGET_THROUGHPUT_RATIO
                line += (
                    f"; {TARGET_THROUGHPUT_RATIO:.0f}x B per CPU needs <= {need:.0f} us/rt, "
                    f"floor/needed {f['cpu_us'] / need:.2f}"
                )
            floor_lines.append(line)
    if floor_lines:
        print()
        print(
            "Transport floor (F: trio-websocket alone, canned answers, no validation or storage): "
            "no server on\nthis WebSocket layer can use less CPU per round trip than F."
        )
        print("\n".join(floor_lines))

    print()
    print("Targets")
    for n in args.clients:
        for phase in ("metervalues", "realistic"):
            pairs = [(a, f) for a, f in zip(rounds.get(("csms", n, phase), []),
                                            rounds.get(("floor", n, phase), []), strict=False)
                     if f["cpu_us"]]
            if not pairs:
                continue
            ratios = sorted(a["cpu_us"] / f["cpu_us"] for a, f in pairs)
            ratio = statistics.median(ratios)
            a_us = statistics.median(a["cpu_us"] for a, _ in pairs)
            f_us = statistics.median(f["cpu_us"] for _, f in pairs)
            spread = (f" (median of {len(ratios)} rounds: "
                      + ", ".join(f"{r:.2f}x" for r in ratios) + ")") if len(ratios) > 1 else ""
            print(
                f"  server CPU per round trip <= {TARGET_FLOOR_RATIO:.1f}x the floor's, N={n}, "
                f"{phase}: A {a_us:.0f} us / F {f_us:.0f} us = {ratio:.2f}x{spread} "
                f"-> {_verdict(ratio <= TARGET_FLOOR_RATIO)}"
            )
    for n in args.clients:
        a = by_key.get(("csms", n, "metervalues"))
        if a is not None:
            ok = a["cpu_us"] <= TARGET_CPU_US_PER_MV
            print(
                f"  server CPU per MeterValues round trip <= {TARGET_CPU_US_PER_MV:.0f} us, N={n}: "
                f"A = {a['cpu_us']:.1f} us  -> {'MET' if ok else 'NOT MET'}"
            )
    for n in args.clients:
        for phase in args.phases:
            a, b = by_key.get(("csms", n, phase)), by_key.get(("reference", n, phase))
            if a is None or b is None or not b["rate"]:
                continue
            ratio = a["rate"] / b["rate"]
            per_cpu = b["cpu_us"] / a["cpu_us"]
            print(
                f"  throughput >= {TARGET_THROUGHPUT_RATIO:.0f}x reference, N={n}, {phase}: "
                f"measured {ratio:.2f}x -> {_verdict(ratio >= TARGET_THROUGHPUT_RATIO)}; "
                f"per CPU {per_cpu:.2f}x -> {_verdict(per_cpu >= TARGET_THROUGHPUT_RATIO)}"
            )
    saturated = [
        f"{k[0]} N={k[1]} {k[2]}"
        for k, w in by_key.items()
        if w["loadgen_cpu_s"] / w["window_s"] > 0.85
    ]
    busy = [
        f"{k[0]} N={k[1]} {k[2]} ({w['other_cpu_s'] / w['window_s'] * 100:.0f}%)"
        for k, w in by_key.items()
        if w["other_cpu_s"] / w["window_s"] > 0.15
    ]
    if busy:
        print()
        print(
            "WARNING: other work used >15% of a core during: "
            + ", ".join(busy)
            + " -- throughput and latency there are disturbed; CPU us/rt much less so."
        )
    if saturated:
        print()
        print(
            "WARNING: the load generator used >85% of its core in: "
            + ", ".join(saturated)
            + " -- those figures may be bounded by the load, not by the server."
        )


def source_state() -> str:
    """The commit of the tree under test, and whether src/ has uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return "source: (not a git checkout)"
    state = f"{len(dirty)} uncommitted change(s) under src/" if dirty else "src/ clean"
    return f"source: commit {head}, {state}"


def versions() -> str:
    names = [
        "trio",
        "trio-websocket",
        "wsproto",
        "orjson",
        "fastjsonschema",
        "cattrs",
        "ocpp",
        "websockets",
        "jsonschema",
    ]
    parts = []
    for name in names:
        try:
            parts.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{name} -")
    return f"Python {platform.python_version()}; " + ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--clients",
        type=int,
        nargs="+",
        default=[100, 500],
        help="concurrent connections; one run per value (default: 100 500)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=10.0,
        help="measured window per phase (default: %(default)s)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=3.0,
        help="warm-up before each window (default: %(default)s)",
    )
    parser.add_argument(
        "--phases",
        nargs="+",
        choices=PHASES,
        default=list(PHASES),
        help="load phases, in order (default: all)",
    )
    parser.add_argument(
        "--servers",
        nargs="+",
        choices=SERVERS,
        default=list(DEFAULT_SERVERS),
        help="servers to measure (default: csms reference; add floor for the transport floor: "
        "trio-websocket answering canned CALLRESULTs, no OCPP)",
    )
    parser.add_argument(
        "--connect-concurrency",
        type=int,
        default=50,
        help="connection handshakes in flight at once (default: %(default)s)",
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin the server and the load generator to separate CPUs",
    )
    parser.add_argument(
        "--csms-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for python -m csms (repeat; e.g. --csms-arg=--log-level=ERROR)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="nice increment for the server and the load generator (negative needs root; "
        "shields the figures from other work on the machine, at that work's expense)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the servers this many times per N, interleaved (A, F, A, F ...): the "
        "floor verdicts then pair each round's A with its F and judge the median ratio, "
        "which this noisy kind of machine needs (default: %(default)s)",
    )
    parser.add_argument("--loadgen", metavar="JSON", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    if args.loadgen is not None:
        return run_loadgen(args.loadgen)

    soft, hard = raise_nofile_limit()  # inherited by both servers and the load generator
    cpus = sorted(os.sched_getaffinity(0))
    cpu_plan: dict[str, set[int]] | None = None
    if not args.no_pin and len(cpus) >= 2:
        cpu_plan = {"server": {cpus[0]}, "load": {cpus[1]}}
        plan_text = (
            f"{os.cpu_count()} CPUs: server process (all threads) pinned to CPU {cpus[0]}, "
            f"load generator (1 asyncio process, raw RFC 6455 client) pinned to CPU {cpus[1]}; "
            "the orchestrator sleeps during windows. One server runs at a time."
        )
    else:
        plan_text = (
            f"{os.cpu_count()} CPUs, no pinning: server and load generator (1 asyncio process) "
            "share the CPUs as the scheduler places them. One server runs at a time."
        )
    plan_text += f"\nRLIMIT_NOFILE {soft}/{hard} (soft raised to hard, inherited by all processes)."
    plan_text += "\n" + versions()
    plan_text += "\n" + source_state()
    if args.nice:
        plan_text += f"\nserver and load generator run at nice {args.nice:+d}"
    if args.csms_arg:
        plan_text += "\ncsms extra arguments: " + " ".join(args.csms_arg)

    results: list[dict[str, Any]] = []
    for n in args.clients:
        for round_no in range(1, args.rounds + 1):
            for kind in args.servers:
                print(f"... {SERVER_LABELS[kind]}, N={n}, round {round_no}", flush=True)
                try:
                    result = run_one(kind, n, args, cpu_plan)
                except Exception as exc:
                    result = {"server": kind, "clients": n, "windows": {},
                              "notes": [f"run failed: {exc!r}"]}
                result["round"] = round_no
                results.append(result)
    print_report(results, args, plan_text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
