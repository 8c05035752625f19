"""The load generator of ``fleet_scale.py``: one shard of a fleet of lean chargers.

Each charger is a minimal RFC 6455 client (``rpc_throughput.WsClient``: asyncio, pre-built
frames, no OCPP library) with two connectors, behaving as the issue's realistic load:

* at every connect: BootNotification, then StatusNotification for connectors 0, 1, 2;
* each connector alternates between charging and idle, each period drawn from an
  exponential distribution (``session_s`` mean), so about half of them charge at any time;
  a session is StatusNotification Preparing, StartTransaction, StatusNotification Charging,
  MeterValues every ``meter_s`` (first tick at a random offset), then StopTransaction,
  StatusNotification Finishing and Available;
* Heartbeat every ``heartbeat_s`` (random offset);
* one CALL outstanding per charger, the others queued. What a charger has to say while
  offline waits in the queue and is sent after the next boot; a transaction message
  (Start/Stop, MeterValues) outstanding when the connection dies is sent again, as real
  chargers do. Heartbeats are only sent by a charger with nothing else to send.

When the CSMS goes away the chargers reconnect: ``jitter`` as the project's simulator does
(capped exponential backoff from 1 s with 50-100 % jitter), or ``lockstep`` as much real
firmware does (at once, then every second, no jitter).

The shard talks to the orchestrator in JSON lines: it prints events on stdout and reads
commands on stdin (``measure``, ``report``, ``storm MODE``, ``stop``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import json
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import rpc_throughput as rt  # a sibling script, not a package

#: What a queued CALL is: action, payload builder, what to do with the answer's payload.
Call = tuple[bytes, Callable[[], bytes], Callable[[Any], None] | None]
#: Seconds a TCP connect and WebSocket handshake may take before the charger gives up.
HANDSHAKE_TIMEOUT_S = 10.0
TRANSACTION_ACTIONS = frozenset({b"StartTransaction", b"StopTransaction", b"MeterValues"})
BOOT = rt._compact({"chargePointVendor": "BenchVendor", "chargePointModel": "Dual-22kW",
                    "firmwareVersion": "1.0.0"})


def now_iso() -> str:
    moment = datetime.datetime.now(datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def status_call(connector_id: int, state: str) -> Call:
    """A StatusNotification of ``connector_id`` in ``state``, stamped now."""
    payload = rt._compact({"connectorId": connector_id, "errorCode": "NoError",
                           "status": state, "timestamp": now_iso()})
    return b"StatusNotification", lambda: payload, None


class Connector:
    def __init__(self, station: Station, connector_id: int) -> None:
        self.station = station
        self.id = connector_id
        self.charging = False
        self.transaction_id: int | None = None
        self.energy_wh = 1_000_000 + 1_000 * station.index + connector_id
        self.power_w = 11_000.0

    def status(self, state: str) -> Call:
        return status_call(self.id, state)

    def start(self) -> None:
        station = self.station
        self.charging = True
        self.transaction_id = None
        station.enqueue(self.status("Preparing"))
        station.enqueue((b"StartTransaction", self._start_payload(), self._started))
        station.enqueue(self.status("Charging"))
        station.fleet.later(station.rng.uniform(0, station.fleet.meter_s), self.meter)
        station.fleet.later(station.rng.expovariate(1 / station.fleet.session_s), self.stop)

    def _start_payload(self) -> Callable[[], bytes]:
        tag = f"TAG{self.station.index:05d}-{self.id}"  # one card per connector
        payload = rt._compact({"connectorId": self.id, "idTag": tag,
                               "meterStart": self.energy_wh, "timestamp": now_iso()})
        return lambda: payload

    def _started(self, result: Any) -> None:
        with contextlib.suppress(LookupError, TypeError, ValueError):
            self.transaction_id = int(result["transactionId"])

    def meter(self) -> None:
        if not self.charging:
            return
        fleet = self.station.fleet
        fleet.later(fleet.meter_s, self.meter)
        if self.transaction_id is None:
            return  # the StartTransaction has not been answered yet
        self.energy_wh += round(self.power_w * fleet.meter_s / 3600)
        payload = rt._compact({
            "connectorId": self.id, "transactionId": self.transaction_id,
            "meterValue": [{"timestamp": now_iso(), "sampledValue": [
                {"value": str(self.energy_wh), "context": "Sample.Periodic",
                 "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                {"value": f"{self.power_w:.1f}", "context": "Sample.Periodic",
                 "measurand": "Power.Active.Import", "unit": "W"},
                {"value": "16.0", "context": "Sample.Periodic", "measurand": "Current.Import",
                 "phase": "L1", "unit": "A"},
            ]}],
        })
        self.station.enqueue((b"MeterValues", lambda: payload, None))

    def stop(self) -> None:
        station = self.station
        if self.transaction_id is None:  # not answered yet (offline): stop a bit later
            station.fleet.later(station.fleet.meter_s, self.stop)
            return
        payload = rt._compact({"transactionId": self.transaction_id, "meterStop": self.energy_wh,
                               "timestamp": now_iso(), "reason": "EVDisconnected"})
        self.charging = False
        self.transaction_id = None
        station.enqueue((b"StopTransaction", lambda: payload, None))
        station.enqueue(self.status("Finishing"))
        station.enqueue(self.status("Available"))
        station.fleet.later(station.rng.expovariate(1 / station.fleet.session_s), self.start)


class Link(rt.WsClient):
    """One connection of a station (a new one at every reconnect)."""

    def __init__(self, station: Station) -> None:
        super().__init__(station.fleet.gen, station.index, station.fleet.port)
        self.station = station
        self.cp_id = station.cp_id
        self.ready.add_done_callback(lambda f: None if f.cancelled() else f.exception())
        self.booted.add_done_callback(lambda f: None if f.cancelled() else f.exception())

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.station.lost(self)

    def on_message(self, payload: bytes) -> None:
        if not self.in_flight:
            return  # a CALL of the CSMS (none expected) or a stray answer
        is_error = False
        if not payload.startswith(self.expect):
            compact = payload.replace(b" ", b"")
            if compact.startswith(b"[4," + self.expect[3:]):
                is_error = True
            elif not compact.startswith(self.expect):
                return
        self.in_flight = False
        self.gen.answered()
        self.station.answered(payload, is_error, time.perf_counter() - self.t_sent)


class Station:
    """One charger, across its connections."""

    def __init__(self, fleet: Fleet, index: int) -> None:
        self.fleet = fleet
        self.index = index
        self.cp_id = f"CP_{index:05d}"
        self.rng = random.Random(f"{fleet.seed}/{index}")
        self.link: Link | None = None
        self.online = False
        self.queue: collections.deque[Call] = collections.deque()
        self.boot_calls: collections.deque[Call] = collections.deque()
        self.current: Call | None = None
        self.current_is_boot = False
        self.connectors = [Connector(self, 1), Connector(self, 2)]
        self.attempt = 0
        self.back_after: float | None = None
        self.attempts_this_storm = 0

    # -- connecting ------------------------------------------------------------------------

    def connect(self) -> None:
        self.fleet.loop.create_task(self._connect())

    async def _connect(self) -> None:
        fleet = self.fleet
        self.attempts_this_storm += 1
        link = Link(self)
        self.link = link
        # The first connects of the fleet are throttled (a benchmark's set-up); after a
        # restart of the CSMS every charger comes back on its own, as real ones do.
        limit = fleet.connecting if fleet.storm_started is None else contextlib.nullcontext()
        async with limit:
            try:
                async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                    await fleet.loop.create_connection(lambda: link, rt.HOST, fleet.port)
                    await link.ready
            except (OSError, ConnectionError, TimeoutError) as exc:
                fleet.failures[_failure_kind(exc)] += 1
                if link.transport is not None:
                    link.transport.abort()
                if self.link is link:
                    self.link = None
                    self.retry()
                return
        self.boot_calls = collections.deque(
            [(b"BootNotification", lambda: BOOT, None)]
            + [status_call(c, self.state_of(c)) for c in (0, 1, 2)]
        )
        self.current_is_boot = False
        self.pump()

    def state_of(self, connector_id: int) -> str:
        """What a boot reports for ``connector_id`` (0: the charger itself)."""
        if connector_id and self.connectors[connector_id - 1].transaction_id is not None:
            return "Charging"
        return "Available"

    def lost(self, link: Link) -> None:
        if self.link is not link:
            return
        self.link = None
        if self.online:
            self.online = False
            self.fleet.online -= 1
        if self.current is not None and not self.current_is_boot and \
                self.current[0] in TRANSACTION_ACTIONS:
            self.queue.appendleft(self.current)  # sent again after the next boot
        self.current = None
        self.retry(first=True)

    def retry(self, first: bool = False) -> None:
        fleet = self.fleet
        if fleet.stopping:
            return
        if fleet.mode == "lockstep":
            delay = 0.0 if first else 1.0
        else:
            delay = min(60.0, 1.0 * 2 ** min(self.attempt, 16)) * (0.5 + self.rng.random() / 2)
            self.attempt += 1
        fleet.later(delay, self.connect)

    # -- calls -------------------------------------------------------------------------------

    def enqueue(self, call: Call) -> None:
        self.queue.append(call)
        self.pump()

    def pump(self) -> None:
        link = self.link
        if self.current is not None or link is None or not link.handshaken:
            return
        if link.transport is None or link.transport.is_closing():
            return
        if self.boot_calls:
            self.current, self.current_is_boot = self.boot_calls.popleft(), True
        elif self.online and self.queue:
            self.current, self.current_is_boot = self.queue.popleft(), False
        else:
            return
        action, payload, _ = self.current
        link.send_call(0, action, payload())

    def answered(self, payload: bytes, is_error: bool, latency: float) -> None:
        fleet = self.fleet
        call, self.current = self.current, None
        assert call is not None
        fleet.answered(call[0], latency, is_error)
        if call[2] is not None and not is_error:
            with contextlib.suppress(ValueError, IndexError):
                call[2](json.loads(payload)[2])
        if self.current_is_boot and not self.boot_calls:
            self.online = True
            self.attempt = 0
            fleet.booted(self)
        self.pump()

    def heartbeat(self) -> None:
        self.fleet.later(self.fleet.heartbeat_s, self.heartbeat)
        if self.online and not self.queue and self.current is None:
            self.enqueue((b"Heartbeat", lambda: b"{}", None))


def _failure_kind(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if "handshake refused" in text:
        return "handshake_refused"
    return "reset"


class Fleet:
    """One shard's chargers and what they measured."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.loop = asyncio.get_running_loop()
        self.port: int = cfg["port"]
        self.seed: int = cfg["seed"]
        self.meter_s: float = cfg["meter_s"]
        self.heartbeat_s: float = cfg["heartbeat_s"]
        self.session_s: float = cfg["session_s"]
        self.mode = "jitter"
        self.gen = rt.LoadGen("heartbeat")
        self.connecting = asyncio.Semaphore(cfg["connect_concurrency"])
        self.stations = [Station(self, i) for i in range(cfg["first"], cfg["last"])]
        self.stopping = False
        self.measuring = False
        self.latencies: list[float] = []
        self.by_action: collections.Counter[str] = collections.Counter()
        self.errors = 0
        self.failures: collections.Counter[str] = collections.Counter()
        self.online = 0
        self.back = 0
        self.all_online = asyncio.Event()
        self.storm_started: float | None = None

    def later(self, delay: float, callback: Callable[[], None]) -> None:
        if not self.stopping:
            self.loop.call_later(delay, callback)

    def answered(self, action: bytes, latency: float, is_error: bool) -> None:
        if self.measuring:
            self.latencies.append(latency)
            self.by_action[action.decode()] += 1
            self.errors += is_error

    def booted(self, station: Station) -> None:
        self.online += 1
        if self.storm_started is not None and station.back_after is None:
            station.back_after = time.monotonic() - self.storm_started
            self.back += 1
        done = self.back if self.storm_started is not None else self.online
        if done == len(self.stations):
            self.all_online.set()

    def start(self) -> None:
        for station in self.stations:
            station.connect()
            rng = station.rng
            self.later(rng.uniform(0, self.heartbeat_s), station.heartbeat)
            for connector in station.connectors:
                if rng.random() < 0.5:
                    self.later(0, connector.start)
                else:
                    self.later(rng.expovariate(1 / self.session_s), connector.start)

    def reset_window(self) -> None:
        self.latencies, self.by_action, self.errors = [], collections.Counter(), 0
        self.failures = collections.Counter()


