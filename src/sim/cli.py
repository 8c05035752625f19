"""``python -m sim``: run scenarios and long-running fleets.

Exit codes: 0 success, 1 a scenario check failed (or the run differs from its baseline),
2 bad usage or configuration, 3 cannot reach the CSMS or the running simulator.
"""

from __future__ import annotations

import argparse
import logging
import math
import resource
import sys
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio
import trio.testing

from sim import behaviour, incidents
from sim.baseline import BaselineError
from sim.config import ConfigError, SimConfig, load_config
from sim.control import (
    ControlError,
    FleetPlan,
    default_control_path,
    send_command,
    serve_fleet,
)
from sim.outputs import Outputs, default_baseline
from sim.progress import Progress
from sim.progress import wanted as progress_wanted
from sim.shard import ShardError, parse_shard, shard_numbers
from sim.simulator_runner import ScenarioError, find_scenario, load_scenario, run_scenario
from sim.site_view import SiteError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3

log = logging.getLogger("sim")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sim",
        description="Simulated OCPP 1.6J charge points that talk to a CSMS over real "
        "WebSockets. Exit codes: 0 ok, 1 scenario check failed or baseline differs, 2 bad "
        "usage or config, "
        "3 CSMS or simulator unreachable.",
    )
    parser.add_argument("--config", type=Path, default=None,
                        help="simulator configuration (default: the project's config.yaml)")
    parser.add_argument("--log-level", default="WARNING",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in ("scenario", "run-scenario"):
        scenario = commands.add_parser(name, help="run a scenario script and print its report")
        _scenario_arguments(scenario)
    start = commands.add_parser("start-sim", help="run a fleet until stop-sim")
    _start_arguments(start)
    fault = commands.add_parser("inject-fault", help="fault an EVSE of the running fleet")
    _fault_arguments(fault)
    inject = commands.add_parser(
        "inject", help="make a charger of the running fleet misbehave (or its network fail)",
        description="Examples: inject CP_03 offline --for 600; inject CP_03 offline --for 60 "
        "--stall; inject CP_05 ignore-profiles; inject CP_05 obey-fraction --factor 1.5; "
        "inject CP_05 slow-answers --delay 45 --actions SetChargingProfile; inject CP_05 "
        "metered-only --measurands Energy.Active.Import.Register; inject CP_02 reboot "
        "--lose-transactions. Behaviours add up; clear undoes them all.")
    _inject_arguments(inject)
    clear = commands.add_parser("clear", help="make a charger of the running fleet ideal "
                                "again (behaviours cleared, network back)")
    clear.add_argument("charger", help="e.g. CP_05")
    _control_argument(clear)
    stop = commands.add_parser("stop-sim", help="stop the running fleet gracefully")
    _control_argument(stop)
    return parser


def _control_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--control", type=Path, default=default_control_path(),
                        help="the running fleet's control socket (default: %(default)s)")


def _scenario_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="a scenario in scenarios/ (morning_rush …) or a .py file")
    parser.add_argument("--url", help="an external CSMS, e.g. ws://host:9000/ocpp (real time); "
                        "without it the CSMS runs in-process in virtual time")
    parser.add_argument("--seed", type=int, help="seed of all randomness (default: config)")
    parser.add_argument("--chargers", type=int, help="number of chargers (scenario parameter)")
    parser.add_argument("--evses", type=int, help="EVSEs per charger (scenario parameter)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any scenario parameter")
    parser.add_argument("--json", "--report", dest="json", type=Path, metavar="FILE",
                        help="also write the report as JSON")
    parser.add_argument("--html", type=Path, metavar="FILE",
                        help="also write a self-contained HTML report: plots, checks, "
                        "sessions (needs matplotlib: pip install 'trio-csms[report]')")
    parser.add_argument("--plot", type=Path, metavar="FILE.svg|png",
                        help="also write the site-power plot alone, SVG or PNG by the suffix")
    parser.add_argument("--junit", type=Path, metavar="FILE",
                        help="also write the checks as JUnit XML, one testcase per check")
    parser.add_argument("--baseline", nargs="?", const="", metavar="FILE",
                        help="compare the run with a stored report of the same scenario, "
                        "seed and parameters; exit 1 listing what changed beyond the "
                        "tolerances (default FILE: the scenario's baselines/NAME.json)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress display (shown only on a terminal, outside CI)")
    parser.add_argument("--update-baseline", action="store_true",
                        help="write this run as the baseline (the --baseline FILE, or the "
                        "default)")


