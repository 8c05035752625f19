"""How long the simulator takes to live through an 8-hour morning in virtual time.

Runs ``python -m sim scenario morning_rush --chargers N`` (in-process CSMS, embedded
SQLite, real loopback WebSockets, virtual time) as a subprocess for each N and prints its
wall time, CPU time (user + sys, all threads) and peak RSS, with the number of OCPP
messages the run exchanged. Target (issue: simulator): 50 chargers in under 10 s of wall
time on a 2-core machine.

    .venv/bin/python benchmarks/sim_morning_rush.py --chargers 20 50
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 10.0


def run(chargers: int, seed: int) -> dict[str, float]:
    """One run; its figures."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "sim", "scenario", "morning_rush", "--chargers",
             str(chargers), "--seed", str(seed), "--report", str(report)],
            capture_output=True, text=True, timeout=900, check=False,
        )
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        data = json.loads(report.read_text()) if report.exists() else {}
    totals = data.get("totals", {})
    return {
        "chargers": chargers,
        "exit": proc.returncode,
        "wall_s": wall,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "rss_mb": after.ru_maxrss / 1024,
        "sessions": totals.get("sessions", 0),
        "energy_kwh": totals.get("energy_kwh", 0.0),
        "profiles": totals.get("profiles_received", 0),
    }


def main() -> None:
    """Run and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chargers", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; python {sys.version.split()[0]}; morning_rush, 2 EVSEs per "
          "charger, 8 h virtual, in-process CSMS")
    print(f"{'chargers':>8} {'exit':>4} {'wall s':>8} {'cpu s':>8} {'peak RSS MB':>11} "
          f"{'sessions':>8} {'kWh':>9} {'profiles':>8}")
    for n in args.chargers:
        r = run(n, args.seed)
        print(f"{r['chargers']:>8} {r['exit']:>4} {r['wall_s']:>8.2f} {r['cpu_s']:>8.2f} "
              f"{r['rss_mb']:>11.1f} {r['sessions']:>8} {r['energy_kwh']:>9.1f} "
              f"{r['profiles']:>8}")
        if n == 50:
            verdict = "met" if r["wall_s"] < TARGET_S else "NOT MET"
            print(f"target: 50 chargers in < {TARGET_S:.0f} s wall: {verdict}")


if __name__ == "__main__":
    main()