async def shard_main(cfg: dict[str, Any]) -> None:
    fleet = Fleet(cfg)
    t0 = time.monotonic()
    fleet.start()
    await fleet.all_online.wait()
    # Set-up ends when the sessions begun at the start have their transactionIds too.
    # (Polled: a benchmark's set-up, checked five times a second.)
    while any(c.charging and c.transaction_id is None  # noqa: ASYNC110
              for s in fleet.stations for c in s.connectors):
        await asyncio.sleep(0.2)
    charging = sum(c.charging for s in fleet.stations for c in s.connectors)
    rt._emit({"event": "booted", "chargers": len(fleet.stations), "seconds": time.monotonic() - t0,
              "charging": charging, "failures": dict(fleet.failures)})
    reader = asyncio.StreamReader()
    await fleet.loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    cpu0 = time.process_time()
    while line := (await reader.readline()).decode().split():
        command = line[0]
        if command == "measure":
            fleet.reset_window()
            fleet.measuring = True
            cpu0 = time.process_time()
        elif command == "report":
            fleet.measuring = False
            rt._emit({"event": "window", "latencies": fleet.latencies,
                      "by_action": dict(fleet.by_action), "errors": fleet.errors,
                      "cpu_s": time.process_time() - cpu0,
                      "rss_kb": rt.proc_status(os.getpid()).get("VmRSS", 0)})
        elif command == "storm":
            await _storm(fleet, line[1], float(line[2]), float(line[3]))
        elif command == "stop":
            break
    fleet.stopping = True
    for station in fleet.stations:
        if station.link is not None:
            station.link.close()
    await asyncio.sleep(0.2)


