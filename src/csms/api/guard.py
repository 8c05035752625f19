"""The operator API's edge: who may call it, from where, with what.

The API can send any command to any charger, so every request passes these checks, in
this order, before a handler sees it:

1. **Host** (403): the ``Host`` header names an allowed host: ``localhost``,
   ``127.0.0.1``, ``::1``, the address the API binds (unless a wildcard) and the names
   the operator adds (``--api-allowed-host``). A DNS-rebinding page, whose requests carry
   its own name, is refused.
2. **Origin** (403): a browser's request carries ``Origin``; it must be the API's own
   (``http(s)://`` + the request's ``Host``). A page of another site, even one served on
   the same machine, is refused: no cross-site request forgery.
3. **Token** (401): with a token configured, ``Authorization: Bearer <token>``, compared
   in constant time; the OpenAPI document is served without it.
4. **Content type** (415): a POST, PUT or PATCH must say ``Content-Type:
   application/json``: the bodies a page may send cross-site without asking first
   (``text/plain``, forms) are never read.

:func:`exposure_problem` is the start-up rule: the API does not listen beyond loopback
without a token.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import urllib.parse
from collections.abc import Iterable

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

#: Host names every API accepts: it is always reachable over loopback.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
#: The environment variable that holds the API token when none is configured.
TOKEN_ENV = "CSMS_API_TOKEN"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_UNGUARDED_PATHS = frozenset({"/api/openapi.json"})


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps a listener on this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_token(configured: str | None) -> str | None:
    """The API token: the configured one, else ``$CSMS_API_TOKEN``; None when neither."""
    return configured or os.environ.get(TOKEN_ENV) or None


def exposure_problem(host: str, token: str | None) -> str | None:
    """Why the API must not start on ``host`` with ``token``; None when it may."""
    if token is None and not is_loopback(host):
        return (
            f"the operator API would listen on {host}, beyond loopback, without a token: "
            f"set {TOKEN_ENV} (or bind --api-host 127.0.0.1)"
        )
    return None


def allowed_hosts(bind_host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The host names requests may carry in ``Host`` (lower case, no port)."""
    hosts = set(LOOPBACK_HOSTS) | {h.lower().strip("[]") for h in extra}
    bound = bind_host.lower().strip("[]")
    if bound not in ("0.0.0.0", "::", ""):
        hosts.add(bound)
    return frozenset(hosts)


def _host_name(netloc: str) -> str | None:
    try:
        name = urllib.parse.urlsplit("//" + netloc).hostname
    except ValueError:
        return None
    return name.lower() if name else None


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class EdgeGuard:
    """ASGI middleware applying the module's checks to every HTTP request."""

    def __init__(self, app: ASGIApp, *, token: str | None, hosts: frozenset[str]) -> None:
        self.app = app
        self.hosts = hosts
        # Digests of equal length: the comparison takes the same time whatever is sent.
        self._expected = _digest(f"Bearer {token}".encode()) if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self._refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> JSONResponse | None:
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, value)
        host = headers.get(b"host", b"").decode("latin-1")
        if _host_name(host) not in self.hosts:
            return _error(403, "Forbidden", f"Host {host!r} is not an allowed name of this API")
        origin = headers.get(b"origin")
        if origin is not None:
            text = origin.decode("latin-1")
            parts = urllib.parse.urlsplit(text)
            if parts.scheme not in ("http", "https") or parts.netloc.lower() != host.lower():
                return _error(403, "Forbidden", f"cross-origin request from {text!r} refused")
        if self._expected is not None and scope["path"] not in _UNGUARDED_PATHS:
            given = _digest(headers.get(b"authorization", b""))
            if not hmac.compare_digest(given, self._expected):
                response = _error(401, "Unauthorized", "a valid bearer token is required")
                response.headers["WWW-Authenticate"] = "Bearer"
                return response
        if scope["method"] in _BODY_METHODS:
            media = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if media != b"application/json":
                return _error(
                    415, "UnsupportedMediaType", "the body must be sent as application/json"
                )
        return None


def _error(status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status)
