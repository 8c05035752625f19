"""How long the simulator takes to live through an 8-hour morning in virtual time.

Runs ``python -m sim scenario morning_rush --chargers N`` (in-process CSMS, embedded
SQLite, real loopback WebSockets, virtual time) as a subprocess for each N and prints its
wall time, CPU time (user + sys, all threads) and peak RSS, with the number of OCPP
messages the run exchanged. Target (issue: simulator): 50 chargers in under 10 s of wall
time on a 2-core machine.

With ``--breakdown`` it also runs, for each N, the two parts of ``sim_floor.py``: the
transport floor (trio-websocket alone, the same number of round trips, in virtual time)
and the simulator against canned answers (no CSMS), and splits the full run's wall time
into transport, simulated chargers, and CSMS (with the smart-charging traffic it causes).

    .venv/bin/python benchmarks/sim_morning_rush.py --chargers 20 50
    .venv/bin/python benchmarks/sim_morning_rush.py --chargers 50 --breakdown
    .venv/bin/python benchmarks/sim_morning_rush.py --scenario unruly_fleet --chargers 24
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


def run(chargers: int, seed: int, scenario: str = "morning_rush") -> dict[str, float]:
    """One run; its figures."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "sim", "scenario", scenario, "--chargers",
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
        "round_trips": totals.get("calls_sent", 0) + totals.get("calls_received", 0),
    }


def run_floor(part: str, chargers: int, round_trips: int) -> dict[str, float]:
    """One part of sim_floor.py, in its own process; its figures."""
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("sim_floor.py")), part, "--chargers",
         str(chargers), "--round-trips", str(round_trips)],
        capture_output=True, text=True, timeout=900, check=True,
    )
    figures: dict[str, float] = json.loads(proc.stdout.splitlines()[-1])
    return figures


def breakdown(full: dict[str, float]) -> None:
    """Split the full run's wall time; print it against the target."""
    n, rts = int(full["chargers"]), int(full["round_trips"])
    transport = run_floor("transport", n, rts)
    simulator = run_floor("simulator", n, rts)
    sim_rts = int(simulator["round_trips"])
    per_rt = {k: 1e6 * v["wall_s"] / v["round_trips"]
              for k, v in (("transport", transport), ("simulator", simulator))}
    sim_side = simulator["wall_s"] - per_rt["transport"] * sim_rts / 1e6
    print(f"\nbreakdown of the {n}-charger run ({rts} round trips, {full['wall_s']:.2f} s wall):")
    print(f"  transport floor, trio-websocket alone, {rts} round trips: "
          f"{transport['wall_s']:.2f} s ({per_rt['transport']:.0f} us per round trip)")
    print(f"  simulator against canned answers, {sim_rts} round trips: "
          f"{simulator['wall_s']:.2f} s ({per_rt['simulator']:.0f} us per round trip); "
          f"the chargers' side above the floor: {sim_side:.2f} s")
    csms = full["wall_s"] - simulator["wall_s"]
    print(f"  the CSMS, its SQLite commits and the {rts - sim_rts} round trips it adds: "
          f"{csms:.2f} s")
    if n != 50:
        return
    budget = 1e6 * TARGET_S / rts
    print(f"  the target allows {budget:.0f} us per round trip; the floor takes "
          f"{per_rt['transport']:.0f}, leaving {budget - per_rt['transport']:.0f} us for both "
          f"sides' OCPP, the CSMS's domain and commits, and the chargers' model")


def main() -> None:
    """Run and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chargers", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scenario", default="morning_rush",
                        help="another built-in scenario, e.g. unruly_fleet (no --breakdown)")
    parser.add_argument("--breakdown", action="store_true",
                        help="split each run's time into transport, chargers and CSMS")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; python {sys.version.split()[0]}; {args.scenario}, 2 EVSEs "
          "per charger, in-process CSMS, virtual time")
    print(f"{'chargers':>8} {'exit':>4} {'wall s':>8} {'cpu s':>8} {'peak RSS MB':>11} "
          f"{'sessions':>8} {'kWh':>9} {'profiles':>8} {'round trips':>11}")
    for n in args.chargers:
        r = run(n, args.seed, args.scenario)
        print(f"{r['chargers']:>8} {r['exit']:>4} {r['wall_s']:>8.2f} {r['cpu_s']:>8.2f} "
              f"{r['rss_mb']:>11.1f} {r['sessions']:>8} {r['energy_kwh']:>9.1f} "
              f"{r['profiles']:>8} {r['round_trips']:>11}")
        if n == 50 and args.scenario == "morning_rush":
            verdict = "met" if r["wall_s"] < TARGET_S else "NOT MET"
            print(f"target: 50 chargers in < {TARGET_S:.0f} s wall: {verdict}")
        if args.breakdown:
            breakdown(r)


if __name__ == "__main__":
    main()
