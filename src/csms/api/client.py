"""A thin blocking client of the operator API (urllib), for the CLI and scripts."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from attrs import frozen

from ocppj.identity import encode_charge_point_id

#: Where ``python -m csms`` serves the API by default.
DEFAULT_API = "http://127.0.0.1:8180"


class ApiUnreachable(Exception):
    """The API could not be reached (refused, no route, timed out)."""


@frozen
class ApiResponse:
    """An HTTP answer: its status and its JSON body (None when empty or not JSON)."""

    status: int
    body: Any


def call_api(
    base: str,
    method: str,
    path: str,
    *,
    body: Any = None,
    query: dict[str, Any] | None = None,
    token: str | None = None,
    timeout: float = 60.0,
) -> ApiResponse:
    """Send one request to the API at ``base`` and return its answer, whatever its status.

    Raises:
        ApiUnreachable: no HTTP answer at all.
    """
    url = base.rstrip("/") + path
    if query:
        pairs = {k: str(v).lower() if isinstance(v, bool) else str(v)
                 for k, v in query.items() if v is not None}
        if pairs:
            url += "?" + urllib.parse.urlencode(pairs)
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        raise ApiUnreachable(f"{base}: {getattr(exc, 'reason', exc)}") from None
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return ApiResponse(status, parsed)


def quote(segment: str) -> str:
    """A path segment, percent-encoded (as :func:`ocppj.identity.encode_charge_point_id`)."""
    return encode_charge_point_id(segment)
