"""Ten thousand chargers on one CSMS process: memory and latency at a realistic load, and
the reconnect storm after ``kill -9`` (issue 17, points 1 and 2).

It starts ``python -m csms`` (a scratch SQLite file, WAL, ``synchronous=FULL``; the
operator API on for ``GET /api/health``) and measures its RSS idle. Then ``--shards``
load-generator processes (``fleet_loadgen.py``: lean asyncio chargers) connect
``--chargers`` chargers of two connectors each and keep them at the issue's realistic
load: about half of the connectors charging, MeterValues every 60 s per charging
connector, Heartbeat every 300 s, statuses as sessions start and stop (sessions and idle
periods of ``--session-minutes`` on average).

Once every charger has booted it prints, over a ``--seconds`` window:

* the CSMS's RSS per connection above its idle RSS (target ≤ 40 KiB);
* its CPU share of one core;
* p50/p99 answer latency as the chargers see it (target p99 < 100 ms);
* commit batch sizes: answers (flushes) and rows per commit, from ``GET /api/health``.

Then, for each ``--storms`` mode, the storm: ``kill -9`` the CSMS, start it again at once
on the same database and ports, and print the time until every charger is connected and
booted again (target ≤ 60 s), the slowest charger's attempts, how connection attempts
failed, and the p50/p99 latency during the storm. ``jitter``: chargers reconnect as the
project's simulator does (exponential backoff from 1 s, 50-100 % jitter); ``lockstep``:
as much real firmware does, at once and then every second, no jitter (the harder case).

Both sides raise their open-files limit to the hard limit (10,000 chargers need 10,000
sockets in the CSMS). The two CPUs of this machine are shared by the CSMS and the load
generators; the load generators' CPU is printed so that it can be checked they are not
the bottleneck.

Run: ``.venv/bin/python benchmarks/fleet_scale.py --chargers 10000``.
Exit status 0 once it has run (targets are reported, not enforced).
"""

from __future__ import annotations

import argparse
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
from csms.api.client import ApiUnreachable, call_api

TARGET_KIB_PER_CONNECTION = 40.0
TARGET_P99_MS = 100.0
TARGET_STORM_S = 60.0
STORM_TIMEOUT_S = 180.0


class Csms:
    """A ``python -m csms`` child on fixed ports, which can be killed and started again."""

    def __init__(self, scratch: Path, extra: list[str]) -> None:
        self.port = rt.free_port()
        self.api_port = rt.free_port()
        self.command = rt.server_command("csms", self.port, [
            "--db", str(scratch / "csms.db"), "--api-port", str(self.api_port),
            "--max-connections", "20000", *extra,
        ])
        self.scratch = scratch
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start it; the monotonic time it listened at."""
        # No threads in this process: preexec_fn is safe.
        self.proc = subprocess.Popen(self.command, cwd=self.scratch,
                                     preexec_fn=rt.raise_nofile_limit)  # noqa: PLW1509
        if not rt.wait_listening(self.proc, self.port, timeout=60):
            raise RuntimeError(f"the CSMS did not listen (exit code {self.proc.poll()})")
        return time.monotonic()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def health(self) -> dict[str, Any]:
        answer = call_api(f"http://{rt.HOST}:{self.api_port}", "GET", "/api/health",
                          timeout=30)
        body: dict[str, Any] = answer.body
        return body

    def wait_api(self, timeout: float = 30.0) -> None:
        """Return once the operator API answers (it starts after the OCPP listener)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.health()
                return
            except ApiUnreachable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def rss_kib(self) -> int:
        return rt.proc_status(self.pid).get("VmRSS", 0)

    def cpu_s(self) -> float:
        return rt.proc_cpu_seconds(self.pid)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            rt.stop_process(self.proc, grace=30)


