"""What an in-process morning costs below the CSMS: the transport floor, and the simulator.

`sim_morning_rush.py --breakdown` runs this twice, as subprocesses, next to the full
``python -m sim scenario morning_rush`` run, so that its wall time can be split:

* ``transport``: trio-websocket and nothing else, in one trio process on trio's
  ``MockClock`` (autojump), over loopback: N connections to a server that answers every
  CALL with a canned CALLRESULT (``trio_websocket_floor_server.handle``). The clients send
  MeterValues frames of the simulator's size, two per charger on minute ticks (as in
  the real run: a charger's meter loop ticks every 60 s from its start, and the fleet
  starts together), as many round trips in all as the full run made. No OCPP parsing or
  validation, no second task per connection, no state, no storage. An in-process run
  with that many round trips cannot be faster on the design's WebSocket layer and clock.
* ``simulator``: the real scenario and the real simulated chargers, in-process on the
  same virtual clock, against that canned-answer server instead of the CSMS. It costs
  what the chargers' side costs (their RPC engine, meter model, queues and timers) plus
  the transport; no smart charging happens, so no SetChargingProfile is sent.

    .venv/bin/python benchmarks/sim_floor.py transport --chargers 50 --round-trips 29900
    .venv/bin/python benchmarks/sim_floor.py simulator --chargers 50

Each prints one JSON line: wall and CPU seconds, and round trips.
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import trio
import trio.testing
from trio_websocket import open_websocket_url, serve_websocket

sys.path.insert(0, str(Path(__file__).resolve().parent))
import trio_websocket_floor_server as canned
from csms.smart.site import SiteConfig
from sim.config import load_config
from sim.simulator_runner import VIRTUAL_EPOCH, _run, drive_virtual_clock, load_scenario

# sim.simulator_runner._run is the fleet-and-scenario part of a run, which the in-process
# mode wraps around the CSMS; here it is wrapped around the canned-answer server instead.

HOURS = 8.0

#: A MeterValues request as the simulator sends it on a three-phase EVSE.
_SAMPLED = [
    {"value": "12345.6", "context": "Sample.Periodic", "measurand": m, "location": loc,
     "unit": unit, **({"phase": phase} if phase else {})}
    for m, loc, unit, phase in [
        ("Energy.Active.Import.Register", "Outlet", "Wh", None),
        ("Power.Active.Import", "Outlet", "W", None),
        ("Current.Import", "Outlet", "A", "L1"),
        ("Current.Import", "Outlet", "A", "L2"),
        ("Current.Import", "Outlet", "A", "L3"),
        ("SoC", "EV", "Percent", None),
    ]
]
METER_VALUES = {"connectorId": 1, "transactionId": 17, "meterValue": [
    {"timestamp": "2026-01-05T08:00:00Z", "sampledValue": _SAMPLED}]}


async def _charger(url: str, times: list[float], done: list[int]) -> None:
    async with open_websocket_url(url, subprotocols=["ocpp1.6"]) as ws:
        t0 = trio.current_time()
        for i, at in enumerate(times):
            await trio.sleep_until(t0 + at)
            await ws.send_message(orjson.dumps([2, str(i), "MeterValues", METER_VALUES]).decode())
            await ws.get_message()
            done[0] += 1


async def transport(chargers: int, round_trips: int) -> int:
    """``round_trips`` MeterValues round trips from ``chargers`` connections; the count."""
    rng = random.Random(1)
    done = [0]
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, canned.handle, "127.0.0.1", 0, None)
        minutes = int(HOURS * 60)
        async with trio.open_nursery() as clients:
            for k in range(chargers):
                # An even share of the round trips, two (one per EVSE) on each chosen tick.
                share = round_trips // chargers + (k < round_trips % chargers)
                ticks = sorted(rng.sample(range(minutes), (share + 1) // 2))
                times = [60.0 * t for t in ticks for _ in range(2)][:share]
                url = f"ws://127.0.0.1:{server.port}/ocpp/CP_{k + 1:02d}"
                clients.start_soon(_charger, url, times, done)
        nursery.cancel_scope.cancel()
    return done[0]


async def simulator(chargers: int) -> int:
    """morning_rush with ``chargers`` chargers against canned answers; its round trips."""
    module = load_scenario("morning_rush")
    config = load_config(None)  # the project's config.yaml, as the sim CLI reads it
    params: dict[str, Any] = {**module.PARAMETERS, "chargers": chargers}
    t0 = trio.current_time()

    def virtual_now() -> datetime.datetime:
        return VIRTUAL_EPOCH + datetime.timedelta(seconds=trio.current_time() - t0)

    async def never_busy() -> bool:
        return False

    clock = trio.lowlevel.current_clock()
    assert isinstance(clock, trio.testing.MockClock)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, canned.handle, "127.0.0.1", 0, None)
        nursery.start_soon(drive_virtual_clock, clock, never_busy)
        report = await _run(module, config, params, random.Random(config.seed),
                            f"ws://127.0.0.1:{server.port}/ocpp", virtual_now, SiteConfig())
        nursery.cancel_scope.cancel()
    return int(report.totals["calls_sent"]) + int(report.totals["calls_received"])


def main() -> None:
    """Run one part and print its figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["transport", "simulator"])
    parser.add_argument("--chargers", type=int, default=50)
    parser.add_argument("--round-trips", type=int, default=30_000)
    args = parser.parse_args()
    if args.chargers < 1:
        parser.error("need at least one charger")
    if args.part == "transport" and not (
        0 < args.round_trips <= 2 * int(HOURS * 60) * args.chargers
    ):
        parser.error(f"at most two round trips per charger per minute of the {HOURS:g} h")
    wall, cpu = time.perf_counter(), time.process_time()
    if args.part == "transport":
        count = trio.run(transport, args.chargers, args.round_trips,
                         clock=trio.testing.MockClock(autojump_threshold=0))
    else:
        count = trio.run(simulator, args.chargers, clock=trio.testing.MockClock())
    print(json.dumps({"part": args.part, "chargers": args.chargers, "round_trips": count,
                      "wall_s": time.perf_counter() - wall,
                      "cpu_s": time.process_time() - cpu}))


if __name__ == "__main__":
    main()
