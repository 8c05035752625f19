"""An independent OCPP 1.6J charge point, run as its own process by the TLS tests: the
``ocpp`` package's asyncio ChargePoint over ``websockets``, nothing of ours imported.

A process of its own because trio-asyncio, which the CSMS's store loads, patches
asyncio's loop lookup process-wide, and asyncio's TLS transport then fails inside the
test process.

    python ocpp_peer.py URL CP_ID [--password P] [--cafile PEM] [--cert PEM]

prints one JSON line: {"boot": "<status>"}, {"http": <status>} when the handshake is
refused, or {"error": "<exception name>"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
from typing import Any

from ocpp.v16 import ChargePoint, call
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol


async def boot(url: str, cp_id: str, context: ssl.SSLContext | None) -> dict[str, Any]:
    try:
        async with connect(url, subprotocols=[Subprotocol("ocpp1.6")], ssl=context,
                           open_timeout=5) as ws:
            cp = ChargePoint(cp_id, ws, response_timeout=5)
            reader = asyncio.create_task(cp.start())
            try:
                answer = await cp.call(call.BootNotification(
                    charge_point_model="M", charge_point_vendor="V"), suppress=False)
            finally:
                reader.cancel()
            return {"boot": str(answer.status)}
    except InvalidStatus as exc:
        return {"http": exc.response.status_code}
    except Exception as exc:  # the TLS or WebSocket handshake failed
        return {"error": type(exc).__name__}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("cp_id")
    parser.add_argument("--password")
    parser.add_argument("--cafile")
    parser.add_argument("--cert")
    args = parser.parse_args()
    url = args.url
    if args.password is not None:
        scheme, rest = url.split("://", 1)
        url = f"{scheme}://{args.cp_id}:{args.password}@{rest}"
    context = None
    if url.startswith("wss://"):
        context = ssl.create_default_context(cafile=args.cafile)
        if args.cert:
            context.load_cert_chain(args.cert)
    print(json.dumps(asyncio.run(asyncio.wait_for(boot(url, args.cp_id, context), 10))))


if __name__ == "__main__":
    main()