class Shards:
    """The load-generator processes, one JSON line per event each."""

    def __init__(self, args: argparse.Namespace, port: int) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        n, shards = args.chargers, args.shards
        for k in range(shards):
            # CP_00001 ... in shards that differ by one charger at most, none empty.
            first, last = k * n // shards + 1, (k + 1) * n // shards + 1
            cfg = {"port": port, "first": first, "last": last, "seed": args.seed,
                   "meter_s": args.meter_interval, "heartbeat_s": args.heartbeat_interval,
                   "session_s": args.session_minutes * 60, "connect_concurrency": 200}
            self.procs.append(subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("fleet_loadgen.py")),
                 json.dumps(cfg)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            ))

    def tell(self, line: str) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(line.encode() + b"\n")
            proc.stdin.flush()

    def read(self, name: str) -> list[dict[str, Any]]:
        """Each shard's next ``name`` event."""
        return [rt.read_event(proc, name) for proc in self.procs]

    def cpu_s(self) -> float:
        return sum(rt.proc_cpu_seconds(p.pid) for p in self.procs)

    def stop(self) -> None:
        self.tell("stop")
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _merged(events: list[dict[str, Any]], key: str) -> list[float]:
    return [value for event in events for value in event[key]]


def _pct(values: list[float], q: float) -> float:
    return rt._percentile(sorted(values), q) * 1e3


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def steady_window(csms: Csms, shards: Shards, args: argparse.Namespace,
                  idle_kib: int) -> None:
    time.sleep(args.warmup)
    health0, cpu0, gen0 = csms.health(), csms.cpu_s(), shards.cpu_s()
    shards.tell("measure")
    t0 = time.monotonic()
    time.sleep(args.seconds)
    shards.tell("report")
    window = time.monotonic() - t0
    events = shards.read("window")
    health1, cpu1, gen1 = csms.health(), csms.cpu_s(), shards.cpu_s()
    rss = csms.rss_kib()
    latencies = _merged(events, "latencies")
    by_action: dict[str, int] = {}
    for event in events:
        for action, count in event["by_action"].items():
            by_action[action] = by_action.get(action, 0) + count
    s0, s1 = health0["store"], health1["store"]
    commits = max(1, s1["commits"] - s0["commits"])
    per_conn = (rss - idle_kib) / args.chargers
    p99 = _pct(latencies, 0.99)
    print(f"\nsteady load, {window:.0f} s window ({args.warmup:.0f} s after the last boot)")
    print(f"  round trips        {len(latencies):,} ({len(latencies) / window:.0f}/s): "
          + ", ".join(f"{a} {n:,}" for a, n in sorted(by_action.items(), key=lambda x: -x[1])))
    print(f"  CALLERRORs         {sum(e['errors'] for e in events)}")
    print(f"  CSMS RSS           {rss / 1024:.0f} MiB; idle {idle_kib / 1024:.0f} MiB; "
          f"{per_conn:.1f} KiB per connection (target <= {TARGET_KIB_PER_CONNECTION:.0f}: "
          f"{_met(per_conn <= TARGET_KIB_PER_CONNECTION)})")
    print(f"  CSMS CPU           {100 * (cpu1 - cpu0) / window:.1f} % of one core "
          f"({1e6 * (cpu1 - cpu0) / max(1, len(latencies)):.0f} us per round trip)")
    print(f"  load generators    {100 * (gen1 - gen0) / window:.1f} % of one core, "
          f"RSS {sum(e['rss_kb'] for e in events) / 1024:.0f} MiB")
    print(f"  latency            p50 {_pct(latencies, 0.5):.1f} ms, p99 {p99:.1f} ms "
          f"(target < {TARGET_P99_MS:.0f}: {_met(p99 < TARGET_P99_MS)}), "
          f"max {_pct(latencies, 1.0):.1f} ms")
    print(f"  commits            {commits / window:.1f}/s; per commit "
          f"{(s1['flushes'] - s0['flushes']) / commits:.1f} answers, "
          f"{(s1['rowsWritten'] - s0['rowsWritten']) / commits:.1f} rows", flush=True)