def _start_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chargers", type=int, default=10)
    parser.add_argument("--evses", type=int, default=2)
    parser.add_argument("--url", help="the CSMS (default: the config's csms_url or "
                        "ws://127.0.0.1:9000/ocpp)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--sessions", type=float, metavar="MINUTES",
                        help="a steady load: every EVSE is free for MINUTES on average (an "
                        "exponential time), then an EV from the mix charges for MINUTES on "
                        "average, so half the EVSEs charge at any moment; each EVSE's idTag "
                        "is {chargePointId}-{connectorId} (default: no sessions)")
    parser.add_argument("--shard", metavar="K/N",
                        help="run shard K of N of a fleet of --chargers: N processes started "
                        "with the same --chargers run every charger once, no id twice "
                        "(default control socket: one per shard)")
    parser.add_argument("--control", type=Path, default=None,
                        help="the running fleet's control socket (default: "
                        f"{default_control_path()}, or with --shard K/N that path's stem "
                        "+ '-K')")


def _fault_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("charger", help="e.g. CP_01")
    parser.add_argument("evse", help="e.g. EVSE_2")
    parser.add_argument("--error-code", default="GroundFailure",
                        help="OCPP ChargePointErrorCode (default: %(default)s)")
    _control_argument(parser)


def _inject_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("charger", help="e.g. CP_05")
    parser.add_argument("kind", choices=[*behaviour.KINDS, *incidents.KINDS])
    parser.add_argument("--for", dest="seconds", type=float,
                        help="offline: seconds without network")
    parser.add_argument("--stall", action="store_true",
                        help="offline: TCP stays open, nothing is read or written")
    parser.add_argument("--lose-transactions", action="store_true",
                        help="reboot: forget the open transactions (no StopTransaction)")
    parser.add_argument("--factor", type=float, help="obey-fraction: limit x factor")
    parser.add_argument("--delay", help="slow-answers: seconds, or 'never'; obey-after: "
                        "seconds before a new limit is enforced")
    parser.add_argument("--actions", help="slow-answers: the CALLs it is slow on (a,b,...)")
    parser.add_argument("--measurands", help="metered-only: what its meter measures (a,b,...)")
    parser.add_argument("--evses", dest="on_evses",
                        help="only on these EVSEs (1,2,...; not for slow-answers)")
    _control_argument(parser)


def _inject_request(args: argparse.Namespace) -> dict[str, Any]:
    """The control request ``inject`` sends; the fleet checks the knobs."""
    request: dict[str, Any] = {"command": "inject", "charger": args.charger}
    if args.kind == "offline":
        if args.seconds is None:
            raise _Usage("inject offline: --for SECONDS is required")
        request["incident"] = {"kind": "offline", "at": 0, "for": args.seconds,
                               "stall": args.stall}
        return request
    if args.kind == "reboot":
        request["incident"] = {"kind": "reboot", "at": 0,
                               "lose_transactions": args.lose_transactions}
        return request
    spec: dict[str, Any] = {"kind": args.kind}
    if args.factor is not None:
        spec["factor"] = args.factor
    if args.delay is not None:
        spec["delay"] = args.delay if args.delay == "never" else _value(args.delay)
    for knob in ("actions", "measurands"):
        if getattr(args, knob) is not None:
            spec[knob] = getattr(args, knob)
    if args.on_evses is not None:
        spec["evses"] = [_value(n.strip().upper().removeprefix("EVSE_"))
                         for n in args.on_evses.split(",") if n.strip()]
    request["behaviour"] = spec
    return request


class _Usage(Exception):
    """A command line that argparse accepted but that says nothing sensible."""


def _value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "null": None}.get(text.lower(), text)


#: Parameters that count things a scenario cannot have none of.
_AT_LEAST_ONE = ("chargers", "evses")


def _require_count(where: str, value: int | float) -> None:
    """A count of chargers or EVSEs: at least 1, or ConfigError."""
    if value < 1:
        raise ConfigError(f"{where} must be at least 1, got {value!r}")


