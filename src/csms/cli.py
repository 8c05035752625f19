"""``python -m csms``: run the CSMS; ``replay``, ``status`` and ``sessions`` read its
database; ``send``, ``tags``, ``transactions`` and ``chargers`` are thin clients of the
running CSMS's operator API (:mod:`csms.cli_client`, which lists their exit codes).

Running the CSMS exits 2 on a bad option or an unsafe configuration, 3 when it cannot
bind.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio
import yaml

from csms import session_list
from csms.api.guard import exposure_problem, is_loopback, resolve_token
from csms.app import Csms
from csms.authorization import STATUSES
from csms.cli_client import CLIENT_COMMANDS, client_commands, run_client
from csms.config import DEFAULT_MAX_FRAME_SIZE, CsmsConfig
from csms.gc_policy import tune_after_startup
from csms.inspect import render_json, render_text
from csms.ocpp.tls import TlsConfigError, server_context
from csms.oserrors import sole_leaf, sole_os_error
from csms.registry import UNKNOWN_POLICIES
from csms.replay import UnreadableRow, diff, rebuild
from csms.smart.site import SiteConfig, SiteConfigError, parse_site
from csms.storage.sqlite import open_sqlite_store
from csms.storage.writer_lock import DatabaseInUse

log = logging.getLogger("csms")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m csms",
        # The clients' --api must not be read as an abbreviation of --api-host / --api-port.
        allow_abbrev=False,
        description="OCPP 1.6J charging-station management system. Charge points connect to "
        "ws://HOST:PORT/ocpp/{chargePointId} with the ocpp1.6 subprotocol.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=9000, help="port (default: %(default)s; 0 = any)"
    )
    parser.add_argument(
        "--path-prefix",
        default="/ocpp/",
        help="URL path before the charge point id (default: %(default)s)",
    )
    parser.add_argument(
        "--relaxed-ids",
        action="store_true",
        help="accept legacy charge point ids: any printable character but '/' (default: "
        "only letters, digits and -._~*=:+|@, at most 48)",
    )
    parser.add_argument(
        "--strict-payloads",
        action="store_true",
        help="answer every CALL that breaks its schema with a CALLERROR (default: accept "
        "transaction messages whose meaning is clear, and record the deviation as an "
        "anomaly)",
    )
    parser.add_argument(
        "--max-frame-size",
        type=int,
        default=DEFAULT_MAX_FRAME_SIZE,
        help="largest WebSocket message in bytes; larger closes with 1009 (default: %(default)s)",
    )
    parser.add_argument(
        "--max-call-rate",
        type=float,
        default=50.0,
        help="CALLs per second one charge point may send on average (bursts of 200); past "
        "it its connection is read slower, nothing refused; 0: no limit (default: "
        "%(default)s)",
    )
    parser.add_argument(
        "--max-connections", type=int, default=20_000,
        help="charge points connected at once; a new one beyond is refused with 503 "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--max-pending-handshakes", type=int, default=10_000,
        help="TCP connections still in their WebSocket handshake; one more is closed "
        "unread (default: %(default)s)",
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=int,
        default=300,
        help="seconds, given to charge points at boot (default: %(default)s)",
    )
    parser.add_argument(
        "--call-timeout",
        type=float,
        default=30.0,
        help="seconds from a CALL of ours to the charge point's answer, the wait behind "
        "its earlier CALLs included; also how long a charger may take no bytes of a frame "
        "before it is dropped for not reading (default: %(default)s)",
    )
    parser.add_argument(
        "--max-queued-calls", type=int, default=16,
        help="CALLs of ours that may wait behind the outstanding one at one charge point; "
        "one more is refused (API 429) (default: %(default)s)",
    )
    parser.add_argument(
        "--drop-after-timeouts", type=int, default=3,
        help="close a charge point's connection after this many of our CALLs in a row go "
        "unanswered; 0: never (default: %(default)s)",
    )
    parser.add_argument(
        "--shutdown-grace", type=float, default=1.0,
        help="on SIGTERM/SIGINT, seconds chargers get to answer the 1001 close (all at "
        "once) before their sockets are dropped (default: %(default)s)",
    )
    parser.add_argument(
        "--ping-interval",
        type=float,
        default=120.0,
        help="seconds of silence from a charge point before a WebSocket ping; 0: never "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--ping-timeout",
        type=float,
        default=30.0,
        help="seconds to wait for the pong before closing the connection "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="(default: %(default)s)",
    )
    parser.add_argument(
        "--db",
        default="csms.db",
        help="SQLite file: the message log and the domain (default: %(default)s)",
    )
    parser.add_argument(
        "--id-tag",
        action="append",
        default=[],
        metavar="TAG=STATUS",
        help="answer this idTag with this status (Accepted, Blocked, Expired, "
        "Invalid, ConcurrentTx); repeatable",
    )
    parser.add_argument(
        "--unknown-id-tags",
        default="invalid",
        choices=["invalid", "accept"],
        help="an idTag with no data (neither --id-tag nor 'python -m csms tags set'): "
        "Invalid, so an unknown card does not charge; or accept every one, for "
        "development (default: %(default)s)",
    )
    parser.add_argument(
        "--concurrent-tx",
        default="refuse",
        choices=["refuse", "allow"],
        help="a StartTransaction for an idTag that has an open session on another connector: "
        "answered ConcurrentTx (refuse), or as the idTag's status says (allow) "
        "(default: %(default)s)",
    )
    parser.add_argument("--unknown-chargers", default="accept", choices=list(UNKNOWN_POLICIES),
                        help="charge points with no registration: accept them (development), "
                        "register them as pending until an operator accepts them, or reject "
                        "them at the handshake (default: %(default)s)")
    parser.add_argument("--security-profile", type=int, default=0, choices=[0, 1, 2, 3],
                        help="OCPP security profile of charge points whose registration names "
                        "none: 0 none, 1 HTTP Basic with the charger's password, 2 the same "
                        "over TLS, 3 TLS with a client certificate (default: %(default)s)")
    parser.add_argument("--tls-cert", default=None, metavar="PEM",
                        help="the server's certificate chain: serve wss:// only (with --tls-key)")
    parser.add_argument("--tls-key", default=None, metavar="PEM", help="the server's key")
    parser.add_argument("--tls-client-ca", default=None, metavar="PEM",
                        help="the CA client certificates must chain to (security profile 3)")
    parser.add_argument("--allow-unauthenticated-chargers", action="store_true",
                        help="serve --host beyond loopback with --security-profile 0 (a "
                        "trusted network only: any client could connect as any charger)")
    parser.add_argument("--config", type=Path, default=None,
                        help="YAML configuration file; its 'site' section is the site model "
                        "(see docs/smart-charging.md)")
    parser.add_argument("--site-limit-kw", type=float, default=None,
                        help="the site's grid limit in kW (overrides the file's); turns smart "
                        "charging on")
    parser.add_argument("--api-host", default="127.0.0.1",
                        help="address the operator HTTP API binds (default: %(default)s)")
    parser.add_argument("--api-port", type=int, default=8180,
                        help="its port (default: %(default)s; 0 = any)")
    parser.add_argument("--api-allowed-host", action="append", default=[], metavar="NAME",
                        help="a host name operators reach the API by, allowed in the Host "
                        "header besides loopback's (repeatable)")
    parser.add_argument("--no-api", action="store_true", help="serve no operator API")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    client_commands(commands)
    replay = commands.add_parser(
        "replay", help="rebuild the state from the message log and compare it with the store"
    )
    replay.add_argument("--db", default="csms.db", help="SQLite file (default: %(default)s)")
    status = commands.add_parser("status", help="print chargers, EVSEs and sessions")
    status.add_argument("--db", default="csms.db", help="SQLite file (default: %(default)s)")
    status.add_argument("--json", action="store_true", help="print JSON for scripts")
    session_list.add_parser(commands)
    return parser


def load_site(path: Path | None, site_limit_kw: float | None) -> SiteConfig:
    """The site model from the configuration file and the command line.

    Raises:
        SiteConfigError: naming the file and the field.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SiteConfigError(f"{path}: cannot read: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise SiteConfigError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(loaded, dict) or set(loaded) - {"site"}:
            raise SiteConfigError(f"{path}: expected a mapping with a 'site' section")
        data = dict(loaded.get("site") or {})
    if site_limit_kw is not None:
        data.pop("limit_a_per_phase", None)
        data["limit_kw"] = site_limit_kw
    return parse_site(data, source=f"{path}: site" if path is not None else "site")


def _id_tags(parser: argparse.ArgumentParser, values: list[str]) -> dict[str, str]:
    tags = {}
    for value in values:
        tag, sep, status = value.partition("=")
        if not sep or not tag or status not in STATUSES:
            parser.error(
                f"--id-tag {value!r}: expected TAG=STATUS with STATUS one of "
                f"{', '.join(sorted(STATUSES))}"
            )
        tags[tag] = status
    return tags


async def replay_database(path: str) -> int:
    """Rebuild from the log in ``path``, compare with its projection; print; exit code:
    0 identical, 1 different (the differences printed), 2 a row or the file unreadable."""
    try:
        async with open_sqlite_store(path) as store:
            rows = await store.read_log()
            stored = await store.load_state()
            stored_samples = await store.read_samples()
    except Exception as exc:  # a damaged file, whatever the layer that notices
        error = sole_leaf(exc)
        print(f"python -m csms replay: cannot read {path}: {type(error).__name__}: {error}",
              file=sys.stderr)
        return 2
    try:
        rebuilt = rebuild(rows)
    except UnreadableRow as exc:
        print(f"python -m csms replay: {exc}", file=sys.stderr)
        return 2
    lines = diff(stored, stored_samples, rebuilt)
    state = rebuilt.state
    summary = (
        f"{len(rows)} log rows, {len(state.chargers)} chargers, {len(state.evses)} EVSEs, "
        f"{len(state.sessions)} sessions, {len(rebuilt.samples)} samples"
    )
    if lines:
        print(f"replay differs from the stored state ({len(lines)} differences; {summary}):")
        print("\n".join(f"  {line}" for line in lines))
        return 1
    print(f"replay identical: {summary}")
    return 0


async def print_status(path: str, *, as_json: bool) -> int:
    """Print the stored state of ``path``."""
    async with open_sqlite_store(path) as store:
        state = await store.load_state()
    if as_json:
        print(json.dumps(render_json(state), indent=2))
    else:
        print(render_text(state))
    return 0


def _tls_problem(args: argparse.Namespace) -> str | None:
    """Why the TLS options and the security profile do not fit; None when they do."""
    if (args.tls_cert is None) != (args.tls_key is None):
        return "--tls-cert and --tls-key go together"
    if args.tls_client_ca is not None and args.tls_cert is None:
        return "--tls-client-ca needs --tls-cert and --tls-key"
    if args.security_profile >= 2 and args.tls_cert is None:
        return f"--security-profile {args.security_profile} needs --tls-cert and --tls-key"
    if args.security_profile == 3 and args.tls_client_ca is None:
        return "--security-profile 3 needs --tls-client-ca"
    if args.tls_cert is not None:
        try:
            server_context(args.tls_cert, args.tls_key, args.tls_client_ca)
        except TlsConfigError as exc:
            return str(exc)
    return None


def _config(args: argparse.Namespace) -> CsmsConfig:
    prefix = args.path_prefix if args.path_prefix.endswith("/") else args.path_prefix + "/"
    if not prefix.startswith("/"):
        prefix = "/" + prefix
    return CsmsConfig(
        host=args.host,
        port=args.port,
        path_prefix=prefix,
        relaxed_ids=args.relaxed_ids,
        strict_payloads=args.strict_payloads,
        max_frame_size=args.max_frame_size,
        max_call_rate=args.max_call_rate or None,
        max_connections=args.max_connections,
        max_pending_handshakes=args.max_pending_handshakes,
        heartbeat_interval=args.heartbeat_interval,
        call_timeout=args.call_timeout,
        max_queued_calls=args.max_queued_calls,
        drop_after_timeouts=args.drop_after_timeouts,
        shutdown_grace=args.shutdown_grace,
        ping_interval=args.ping_interval or None,
        ping_timeout=args.ping_timeout,
        db_path=args.db,
        id_tags=args.id_tags,
        unknown_id_tags="Accepted" if args.unknown_id_tags == "accept" else "Invalid",
        concurrent_tx=args.concurrent_tx,
        unknown_chargers=args.unknown_chargers,
        security_profile=args.security_profile,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        site=args.site,
        api_host=args.api_host,
        api_port=None if args.no_api else args.api_port,
        api_allowed_hosts=tuple(args.api_allowed_host),
    )


async def serve_until_signalled(config: CsmsConfig) -> None:
    """Run the CSMS until SIGINT or SIGTERM, then close every WebSocket with 1001."""
    csms = Csms(config)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(csms.serve)
            # This process serves and nothing else: it owns the heap and its collector.
            tune_after_startup()
            async for signum in signals:
                # The process ends in a moment: a cyclic garbage collection over every
                # connection's objects would only delay it (seconds with thousands).
                gc.disable()
                log.info("%s received: no longer accepting connections; closing every "
                         "connection", signal.Signals(signum).name)
                break
            await csms.shutdown()
            log.info("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command in CLIENT_COMMANDS:
        return run_client(args)
    if args.command in ("replay", "status", "sessions"):
        if not os.path.exists(args.db):
            print(f"python -m csms {args.command}: no database at {args.db}", file=sys.stderr)
            return 2
        if args.command == "replay":
            return trio.run(replay_database, args.db)
        if args.command == "sessions":
            return trio.run(lambda: session_list.print_sessions(
                args.db, session_list.wanted(args), as_json=args.json))
        return trio.run(lambda: print_status(args.db, as_json=args.json))
    args.id_tags = _id_tags(parser, args.id_tag)
    try:
        args.site = load_site(args.config, args.site_limit_kw)
    except SiteConfigError as exc:
        print(f"python -m csms: {exc}", file=sys.stderr)
        return 2
    for name, value in (
        ("--port", args.port),
        ("--api-port", args.api_port),
        ("--max-frame-size", args.max_frame_size),
        ("--max-call-rate", args.max_call_rate),
        ("--max-connections", args.max_connections),
        ("--max-pending-handshakes", args.max_pending_handshakes),
        ("--heartbeat-interval", args.heartbeat_interval),
        ("--call-timeout", args.call_timeout),
        ("--max-queued-calls", args.max_queued_calls),
        ("--drop-after-timeouts", args.drop_after_timeouts),
        ("--shutdown-grace", args.shutdown_grace),
        ("--ping-interval", args.ping_interval),
        ("--ping-timeout", args.ping_timeout),
    ):
        zero_allowed = name in ("--port", "--api-port", "--ping-interval", "--max-call-rate",
                                "--drop-after-timeouts", "--max-queued-calls")
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero_allowed):
            parser.error(f"{name} must be positive, got {value}")
    problem = None if args.no_api else exposure_problem(args.api_host, resolve_token(None))
    problem = problem or _tls_problem(args)
    if (problem is None and not is_loopback(args.host) and args.security_profile == 0
            and not args.allow_unauthenticated_chargers):
        problem = (
            f"the OCPP server would listen on {args.host}, beyond loopback, without charger "
            "authentication: use --security-profile 1 and register each charger's password "
            "(python -m csms chargers add), or --allow-unauthenticated-chargers on a trusted "
            "network"
        )
    if problem is not None:
        print(f"python -m csms: {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        trio.run(serve_until_signalled, _config(args))
    except (OSError, DatabaseInUse, ExceptionGroup) as exc:
        # A bind failure reaches here wrapped in the nurseries' exception groups.
        if isinstance(in_use := sole_leaf(exc), DatabaseInUse):
            print(f"python -m csms: {in_use}", file=sys.stderr)
            return 2
        error = sole_os_error(exc)
        if error is None:
            raise
        log.error("cannot serve on %s:%s: %s", args.host, args.port, error)
        return 3
    return 0
