"""Serving the API: hypercorn's trio worker, as a task of the CSMS's nursery."""

from __future__ import annotations

import logging

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette.types import ASGIApp

from csms.oserrors import sole_os_error

log = logging.getLogger("csms.api")


async def serve_api(
    app: ASGIApp,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` over HTTP/1.1 on ``host:port`` until cancelled; reports the bound port.

    Start it with ``port = await nursery.start(serve_api, app, host, port)``.
    """
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = log
    config.graceful_timeout = 1.0

    async def started(*, task_status: trio.TaskStatus[list[str]]) -> None:
        await serve(app, config, task_status=task_status)  # type: ignore[arg-type]

    async with trio.open_nursery() as nursery:
        try:
            binds: list[str] = await nursery.start(started)
        except (OSError, ExceptionGroup) as exc:
            error = sole_os_error(exc)
            if error is None:
                raise
            # Say which of the CSMS's listeners could not bind.
            raise OSError(error.errno, f"operator API on {host}:{port}: {error.strerror}") from exc
        bound = int(binds[0].rsplit(":", 1)[1])
        log.info("operator API on %s/api/ (OpenAPI: /api/openapi.json)", binds[0])
        task_status.started(bound)
