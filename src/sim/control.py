"""The running fleet's control socket (``start-sim`` serves it; ``inject``, ``clear``,
``inject-fault`` and ``stop-sim`` talk to it): a Unix socket, one JSON line in, one JSON
line out."""

from __future__ import annotations

import datetime
import functools
import json
import logging
import os
import random
import signal
import socket
import tempfile
from pathlib import Path
from typing import Any

import attrs
import trio

from sim.behaviour import BehaviourError, behaviour_from_spec, combined
from sim.config import SimConfig
from sim.evse import Action
from sim.incidents import incident_from_spec
from sim.simulator_runner import Fleet, charger_id
from sim.steady_load import LoadCounts, SteadyLoad, drive

log = logging.getLogger("sim.control")

MAX_LINE = 64 * 1024


class ControlError(Exception):
    """The running fleet cannot be reached."""


def default_control_path() -> Path:
    """Where ``start-sim`` listens unless told otherwise."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"trio-csms-sim-{os.getuid()}.sock"


async def send_command(path: Path, request: dict[str, Any]) -> dict[str, Any]:
    """Send one command to the fleet at ``path``; its answer.

    Raises:
        ControlError: no fleet is listening there.
    """
    try:
        with trio.fail_after(30):
            stream = await trio.open_unix_socket(str(path))
            async with stream:
                await stream.send_all(json.dumps(request).encode() + b"\n")
                data = b""
                while not data.endswith(b"\n"):
                    chunk = await stream.receive_some(MAX_LINE)
                    if not chunk:
                        break
                    data += chunk
    except (OSError, trio.TooSlowError) as exc:
        raise ControlError(f"no running simulator at {path} ({exc})") from None
    try:
        answer: dict[str, Any] = json.loads(data)
    except ValueError:
        raise ControlError(f"the simulator at {path} answered garbage") from None
    return answer


def _evse_number(name: str) -> int | None:
    digits = name.upper().removeprefix("EVSE_")
    return int(digits) if digits.isdigit() else None


def _no_charger(fleet: Fleet, charger: str) -> dict[str, Any]:
    ids = list(fleet.chargers)
    have = f"{ids[0]}..{ids[-1]}" if ids else "none"
    return {"ok": False, "message": f"no charger {charger} (have {have})"}


async def _misbehave(fleet: Fleet, request: dict[str, Any]) -> dict[str, Any]:
    """``inject`` (a behaviour, or the network failing) and ``clear``."""
    charger = str(request.get("charger"))
    cp = fleet.chargers.get(charger)
    if cp is None:
        return _no_charger(fleet, charger)
    if request["command"] == "clear":
        cp.clear_misbehaviour()
        return {"ok": True, "message": f"{charger}: an ideal charger again, network up"}
    if "incident" in request:
        try:
            incident = incident_from_spec(request["incident"])
        except BehaviourError as exc:
            return {"ok": False, "message": str(exc)}
        cp.after(functools.partial(cp.run_incident, incident))
        if incident.kind == "reboot":
            lost = ", its transactions forgotten" if incident.lose_transactions else ""
            return {"ok": True, "message": f"{charger}: rebooting{lost}"}
        how = "stalled" if incident.stall else "down"
        return {"ok": True, "message": f"{charger}: network {how} for {incident.for_s:g} s"}
    try:
        behaviour = behaviour_from_spec(request.get("behaviour"))
    except BehaviourError as exc:
        return {"ok": False, "message": str(exc)}
    cp.behaviour = combined([cp.behaviour, behaviour])
    cp.after(cp.reevaluate)  # what it draws changes now, not at its next meter tick
    return {"ok": True, "message": f"{charger}: {request['behaviour']['kind']} "
            f"(now {cp.behaviour!r})"}


async def _execute(fleet: Fleet, request: Any, stop: trio.Event) -> dict[str, Any]:
    if not isinstance(request, dict):
        return {"ok": False, "message": "expected a JSON object"}
    command = request.get("command")
    if command == "stop-sim":
        stop.set()
        return {"ok": True, "message": f"stopping {len(fleet.chargers)} chargers"}
    if command in ("inject", "clear"):
        return await _misbehave(fleet, request)
    if command == "inject-fault":
        charger, evse_name = str(request.get("charger")), str(request.get("evse"))
        cp = fleet.chargers.get(charger)
        if cp is None:
            return _no_charger(fleet, charger)
        number = _evse_number(evse_name)
        if number is None or number not in cp.evses:
            return {"ok": False, "message": f"{charger} has no {evse_name} "
                    f"(has EVSE_1..EVSE_{len(cp.evses)})"}
        evse = cp.evses[number]
        if not evse.fsm.can(Action.FAULT):
            # Faulting it again would raise IllegalTransition here and end the fleet.
            return {"ok": False, "message": f"{charger} EVSE_{number} is already "
                    f"{evse.fsm.state.value}"}
        before = evse.fsm.state.value
        had_tx = evse.transaction is not None
        await cp.fault(number, str(request.get("error_code") or "GroundFailure"))
        stopped = " (its transaction was stopped)" if had_tx else ""
        return {"ok": True, "message": f"{charger} EVSE_{number}: {before} -> "
                f"{evse.fsm.state.value} ({evse.error_code}){stopped}"}
    return {"ok": False, "message": f"unknown command {command!r}"}


async def _serve_control(path: Path, fleet: Fleet, stop: trio.Event,
                         task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    socket_file = trio.Path(path)
    if await socket_file.exists():
        try:
            await send_command(path, {"command": "ping"})
        except ControlError:
            await socket_file.unlink()  # left over by a fleet that died
        else:
            raise ControlError(f"a simulator already runs at {path}")
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(str(path))
    sock.listen(16)
    listener = trio.SocketListener(sock)

    async def handle(stream: trio.abc.Stream) -> None:
        async with stream:
            try:
                data = b""
                with trio.fail_after(10):
                    while not data.endswith(b"\n") and len(data) < MAX_LINE:
                        chunk = await stream.receive_some(MAX_LINE)
                        if not chunk:
                            break
                        data += chunk
                try:
                    request = json.loads(data)
                except ValueError:
                    request = None
                answer = await _execute(fleet, request, stop)
                await stream.send_all(json.dumps(answer).encode() + b"\n")
            except (trio.TooSlowError, trio.BrokenResourceError, OSError) as exc:
                log.info("control connection failed: %s", exc)

    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, handle, [listener])
            task_status.started()
    finally:
        with trio.CancelScope(shield=True):
            await socket_file.unlink(missing_ok=True)


@attrs.frozen
class FleetPlan:
    """What ``start-sim`` runs: ``count`` chargers of ``evses`` EVSEs numbered from
    ``first`` (a shard of a larger fleet starts past 1), and, with ``sessions_s``, a
    steady load whose visits and pauses last ``sessions_s`` on average (sim.steady_load)."""

    count: int
    evses: int
    first: int = 1
    shard: str = ""
    sessions_s: float | None = None


async def serve_fleet(url: str, config: SimConfig, plan: FleetPlan, seed: int | str,
                      control: Path) -> None:
    """Run ``plan``'s chargers against ``url`` until stop-sim, SIGINT or SIGTERM."""
    stop = trio.Event()
    counts = LoadCounts()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            fleet = Fleet(url, config, clock=lambda: datetime.datetime.now(datetime.UTC),
                          rng=random.Random(seed), nursery=nursery, record=False,
                          first_number=plan.first)
            await nursery.start(_serve_control, control, fleet, stop)

            async def on_signal() -> None:
                async for _ in signals:
                    stop.set()
                    return

            nursery.start_soon(on_signal)
            shard = f" (shard {plan.shard})" if plan.shard else ""
            last = plan.first + plan.count - 1
            print(f"starting {charger_id(plan.first)}..{charger_id(last)}{shard} against {url}",
                  flush=True)
            chargers = await fleet.spawn(plan.count, evses=plan.evses)
            load_scope = trio.CancelScope()  # the load stops before the chargers do
            load = ""
            if plan.sessions_s is not None:
                steady = SteadyLoad(plan.sessions_s, random.Random(fleet.rng.random()))
                steady.add(chargers, trio.current_time(),
                           min(config.meter_interval, plan.sessions_s))

                async def run_load() -> None:
                    with load_scope:
                        await drive(steady, config, fleet.wheel, nursery, counts)

                nursery.start_soon(run_load)
                load = f"; sessions of {plan.sessions_s / 60:g} min on average"
            print(f"{plan.count} chargers of {plan.evses} EVSEs{shard} against {url}"
                  f"{load}; control socket {control}", flush=True)
            await stop.wait()
            load_scope.cancel()
            if plan.sessions_s is not None:
                log.info("steady load: %s", counts)
            with trio.move_on_after(30):
                await fleet.stop()
            nursery.cancel_scope.cancel()