def _checked(scenario: str, key: str, value: Any, default: Any) -> Any:
    """``value`` for parameter ``key`` whose default is ``default``, or ConfigError.

    The default's type is the parameter's type: a number stays a number (an int where
    the default is an int), a flag a flag. Numbers are finite and not negative; counts of
    chargers and EVSEs are at least 1. A parameter whose default is None (unset) takes
    a number, or null.
    """
    where = f"scenario {scenario}: parameter {key!r}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} is true or false, got {value!r}")
        return value
    if isinstance(default, str):
        return str(value)
    if value is None and default is None:
        return None
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or (isinstance(default, int) and not isinstance(value, int)):
        kind = "an integer" if isinstance(default, int) else "a number"
        raise ConfigError(f"{where} is {kind}, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where} must be finite and not negative, got {value!r}")
    if key in _AT_LEAST_ONE:
        _require_count(where, value)
    return float(value) if isinstance(default, float) else value


def _params(module: Any, args: argparse.Namespace) -> dict[str, Any]:
    params = dict(getattr(module, "PARAMETERS", {}))
    overrides = {key: value for key, value in
                 (("chargers", args.chargers), ("evses", args.evses)) if value is not None}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        overrides[key] = _value(value)
    for key, value in overrides.items():
        if key not in params:
            known = ", ".join(sorted(params)) or "none"
            raise ConfigError(f"scenario {args.name} has no parameter {key!r} (has: {known})")
        params[key] = _checked(args.name, key, value, params[key])
    return params


