"""The benchmark scripts that split the simulator's time still run (tiny sizes, as
subprocesses): a benchmark that broke silently would report nothing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_floor(*args: str) -> dict[str, float]:
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "sim_floor.py"), *args],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    figures: dict[str, float] = json.loads(proc.stdout.splitlines()[-1])
    return figures


def test_transport_floor_makes_the_round_trips_it_was_asked_for() -> None:
    figures = run_floor("transport", "--chargers", "3", "--round-trips", "31")
    assert figures["part"] == "transport"
    assert figures["round_trips"] == 31
    assert figures["wall_s"] > 0


def test_simulator_part_runs_the_scenario_against_canned_answers() -> None:
    figures = run_floor("simulator", "--chargers", "1")
    assert figures["part"] == "simulator"
    # One charger, two EVSEs, one session each: boots, statuses, 2-6 h of MeterValues.
    assert figures["round_trips"] > 2 * 120


def test_realtime_fleet_benchmark_measures_both_processes() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "sim_fleet_realtime.py"), "--chargers", "3",
         "--seconds", "2.5", "--heartbeat-interval", "1", "--sessions", "0.02",
         "--settle", "0.5"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "3 chargers of 2 EVSEs, all booted" in proc.stdout
    assert "CSMS      CPU" in proc.stdout and "simulator CPU" in proc.stdout
    logged = re.search(r"frames logged by the CSMS in the window: (\d+)", proc.stdout)
    assert logged is not None and int(logged[1]) > 0  # heartbeats every second
    # Visits of 1.2 s on average: sessions start in a 2.5 s window.
    load = re.search(r"steady load: .* in the window (\d+) started", proc.stdout)
    assert load is not None and int(load[1]) > 0, proc.stdout
    assert re.search(r"simulator RSS per charger: -?[\d.]+ KiB", proc.stdout), proc.stdout


def test_shutdown_benchmark_measures_both_modes() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "shutdown_time.py"), "--chargers", "20"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line.strip().startswith("20 ")]
    assert [row[1] for row in rows] == ["quiet", "reconnecting"], proc.stdout
    for row in rows:
        # connected, exit code 0, no handshake after the signal, everyone closed with 1001
        assert (row[2], row[4], row[5], row[6]) == ("20", "0", "0", "20"), proc.stdout


def test_fleet_scale_benchmark_measures_the_steady_load_and_both_storms() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "fleet_scale.py"), "--chargers", "20",
         "--shards", "2", "--seconds", "3", "--warmup", "0.5", "--meter-interval", "1",
         "--heartbeat-interval", "2", "--session-minutes", "0.05"],
        capture_output=True, text=True, timeout=180, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "booted 20 chargers" in out, out
    for figure in ("KiB per connection", "% of one core", "per commit"):
        assert figure in out, out
    # Sessions start and stop in the window: the realistic mix, not one message kind.
    round_trips = re.search(r"round trips +[\d,]+ \(\d+/s\): (.*)", out)
    assert round_trips is not None, out
    for action in ("MeterValues", "StatusNotification", "StartTransaction", "StopTransaction"):
        assert action in round_trips[1], out
    assert "CALLERRORs         0" in out
    # Both storms: every charger booted again after the kill -9 and the restart.
    assert re.findall(r"booted again +(\d+) of 20;", out) == ["20", "20"], out


def test_rpc_benchmark_compares_our_csms_with_the_transport_floor() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "rpc_throughput.py"), "--clients", "5",
         "--seconds", "0.5", "--warmup", "0.2", "--servers", "csms", "floor",
         "--phases", "metervalues", "realistic", "--rounds", "2"],
        capture_output=True, text=True, timeout=180, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for phase in ("metervalues", "realistic"):
        # Both servers answered in both phases, in both rounds (interleaved), and the
        # median ratio to the floor is printed with each round's.
        for server in ("A  csms", "F  trio-websocket floor"):
            for round_no in (1, 2):
                row = re.search(rf"^{server}.* #{round_no}\s+5 {phase}\s+(\d+)", proc.stdout,
                                re.MULTILINE)
                assert row is not None and int(row[1]) > 0, proc.stdout
        assert re.search(rf"the floor's, N=5, {phase}: A \d+ us / F \d+ us = [\d.]+x "
                         rf"\(median of 2 rounds: [\d.]+x, [\d.]+x\)", proc.stdout), proc.stdout
