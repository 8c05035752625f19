"""The transport floor for the RPC benchmark: trio-websocket and nothing else.

A trio-websocket server on ``/ocpp/{chargePointId}`` (subprotocol ``ocpp1.6``) that
answers every CALL with a fixed CALLRESULT for its action: no schema validation, no typed
payloads, no handlers, no storage, no second task per connection. What it costs per round
trip is what the WebSocket layer the design names (trio-websocket on wsproto, trio
sockets) costs by itself; no OCPP server built on it can go below that. The benchmark
runs it with ``--servers floor`` next to our CSMS and the reference, under the same
load, so that the CSMS's figures can be read against the floor of its own stack.

Run: ``python benchmarks/trio_websocket_floor_server.py --host 127.0.0.1 --port 9100``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import itertools
import resource
import signal

import orjson
import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

_transaction_ids = itertools.count(1)


def _answer(action: str) -> dict[str, object]:
    if action in ("Heartbeat", "BootNotification"):
        now = datetime.datetime.now(datetime.UTC).isoformat()
        if action == "Heartbeat":
            return {"currentTime": now}
        return {"status": "Accepted", "currentTime": now, "interval": 300}
    if action == "StartTransaction":
        return {"idTagInfo": {"status": "Accepted"}, "transactionId": next(_transaction_ids)}
    if action == "Authorize":  # its answer requires idTagInfo (the simulator asks it)
        return {"idTagInfo": {"status": "Accepted"}}
    return {}


async def handle(request: WebSocketRequest) -> None:
    """Answer one charge point's CALLs until its WebSocket closes."""
    if "ocpp1.6" not in request.proposed_subprotocols:
        await request.reject(400)
        return
    ws = await request.accept(subprotocol="ocpp1.6")
    with contextlib.suppress(ConnectionClosed):
        while True:
            message = await ws.get_message()
            _, unique_id, action, _ = orjson.loads(message)
            await ws.send_message(orjson.dumps([3, unique_id, _answer(action)]).decode())


async def main(host: str, port: int) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_websocket, handle, host, port, None)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    trio.run(main, args.host, args.port)