async def _reachable(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    try:
        with trio.fail_after(5):
            stream = await trio.open_tcp_stream(parts.hostname or "127.0.0.1", port)
    except (OSError, trio.TooSlowError):
        return False
    await stream.aclose()
    return True


def _seed_scheduler(seed: int) -> None:
    """Make trio's scheduling order a function of the seed (it shuffles run batches with
    a module-level Random; hypothesis seeds the same object for the same reason)."""
    scheduler_random = getattr(getattr(trio, "_core", None), "_run", None)
    rng = getattr(scheduler_random, "_r", None)
    if rng is not None:
        rng.seed(seed)


def cmd_scenario(args: argparse.Namespace, config: SimConfig) -> int:
    """Run one scenario; print its report."""
    module = load_scenario(args.name)
    scenario_file = find_scenario(args.name)
    params = _params(module, args)
    outputs = _outputs(args, scenario_file)
    outputs.check()
    if args.seed is not None:
        config = SimConfig(config.csms_url, args.seed, config.meter_interval,
                           config.heartbeat_interval, config.chargers, config.ev_mix)
    baseline = outputs.load_baseline(scenario_file.stem, config.seed, params)
    url = args.url or config.csms_url
    hours = params.get("hours")
    progress = Progress(scenario_file.stem,
                        hours * 3600 if isinstance(hours, int | float) else None,
                        enabled=not args.no_progress and progress_wanted(sys.stderr))
    if url is not None:
        if not trio.run(_reachable, url):
            print(f"cannot reach the CSMS at {url}", file=sys.stderr)
            return EXIT_UNREACHABLE
        with progress:
            report = trio.run(lambda: run_scenario(
                module, config, params, url=url, clock=None, on_start=progress.watch))
    else:
        _seed_scheduler(config.seed)
        clock = trio.testing.MockClock()
        with progress:
            report = trio.run(lambda: run_scenario(
                module, config, params, url=None, clock=clock, on_start=progress.watch),
                clock=clock)
    print(report.to_text())
    outputs.write(report)
    same, said = outputs.against_baseline(report, baseline)
    if said:
        print(said)
    return EXIT_OK if report.passed and same else EXIT_FAILED


def _outputs(args: argparse.Namespace, scenario_file: Path) -> Outputs:
    """The files the command line asks for, and the baseline it names."""
    baseline = None
    if args.baseline:
        baseline = Path(args.baseline)
    elif args.baseline is not None or args.update_baseline:
        baseline = default_baseline(scenario_file)
    return Outputs(args.json, args.html, args.plot, args.junit, baseline,
                   args.update_baseline)


def cmd_start(args: argparse.Namespace, config: SimConfig) -> int:
    """Run a fleet in real time until stop-sim (or a signal)."""
    url = args.url or config.csms_url or "ws://127.0.0.1:9000/ocpp"
    for name, value in (("--chargers", args.chargers), ("--evses", args.evses)):
        _require_count(f"start-sim: {name}", value)
    if args.sessions is not None and not (math.isfinite(args.sessions) and args.sessions > 0):
        raise ConfigError(f"start-sim: --sessions must be a positive number of minutes, got "
                          f"{args.sessions:g}")
    numbers, shard = range(1, args.chargers + 1), ""
    seed: int | str = args.seed if args.seed is not None else config.seed
    control = args.control or default_control_path()
    if args.shard is not None:
        try:
            k, n = parse_shard(args.shard)
            numbers = shard_numbers(args.chargers, k, n)
        except ShardError as exc:
            raise ConfigError(f"start-sim: {exc}") from None
        shard = f"{k}/{n}"
        seed = f"{seed}/{shard}"  # every shard draws its own
        if args.control is None:
            control = control.with_name(f"{control.stem}-{k}{control.suffix}")
    _open_files_for(len(numbers))
    if not trio.run(_reachable, url):
        print(f"cannot reach the CSMS at {url}", file=sys.stderr)
        return EXIT_UNREACHABLE
    sessions_s = None if args.sessions is None else args.sessions * 60
    plan = FleetPlan(len(numbers), args.evses, numbers.start, shard, sessions_s)
    trio.run(serve_fleet, url, config, plan, seed, control)
    return EXIT_OK


def _open_files_for(chargers: int) -> None:
    """Raise the soft open-files limit to the hard one when ``chargers`` sockets (and a
    margin) need it.

    Raises:
        ConfigError: even the hard limit is too low (say how to raise it).
    """
    needed = chargers + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if needed <= soft:
        return
    if hard != resource.RLIM_INFINITY and needed > hard:
        raise ConfigError(f"start-sim: {chargers} chargers need about {needed} open files; "
                          f"the limit is {hard} (raise it: ulimit -Hn, or shard the fleet "
                          "with --shard K/N over processes)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    log.info("open-files limit raised from %d to %d", soft, hard)


def cmd_fault(args: argparse.Namespace) -> int:
    """Fault an EVSE of the running fleet."""
    answer = trio.run(send_command, args.control,
                      {"command": "inject-fault", "charger": args.charger, "evse": args.evse,
                       "error_code": args.error_code})
    return _answered(answer, EXIT_USAGE)


def cmd_inject(args: argparse.Namespace) -> int:
    """Make a charger of the running fleet misbehave."""
    try:
        request = _inject_request(args)
    except _Usage as exc:
        print(f"python -m sim: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _answered(trio.run(send_command, args.control, request), EXIT_USAGE)


def cmd_clear(args: argparse.Namespace) -> int:
    """Make a charger of the running fleet ideal again."""
    answer = trio.run(send_command, args.control, {"command": "clear", "charger": args.charger})
    return _answered(answer, EXIT_USAGE)


def cmd_stop(args: argparse.Namespace) -> int:
    """Stop the running fleet."""
    answer = trio.run(send_command, args.control, {"command": "stop-sim"})
    return _answered(answer, EXIT_FAILED)


def _answered(answer: dict[str, Any], failed: int) -> int:
    """Print the fleet's answer (a refusal on stderr, like every error); the exit code."""
    message = answer.get("message", answer)
    if answer.get("ok"):
        print(message)
        return EXIT_OK
    print(f"python -m sim: {message}", file=sys.stderr)
    return failed


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
        if args.command in ("scenario", "run-scenario"):
            return cmd_scenario(args, config)
        if args.command == "start-sim":
            return cmd_start(args, config)
        if args.command == "inject-fault":
            return cmd_fault(args)
        if args.command == "inject":
            return cmd_inject(args)
        if args.command == "clear":
            return cmd_clear(args)
        return cmd_stop(args)
    except (ConfigError, ScenarioError, BaselineError, SiteError) as exc:
        print(f"python -m sim: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ControlError as exc:
        print(f"python -m sim: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE


def _command(name: str) -> int:
    return main([name, *sys.argv[1:]])


def start_sim() -> int:
    """Console script ``start-sim``."""
    return _command("start-sim")


def run_scenario_script() -> int:
    """Console script ``run-scenario``."""
    return _command("run-scenario")


def inject_fault() -> int:
    """Console script ``inject-fault``."""
    return _command("inject-fault")


def stop_sim() -> int:
    """Console script ``stop-sim``."""
    return _command("stop-sim")