def storm(csms: Csms, shards: Shards, args: argparse.Namespace, mode: str) -> None:
    time.sleep(args.warmup)
    killed_at = time.monotonic()
    shards.tell(f"storm {mode} {killed_at} {STORM_TIMEOUT_S}")
    shards.read("storm_armed")
    # Both sides count from the moment the shards were told; the kill follows at once.
    csms.kill()
    listening_at = csms.start()
    cpu0 = csms.cpu_s()
    csms.wait_api()
    events = shards.read("storm")
    back = sum(e["back"] for e in events)
    last = max(e["last_back_s"] for e in events)
    back_s = sorted(_merged(events, "back_s"))
    latencies = _merged(events, "latencies")
    failures: dict[str, int] = {}
    for event in events:
        for kind, count in event["failures"].items():
            failures[kind] = failures.get(kind, 0) + count
    health = csms.health()
    print(f"\nreconnect storm, {mode}: kill -9, restart on the same database")
    print(f"  listening again    {listening_at - killed_at:.1f} s after the kill")
    print(f"  booted again       {back:,} of {args.chargers:,}; the last {last:.1f} s after "
          f"the kill (target <= {TARGET_STORM_S:.0f} s: "
          f"{_met(back == args.chargers and last <= TARGET_STORM_S)}); half by "
          f"{back_s[len(back_s) // 2] if back_s else float('nan'):.1f} s")
    print(f"  attempts           at most {max(e['max_attempts'] for e in events)} by one "
          f"charger; failed: {failures or 'none'}")
    print(f"  latency            p50 {_pct(latencies, 0.5):.1f} ms, "
          f"p99 {_pct(latencies, 0.99):.1f} ms over {len(latencies):,} round trips")
    print(f"  CSMS               CPU {csms.cpu_s() - cpu0:.1f} s since listening; "
          f"{health['connections']:,} connected", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chargers", type=int, default=10_000)
    parser.add_argument("--shards", type=int, default=1,
                        help="load-generator processes (default: 1)")
    parser.add_argument("--seconds", type=float, default=120.0, help="steady window")
    parser.add_argument("--warmup", type=float, default=10.0,
                        help="seconds between the last boot and a measurement")
    parser.add_argument("--storms", nargs="*", choices=("jitter", "lockstep"),
                        default=["jitter", "lockstep"])
    parser.add_argument("--meter-interval", type=float, default=60.0)
    parser.add_argument("--heartbeat-interval", type=float, default=300.0)
    parser.add_argument("--session-minutes", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--csms-arg", action="append", default=[],
                        help="an extra argument for python -m csms (repeatable)")
    args = parser.parse_args(argv)
    if not 1 <= args.shards <= args.chargers:
        parser.error("need at least one charger per load generator (1 <= --shards <= "
                     "--chargers)")
    soft, hard = rt.raise_nofile_limit()
    print(f"{args.chargers:,} chargers x 2 connectors on one python -m csms; "
          f"{args.shards} load generator(s); {os.cpu_count()} CPUs shared; open files "
          f"limit {soft:,} (hard {hard:,})")
    with tempfile.TemporaryDirectory(prefix="fleet-scale-") as scratch:
        csms = Csms(Path(scratch), args.csms_arg)
        shards: Shards | None = None
        try:
            csms.start()
            csms.wait_api()  # start-up is over
            time.sleep(1.0)
            idle_kib = csms.rss_kib()
            t0 = time.monotonic()
            shards = Shards(args, csms.port)
            booted = shards.read("booted")
            charging = sum(e["charging"] for e in booted)
            print(f"booted {sum(e['chargers'] for e in booted):,} chargers in "
                  f"{time.monotonic() - t0:.1f} s; {charging:,} of {2 * args.chargers:,} "
                  f"connectors charging; CSMS RSS {csms.rss_kib() / 1024:.0f} MiB "
                  f"(idle {idle_kib / 1024:.0f} MiB)", flush=True)
            steady_window(csms, shards, args, idle_kib)
            for mode in args.storms:
                storm(csms, shards, args, mode)
        finally:
            if shards is not None:
                shards.stop()
            csms.stop()
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
