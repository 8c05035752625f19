"""``GET /api/health``: whether this CSMS serves and stores, and how busy it is.

For a load balancer's or a supervisor's health check (200 when it serves and its database
takes writes, 503 otherwise) and for monitoring: the charge points connected now and the
store's counters since start. Commits, rows and flushes over an interval give the commit
batch sizes (``benchmarks/fleet_scale.py`` prints them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

if TYPE_CHECKING:
    from csms.app import Csms


def health(csms: Csms) -> tuple[int, dict[str, Any]]:
    """The HTTP status and the body of ``GET /api/health``."""
    stats = csms.store.statistics()
    if csms.connections.closing:
        status = "stopping"
    elif stats.unavailable is not None:
        status = "storeUnavailable"
    else:
        status = "ok"
    body = {
        "status": status,
        "connections": csms.connections.count,
        "store": {
            "pending": stats.pending,
            "writing": stats.in_flight,
            "commits": stats.commits,
            "rowsWritten": stats.rows_written,
            "flushes": stats.flushes,
            "unavailable": stats.unavailable,
        },
    }
    return (200 if status == "ok" else 503), body


class Health:
    """The endpoint, bound to one CSMS."""

    def __init__(self, csms: Csms) -> None:
        self.csms = csms

    async def get(self, request: Request) -> Response:
        code, body = health(self.csms)
        return JSONResponse(body, status_code=code)
