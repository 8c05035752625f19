"""Reference OCPP 1.6J central system for the RPC benchmark, built the way the ``ocpp``
package documents it: its asyncio ``ocpp.v16.ChargePoint`` with ``@on`` handlers, served
by the ``websockets`` library (new asyncio implementation). It answers BootNotification,
Heartbeat and MeterValues (the measured load) and StatusNotification and
StartTransaction (the load generator's per-connection setup).

Everything the package does by default is left on: schema validation of every CALL and
of every CALLRESULT (with ``jsonschema``, in the loop's default thread pool, as
``ocpp.messages.ASYNC_VALIDATION`` makes it), camelCase <-> snake_case conversion,
``inspect.signature`` per call. The only deviations from the documentation's example:

* logging is at WARNING, not INFO (at INFO the package logs every frame in and out,
  which would mostly measure the logging module);
* per-message deflate is left to the client: our load generator does not offer it, so
  both servers exchange plain frames;
* the open-file limit is raised to its hard limit, and SIGTERM closes the server.

Run: ``python benchmarks/ocpp_reference_server.py --host 127.0.0.1 --port 9100``;
charge points connect to ``ws://HOST:PORT/ocpp/{chargePointId}`` with ``ocpp1.6``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import itertools
import logging
import resource
import signal

from ocpp.routing import on
from ocpp.v16 import ChargePoint as Cp
from ocpp.v16 import call_result
from ocpp.v16.datatypes import IdTagInfo
from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

log = logging.getLogger("reference")

_transaction_ids = itertools.count(1)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


class CentralSystemChargePoint(Cp):
    """One connected charge point, seen from the central system."""

    @on(Action.boot_notification)
    async def on_boot_notification(
        self, charge_point_vendor: str, charge_point_model: str, **kwargs: object
    ) -> call_result.BootNotification:
        return call_result.BootNotification(
            current_time=_now(), interval=300, status=RegistrationStatus.accepted
        )

    @on(Action.heartbeat)
    async def on_heartbeat(self) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=_now())

    # The load generator opens a transaction per connection before the measured load, so
    # that its MeterValues carry a transactionId the server issued; these two handlers
    # serve only that setup.
    @on(Action.status_notification)
    async def on_status_notification(
        self, connector_id: int, error_code: str, status: str, **kwargs: object
    ) -> call_result.StatusNotification:
        return call_result.StatusNotification()

    @on(Action.start_transaction)
    async def on_start_transaction(
        self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **kwargs: object
    ) -> call_result.StartTransaction:
        return call_result.StartTransaction(
            transaction_id=next(_transaction_ids),
            id_tag_info=IdTagInfo(status=AuthorizationStatus.accepted),
        )

    @on(Action.meter_values)
    async def on_meter_values(
        self, connector_id: int, meter_value: list[dict[str, object]], **kwargs: object
    ) -> call_result.MeterValues:
        return call_result.MeterValues()


async def on_connect(websocket: ServerConnection) -> None:
    """Serve one charge point until its WebSocket closes."""
    if websocket.subprotocol != "ocpp1.6":
        await websocket.close(1002, "subprotocol ocpp1.6 required")
        return
    path = websocket.request.path if websocket.request is not None else "/"
    charge_point_id = path.rstrip("/").rsplit("/", 1)[-1]
    cp = CentralSystemChargePoint(charge_point_id, websocket)
    with contextlib.suppress(ConnectionClosed):
        await cp.start()


async def main(host: str, port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set_result, None)
    async with serve(on_connect, host, port, subprotocols=["ocpp1.6"]) as server:  # type: ignore[list-item]
        log.warning("reference central system on ws://%s:%d/ocpp/{id}", host, port)
        await stop
        server.close()


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _raise_nofile()
    asyncio.run(main(args.host, args.port))
