"""The simulated charger's transaction-message retries, seen from the CSMS's side of the wire
(issue #12, point 2): a minimal CSMS of the project's own RPC engine over a real loopback
WebSocket answers StartTransaction and StopTransaction with a CALLERROR, and records when
each one arrives. Virtual time (``autojump_clock``): nothing here runs on a thread.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Callable
from typing import Any

import trio
import trio.testing
import trio_websocket
from ocpp.v16 import call, call_result
from ocpp.v16.enums import RegistrationStatus

from ocppj import SUBPROTOCOL, CallError, Router, RpcSession
from ocppj.timestamps import format_timestamp
from sim.charge_point import ChargePointConfig, SimChargePoint
from sim.ev import Ev

EPOCH = datetime.datetime(2026, 1, 1, 8, tzinfo=datetime.UTC)


def now() -> datetime.datetime:
    return EPOCH + datetime.timedelta(seconds=trio.current_time())


def refusing_csms(arrivals: list[tuple[float, str]], refuse: set[str]) -> Router:
    """Handlers of a CSMS that answers the ``refuse`` actions with a CALLERROR and records
    when every transaction message arrives."""
    router = Router()

    async def boot(request: call.BootNotification) -> Any:
        return call_result.BootNotification(
            current_time=format_timestamp(now()), interval=300, status=RegistrationStatus.accepted
        )

    async def status(request: call.StatusNotification) -> Any:
        return call_result.StatusNotification()

    async def heartbeat(request: call.Heartbeat) -> Any:
        return call_result.Heartbeat(current_time=format_timestamp(now()))

    def transaction(action: str, answer: Callable[[], Any]) -> Any:
        async def handle(request: Any) -> Any:
            arrivals.append((trio.current_time(), action))
            if action in refuse:
                raise CallError("InternalError", "cannot store it now")
            return answer()

        return handle

    router.register("BootNotification", boot)
    router.register("StatusNotification", status)
    router.register("Heartbeat", heartbeat)
    router.register(
        "StartTransaction",
        transaction(
            "StartTransaction",
            lambda: call_result.StartTransaction(
                transaction_id=1, id_tag_info={"status": "Accepted"}
            ),
        ),
    )
    router.register("StopTransaction", transaction("StopTransaction", call_result.StopTransaction))
    router.register("MeterValues", transaction("MeterValues", call_result.MeterValues))
    return router


async def test_a_refused_transaction_message_is_retried_as_the_keys_say_then_dropped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    arrivals: list[tuple[float, str]] = []
    router = refusing_csms(arrivals, {"StartTransaction", "StopTransaction"})

    async def serve(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept(subprotocol=SUBPROTOCOL)
        await RpcSession(ws, router, name="csms", call_timeout=30.0, clock=now).run()

    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                trio_websocket.serve_websocket, serve, "127.0.0.1", 0, None
            )
            config = ChargePointConfig(
                id="CP_01", url=f"ws://127.0.0.1:{server.port}/ocpp", evses=1,
                meter_interval=3600,
            )
            cp = SimChargePoint(config, clock=now, rng=random.Random(1))
            await nursery.start(cp.run)
            while not cp.online:  # noqa: ASYNC110 (virtual time, polled by the second)
                await trio.sleep(1)
            await cp.plug_in(1, Ev(capacity_wh=60_000, soc=20.0, max_power_w=11_000))
            started = trio.current_time()
            assert await cp.start_session(1, "TAG-1", authorize=False)
            while cp.dropped < 1:  # noqa: ASYNC110
                await trio.sleep(1)
            # TransactionMessageAttempts 3, TransactionMessageRetryInterval 30: sent at
            # once, again after 30 s x 1, again after 30 s x 2; then given up.
            starts = [at - started for at, action in arrivals if action == "StartTransaction"]
            assert starts == [0.0, 30.0, 90.0]

            # The keys are read at each failure: one attempt, no retry.
            assert cp.configuration.change("TransactionMessageAttempts", "1") == "Accepted"
            await cp.stop_session(1)
            while cp.dropped < 2:  # noqa: ASYNC110
                await trio.sleep(1)
            await trio.sleep(600)
            assert [a for _, a in arrivals].count("StopTransaction") == 1
            assert cp.queued == 0
            nursery.cancel_scope.cancel()
