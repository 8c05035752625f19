"""Helpers for the operator API tests: an in-process CSMS with its API on port 0, a
simulated charge point on real loopback WebSockets, and the API's own urllib client run
on a worker thread.

Real time throughout: the SQLite store commits on aiosqlite's worker thread and the
HTTP client blocks a trio worker thread, so an autojump clock would jump mid-request.
Every wait is bounded by ``fail_after``; polling waits sleep 10 ms at a time.
"""

from __future__ import annotations

import datetime
import functools
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from csms.api.client import ApiResponse, call_api
from csms.app import Csms
from csms.config import CsmsConfig
from sim.charge_point import ChargePointConfig, SimChargePoint

#: Real seconds any single wait may take.
WAIT = 10.0


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def iso_in(seconds: float) -> str:
    """An OCPP timestamp ``seconds`` from now."""
    moment = utc_now() + datetime.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@asynccontextmanager
async def running_csms(db: Path, **config: Any) -> AsyncIterator[tuple[Csms, int]]:
    """A CSMS (OCPP and API on 127.0.0.1, any ports) with its store in ``db``."""
    settings: dict[str, Any] = {"port": 0, "api_port": 0, "db_path": str(db),
                                "synchronous": "OFF", **config}
    csms = Csms(CsmsConfig(**settings))
    async with trio.open_nursery() as nursery:
        port: int = await nursery.start(csms.serve)
        try:
            yield csms, port
        finally:
            with trio.fail_after(10):
                await csms.shutdown()


def api_url(csms: Csms) -> str:
    assert csms.api_port is not None
    return f"http://127.0.0.1:{csms.api_port}"


async def api(
    csms: Csms,
    method: str,
    path: str,
    body: Any = None,
    *,
    query: dict[str, Any] | None = None,
    token: str | None = None,
) -> ApiResponse:
    """One API request through :func:`csms.api.client.call_api`, on a worker thread."""
    request = functools.partial(call_api, api_url(csms), method, path, body=body,
                                query=query, token=token, timeout=WAIT)
    with trio.fail_after(WAIT + 5):
        return await trio.to_thread.run_sync(request)


async def send(csms: Csms, cp_id: str, action: str, payload: dict[str, Any],
               **query: Any) -> ApiResponse:
    """POST /api/charge-points/{cp_id}/ocpp16/{action}."""
    return await api(csms, "POST", f"/api/charge-points/{cp_id}/ocpp16/{action}", payload,
                     query=query or None)


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Return once ``predicate()`` holds; fail after ``WAIT`` real seconds.

    Polls: the conditions are spread over the CSMS, the simulator and a foreign thread,
    and none of them offers one event to wait on.
    """
    with trio.fail_after(WAIT):
        while not predicate():  # noqa: ASYNC110 (see above)
            await trio.sleep(0.01)


def sim_charge_point(port: int, cp_id: str = "CP_01", **config: Any) -> SimChargePoint:
    settings: dict[str, Any] = {"evses": 2, "meter_interval": 3600,
                                "heartbeat_interval": 3600, "status_step_delay": 0.05,
                                "backoff_min": 0.05, "backoff_max": 0.2,
                                "url": f"ws://127.0.0.1:{port}/ocpp", **config}
    return SimChargePoint(
        ChargePointConfig(id=cp_id, **settings),
        clock=utc_now, rng=random.Random(7),
    )


@asynccontextmanager
async def online_sim(
    csms: Csms, port: int, cp_id: str = "CP_01", **config: Any
) -> AsyncIterator[SimChargePoint]:
    """A simulated charge point, connected and booted, its statuses recorded."""
    cp = sim_charge_point(port, cp_id, **config)
    async with trio.open_nursery() as nursery:
        await nursery.start(cp.run)
        await wait_until(lambda: cp.online and csms.connections.get(cp_id) is not None)
        await wait_until(lambda: (cp_id, cp.config.evses) in csms.state.evses)
        try:
            yield cp
        finally:
            nursery.cancel_scope.cancel()
