"""A long-running fleet in real time: ``start-sim --chargers N`` against a separate CSMS.

Starts ``python -m csms`` (free ports, a temporary SQLite file) and
``python -m sim start-sim --chargers N --evses 2`` against it, waits until every charger
is connected and booted, then measures both processes over a window of real time: CPU
(user + sys, as a share of one core), resident memory, and the OCPP frames the CSMS
logged. Ends with ``stop-sim`` and SIGTERM. Target (issue: simulator): ``start-sim
--chargers 100`` holds 100 chargers in real time; report CPU and memory.

With ``--sessions M`` the fleet runs ``start-sim``'s steady load (half the EVSEs charging,
visits and pauses of M minutes on average, MeterValues every 60 s per charging EVSE): the
window then starts ``--settle`` seconds after the last boot, once the first arrivals are
in, and the simulator's RSS per charger is printed (above its RSS when it printed that
it starts its chargers). Target (issue 17): at most 60 KiB per simulated charger.

    .venv/bin/python benchmarks/sim_fleet_realtime.py --chargers 100 --seconds 60
    .venv/bin/python benchmarks/sim_fleet_realtime.py --chargers 10000 --sessions 30

Both processes inherit this one's open-files limit, raised to the hard limit (``start-sim``
also raises its own when it needs to).
"""

from __future__ import annotations

import argparse
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

sys.path.insert(0, str(Path(__file__).parent))

import rpc_throughput as rt  # a sibling script, not a package


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB."""
    return rt.proc_status(pid).get("VmRSS", 0) / 1024


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
    parser.add_argument("--sessions", type=float, metavar="MINUTES",
                        help="start-sim's steady load, visits and pauses of MINUTES on average")
    parser.add_argument("--settle", type=float, default=90.0,
                        help="with --sessions: seconds between the last boot and the window "
                        "(default: %(default)s; the first arrivals take a meter interval)")
    args = parser.parse_args()
    rt.raise_nofile_limit()
    with tempfile.TemporaryDirectory() as tmp:
        db, control = Path(tmp) / "csms.db", Path(tmp) / "ctl.sock"
        log = (Path(tmp) / "csms.log").open("w")
        csms = subprocess.Popen(
            [sys.executable, "-m", "csms", "--port", "0", "--api-port", "0", "--db", str(db),
             "--heartbeat-interval", str(args.heartbeat_interval),
             "--unknown-id-tags", "accept"],  # start-sim's idTags are {charger}-{connector}
            stderr=log,
        )
        fleet = None
        try:
            port = _listening_port(Path(log.name))
            url = f"ws://127.0.0.1:{port}/ocpp"
            started = time.monotonic()
            load = [] if args.sessions is None else ["--sessions", str(args.sessions)]
            fleet = subprocess.Popen(
                [sys.executable, "-m", "sim", "start-sim", "--chargers", str(args.chargers),
                 "--evses", "2", "--url", url, "--control", str(control), *load],
                stdout=subprocess.PIPE, text=True,
            )
            assert fleet.stdout is not None
            wait_for(fleet.stdout, "starting CP_", 60)
            idle_rss = rss_mb(fleet.pid)  # imported, running, no charger yet
            wait_for(fleet.stdout, "control socket", 600)
            booted = "SELECT COUNT(*) FROM message_log WHERE frame LIKE '%\"BootNotification\"%'"
            while count(db, booted) < args.chargers:
                time.sleep(0.2)
            ready = time.monotonic() - started
            if args.sessions is not None:
                time.sleep(args.settle)
            frames = "SELECT COUNT(*) FROM message_log"
            starts = ("SELECT COUNT(*) FROM message_log WHERE frame LIKE "
                      "'%\"StartTransaction\"%'")
            meter_values = "SELECT COUNT(*) FROM message_log WHERE frame LIKE '%\"MeterValues\"%'"
            before = (rt.proc_cpu_seconds(csms.pid), rt.proc_cpu_seconds(fleet.pid),
                      count(db, frames), count(db, starts), count(db, meter_values))
            time.sleep(args.seconds)
            after = (rt.proc_cpu_seconds(csms.pid), rt.proc_cpu_seconds(fleet.pid),
                     count(db, frames), count(db, starts), count(db, meter_values))
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
            if args.sessions is not None:
                charging = count(db, "SELECT COUNT(*) FROM sessions WHERE open = 1")
                print(f"  steady load: sessions of {args.sessions:g} min on average; "
                      f"{charging} sessions open at the CSMS at the end "
                      f"({100 * charging / (2 * args.chargers):.0f} % of the EVSEs); in the "
                      f"window {after[3] - before[3]} started (frames) and "
                      f"{after[4] - before[4]} MeterValues frames")
            per_charger = (rss_mb(fleet.pid) - idle_rss) * 1024 / args.chargers
            print(f"  simulator RSS per charger: {per_charger:.1f} KiB above its "
                  f"{idle_rss:.1f} MB before the first charger (target at load: <= 60 KiB)")
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
