"""``python -m csms``: run the CSMS."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

import trio

from csms.app import Csms
from csms.config import DEFAULT_MAX_FRAME_SIZE, CsmsConfig

log = logging.getLogger("csms")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m csms",
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
        "--max-frame-size",
        type=int,
        default=DEFAULT_MAX_FRAME_SIZE,
        help="largest WebSocket message in bytes; larger closes with 1009 (default: %(default)s)",
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
        help="seconds to wait for a charge point's answer (default: %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="(default: %(default)s)",
    )
    return parser


def _config(args: argparse.Namespace) -> CsmsConfig:
    prefix = args.path_prefix if args.path_prefix.endswith("/") else args.path_prefix + "/"
    if not prefix.startswith("/"):
        prefix = "/" + prefix
    return CsmsConfig(
        host=args.host,
        port=args.port,
        path_prefix=prefix,
        max_frame_size=args.max_frame_size,
        heartbeat_interval=args.heartbeat_interval,
        call_timeout=args.call_timeout,
    )


async def serve_until_signalled(config: CsmsConfig) -> None:
    """Run the CSMS until SIGINT or SIGTERM, then close every WebSocket with 1001."""
    csms = Csms(config)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(csms.serve)
            async for signum in signals:
                log.info("%s received: closing every connection", signal.Signals(signum).name)
                break
            await csms.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    for name, value in (
        ("--port", args.port),
        ("--max-frame-size", args.max_frame_size),
        ("--heartbeat-interval", args.heartbeat_interval),
    ):
        if value < 0 or (name != "--port" and value == 0):
            parser.error(f"{name} must be positive, got {value}")
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        trio.run(serve_until_signalled, _config(args))
    except OSError as exc:
        log.error("cannot serve on %s:%s: %s", args.host, args.port, exc)
        return 3
    return 0
