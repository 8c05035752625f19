"""A long-running fleet in real time: ``start-sim --chargers N`` against a separate CSMS.

Starts ``python -m csms`` (free ports, a temporary SQLite file) and
``python -m sim start-sim --chargers N --evses 2`` against it, waits until every charger
is connected and booted, then measures both processes over a window of real time: CPU
(user + sys, as a share of one core), resident memory, and the OCPP frames the CSMS
logged. Ends with ``stop-sim`` and SIGTERM. Target (issue: simulator): ``start-sim
--chargers 100`` holds 100 chargers in real time; report CPU and memory.

    .venv/bin/python benchmarks/sim_fleet_realtime.py --chargers 100 --seconds 60
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import IO

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_for(stream: IO[str], pattern: str, timeout: float) -> re.Match[str]:
    """The first line of ``stream`` matching ``pattern``, within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        if match := re.search(pattern, line):
            return match
    raise SystemExit(f"no line matching {pattern!r} within {timeout} s")


def _listening_port(log: Path, timeout: float = 30.0) -> int:
    """The OCPP port the CSMS logged (it logs to a file: a pipe nobody reads would fill)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if match := re.search(r"listening on ws://[\d.]+:(\d+)/", log.read_text()):
            return int(match[1])
        time.sleep(0.1)
    raise SystemExit(f"the CSMS did not start listening:\n{log.read_text()}")


def count(db: Path, sql: str) -> int:
    """One number from the CSMS's database (read-only; WAL lets it read beside the writer)."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return int(conn.execute(sql).fetchone()[0])


def main() -> None:
    """Run, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chargers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window")
    parser.add_argument("--heartbeat-interval", type=int, default=300,
                        help="given to the chargers by the CSMS (default: %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db, control = Path(tmp) / "csms.db", Path(tmp) / "ctl.sock"
        log = (Path(tmp) / "csms.log").open("w")
        csms = subprocess.Popen(
            [sys.executable, "-m", "csms", "--port", "0", "--api-port", "0", "--db", str(db),
             "--heartbeat-interval", str(args.heartbeat_interval)],
            stderr=log,
        )
        fleet = None
        try:
            port = _listening_port(Path(log.name))
            url = f"ws://127.0.0.1:{port}/ocpp"
            started = time.monotonic()
            fleet = subprocess.Popen(
                [sys.executable, "-m", "sim", "start-sim", "--chargers", str(args.chargers),
                 "--evses", "2", "--url", url, "--control", str(control)],
                stdout=subprocess.PIPE, text=True,
            )
            assert fleet.stdout is not None
            wait_for(fleet.stdout, "control socket", 120)
            booted = "SELECT COUNT(*) FROM message_log WHERE frame LIKE '%\"BootNotification\"%'"
            while count(db, booted) < args.chargers:
                time.sleep(0.2)
            ready = time.monotonic() - started
            frames = "SELECT COUNT(*) FROM message_log"
            before = (cpu_seconds(csms.pid), cpu_seconds(fleet.pid), count(db, frames))
            time.sleep(args.seconds)
            after = (cpu_seconds(csms.pid), cpu_seconds(fleet.pid), count(db, frames))
            figures = [
                ("CSMS", csms.pid, after[0] - before[0]),
                ("simulator", fleet.pid, after[1] - before[1]),
            ]
            print(f"{args.chargers} chargers of 2 EVSEs, all booted {ready:.1f} s after start-sim; "
                  f"heartbeat interval {args.heartbeat_interval} s; {args.seconds:g} s window")
            for name, pid, cpu in figures:
                print(f"  {name:<9} CPU {100 * cpu / args.seconds:5.1f} % of one core, "
                      f"RSS {rss_mb(pid):6.1f} MB")
            print(f"  frames logged by the CSMS in the window: {after[2] - before[2]}")
            subprocess.run([sys.executable, "-m", "sim", "stop-sim", "--control", str(control)],
                           check=True, capture_output=True, timeout=60)
            fleet.wait(timeout=60)
        finally:
            for process in (fleet, csms):
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    process.wait(timeout=30)
            log.close()


if __name__ == "__main__":
    main()