async def _storm(fleet: Fleet, mode: str, killed_at: float, limit_s: float) -> None:
    """The CSMS is about to be killed: reconnect as ``mode`` says; report once every
    charger has booted again (or after ``limit_s``)."""
    fleet.mode = mode
    fleet.storm_started = killed_at
    fleet.back = 0
    fleet.all_online = asyncio.Event()
    for station in fleet.stations:
        station.attempt = 0
        station.attempts_this_storm = 0
        station.back_after = None
    fleet.reset_window()
    fleet.measuring = True
    rt._emit({"event": "storm_armed"})
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(limit_s):
            await fleet.all_online.wait()
    fleet.measuring = False
    back = [s.back_after for s in fleet.stations if s.back_after is not None]
    rt._emit({"event": "storm", "chargers": len(fleet.stations), "back": len(back),
              "last_back_s": max(back, default=float("nan")),
              "back_s": sorted(back),
              "max_attempts": max(s.attempts_this_storm for s in fleet.stations),
              "failures": dict(fleet.failures), "latencies": fleet.latencies,
              "errors": fleet.errors})
    fleet.storm_started = None


def run_shard(cfg_json: str) -> int:
    rt.raise_nofile_limit()
    asyncio.run(shard_main(json.loads(cfg_json)))
    return 0


if __name__ == "__main__":
    sys.exit(run_shard(sys.argv[1]))
