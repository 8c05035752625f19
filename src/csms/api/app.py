"""The operator HTTP API: a Starlette app over one running :class:`csms.app.Csms`.

Every handler runs in the CSMS's own trio process (Starlette is anyio-based), so it
reads the live domain state and sends CALLs on the live connections directly. It never
changes the domain itself: a command's effect comes from the charger's answer, recorded
through the recorder like any OCPP message (and so rebuilt by replay); idTag data is the
operator's own, kept in its table.

Status codes: 200 answered (a CALLRESULT or a CALLERROR, marked ``result`` / ``error``);
400 bad request (unknown action, invalid JSON, a payload that breaks the 1.6 schema:
nothing was sent); 401 missing or wrong bearer token; 404 unknown record, or the charge
point is not connected; 502 the connection closed before the answer; 504 no answer in
time (``timeout: true``).
"""

from __future__ import annotations

import datetime
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from csms.api import render
from csms.api.actions import CSMS_ACTIONS
from csms.api.openapi import openapi_document
from csms.authorization import STATUSES
from csms.storage.base import IdTagRow
from ocppj import Answer, CallTimeout, PayloadError, SessionClosed
from ocppj.payloads import in_schema_order
from ocppj.schemas import validate_request
from ocppj.timestamps import parse_timestamp

if TYPE_CHECKING:
    from csms.app import Csms

log = logging.getLogger("csms.api")

#: Largest ``limit`` a list endpoint accepts.
MAX_LIMIT = 1000
#: idTags are CiString20 in OCPP 1.6.
ID_TAG_MAX = 20

Endpoint = Callable[[Request], Awaitable[Response]]

#: Operator actions that change what a charger enforces.
_PROFILE_ACTIONS = frozenset({"SetChargingProfile", "ClearChargingProfile"})


class ApiError(Exception):
    """An error answer: HTTP status, a short code and a message."""

    def __init__(self, status: int, error: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.extra = status, error, message, extra

    def response(self) -> JSONResponse:
        """The JSON error response."""
        body = {"error": self.error, "message": self.message, **self.extra}
        return JSONResponse(body, status_code=self.status)


def _guard(endpoint: Endpoint) -> Endpoint:
    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except ApiError as exc:
            return exc.response()

    return guarded


class BearerAuth:
    """ASGI middleware: every ``/api`` request but the OpenAPI document needs the token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] != "/api/openapi.json":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                response = JSONResponse(
                    {"error": "Unauthorized", "message": "a valid bearer token is required"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# -- parameters -------------------------------------------------------------------------


def _limit(request: Request, default: int = 100) -> int:
    text = request.query_params.get("limit")
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_LIMIT:
        raise ApiError(400, "BadRequest", f"limit must be an integer from 1 to {MAX_LIMIT}")
    return value


def _flag(request: Request, name: str) -> bool | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return None
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise ApiError(400, "BadRequest", f"{name} must be true or false")


def _int_param(request: Request, name: str) -> int:
    try:
        return int(request.path_params[name])
    except ValueError:
        raise ApiError(404, "NotFound", f"{name} must be an integer") from None


async def _json_object(request: Request) -> dict[str, Any]:
    body = await request.body()
    try:
        data = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "BadRequest", f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "BadRequest", "the body must be a JSON object")
    return data


class Api:
    """The endpoints, bound to one CSMS."""

    def __init__(self, csms: Csms) -> None:
        self.csms = csms

    def now(self) -> datetime.datetime:
        """The CSMS's clock."""
        return self.csms.clock()

    # -- commands -----------------------------------------------------------------------

    async def send(self, request: Request) -> Response:
        """POST /api/charge-points/{id}/ocpp16/{action}: send a CALL, return the answer."""
        cp_id = request.path_params["charge_point_id"]
        action = request.path_params["action"]
        if action not in CSMS_ACTIONS:
            raise ApiError(
                400, "UnknownAction",
                f"{action!r} is not an action the Central System sends in OCPP 1.6",
                actions=list(CSMS_ACTIONS),
            )
        payload = await _json_object(request)
        timeout = self.csms.config.call_timeout
        if "timeout" in request.query_params:
            try:
                timeout = float(request.query_params["timeout"])
            except ValueError:
                timeout = 0.0
            if not 0 < timeout <= 3600:
                raise ApiError(400, "BadRequest", "timeout must be seconds in (0, 3600]")
        try:
            validate_request(action, payload)
        except PayloadError as exc:
            raise ApiError(
                400, "PayloadError", exc.description, code=str(exc.code), path=exc.path
            ) from None
        conn = self.csms.connections.get(cp_id)
        session = conn.session if conn is not None else None
        if session is None or session.closed:
            raise ApiError(404, "NotConnected", f"charge point {cp_id!r} is not connected")
        sent = in_schema_order(action, payload)
        recorder = self.csms.recorder

        smart = self.csms.smart

        def record(answer: Answer) -> None:
            # Called by the session's reader as the answer is read, in log order.
            error = str(answer.error.code) if answer.error is not None else None
            recorder.answer(cp_id, action, sent, answer.payload, error, answer.answered_at)
            if (smart is not None and action in _PROFILE_ACTIONS
                    and (answer.payload or {}).get("status") == "Accepted"):
                # The operator changed what the charger enforces: smart charging counts
                # it as unknown and sends its limits again.
                smart.profiles_changed(cp_id)

        try:
            answer = await session.exchange(action, sent, timeout=timeout, on_answer=record)
        except CallTimeout as exc:
            return JSONResponse(
                {"uniqueId": exc.unique_id, "action": action, "chargePoint": cp_id,
                 "timeout": True, "message": f"no answer within {timeout:g} s"},
                status_code=504,
            )
        except SessionClosed:
            raise ApiError(
                502, "ConnectionClosed",
                f"the connection of {cp_id!r} closed before the answer came",
            ) from None
        await self.csms.store.flush()
        body: dict[str, Any] = {"uniqueId": answer.unique_id, "action": action,
                                "chargePoint": cp_id}
        if answer.error is not None:
            body["error"] = {
                "code": str(answer.error.code),
                "description": answer.error.description,
                "details": dict(answer.error.details),
            }
        else:
            body["result"] = answer.payload
        return JSONResponse(body)

    # -- records ------------------------------------------------------------------------

    def _charger(self, cp_id: str) -> dict[str, Any]:
        state = self.csms.state
        record = state.chargers[cp_id]
        evses = sorted(
            (e for (c, _), e in state.evses.items() if c == cp_id), key=lambda e: e.connector_id
        )
        profiles = sorted(
            (p for (c, _), p in state.profiles.items() if c == cp_id),
            key=lambda p: p.connector_id,
        )
        live = self.csms.connections.get(cp_id) is not None
        return render.charger(record, live=live, evses=evses, profiles=profiles)

    async def charge_points(self, request: Request) -> Response:
        """GET /api/charge-points."""
        return JSONResponse([self._charger(cp) for cp in sorted(self.csms.state.chargers)])

    async def charge_point(self, request: Request) -> Response:
        """GET /api/charge-points/{id}."""
        cp_id = request.path_params["charge_point_id"]
        if cp_id not in self.csms.state.chargers:
            raise ApiError(404, "NotFound", f"no charge point {cp_id!r}")
        return JSONResponse(self._charger(cp_id))

    async def transactions(self, request: Request) -> Response:
        """GET /api/transactions?chargePoint=&idTag=&active=&limit=, newest first."""
        cp_id = request.query_params.get("chargePoint") or None
        tag = request.query_params.get("idTag") or None
        active = _flag(request, "active")
        limit = _limit(request)
        sessions = [
            s for s in self.csms.state.sessions.values()
            if (cp_id is None or s.charger_id == cp_id)
            and (tag is None or s.id_tag == tag)
            and (active is None or s.open == active)
        ]
        sessions.sort(key=lambda s: (s.started_at, s.transaction_id), reverse=True)
        return JSONResponse([render.transaction(s) for s in sessions[:limit]])

    async def transaction(self, request: Request) -> Response:
        """GET /api/transactions/{id}."""
        tx = _int_param(request, "transaction_id")
        session = self.csms.state.sessions.get(tx)
        if session is None:
            raise ApiError(404, "NotFound", f"no transaction {tx}")
        return JSONResponse(render.transaction(session))

    async def reservations(self, request: Request) -> Response:
        """GET /api/reservations?chargePoint=&state=, newest first."""
        cp_id = request.query_params.get("chargePoint") or None
        wanted = request.query_params.get("state") or None
        now = self.now()
        records = [
            r for r in self.csms.state.reservations.values()
            if (cp_id is None or r.charger_id == cp_id)
            and (wanted is None or r.state_at(now) == wanted)
        ]
        records.sort(key=lambda r: (r.requested_at, r.reservation_id), reverse=True)
        return JSONResponse([render.reservation(r, now) for r in records[: _limit(request)]])

    async def reservation(self, request: Request) -> Response:
        """GET /api/reservations/{id}."""
        rid = _int_param(request, "reservation_id")
        record = self.csms.state.reservations.get(rid)
        if record is None:
            raise ApiError(404, "NotFound", f"no reservation {rid}")
        return JSONResponse(render.reservation(record, self.now()))

    async def remote_commands(self, request: Request) -> Response:
        """GET /api/remote-commands?chargePoint=&limit=, newest first."""
        cp_id = request.query_params.get("chargePoint") or None
        records = [
            r for r in reversed(self.csms.state.remote_commands)
            if cp_id is None or r.charger_id == cp_id
        ]
        return JSONResponse([render.remote_command(r) for r in records[: _limit(request)]])

    async def messages(self, request: Request) -> Response:
        """GET /api/messages?chargePoint=&limit=: the OCPP message log, newest first."""
        cp_id = request.query_params.get("chargePoint") or None
        rows = await self.csms.store.read_messages(cp_id, _limit(request))
        return JSONResponse([render.message(row) for row in rows])

    # -- authorization data -------------------------------------------------------------

    def _tag_param(self, request: Request) -> str:
        tag: str = request.path_params["id_tag"]
        if not 1 <= len(tag) <= ID_TAG_MAX:
            raise ApiError(400, "BadRequest", f"an idTag has 1 to {ID_TAG_MAX} characters")
        return tag

    def _render_tag(self, row: IdTagRow) -> dict[str, Any]:
        return render.id_tag(row, self.csms.policy.status(row.id_tag, self.now()))

    async def id_tags(self, request: Request) -> Response:
        """GET /api/id-tags."""
        records = self.csms.policy.records
        return JSONResponse([self._render_tag(records[tag]) for tag in sorted(records)])

    async def get_id_tag(self, request: Request) -> Response:
        """GET /api/id-tags/{idTag}."""
        tag = self._tag_param(request)
        row = self.csms.policy.records.get(tag)
        if row is None:
            raise ApiError(
                404, "NotFound", f"no authorization data for {tag!r}",
                effectiveStatus=self.csms.policy.status(tag, self.now()),
            )
        return JSONResponse(self._render_tag(row))

    async def put_id_tag(self, request: Request) -> Response:
        """PUT /api/id-tags/{idTag} with {status, expiryDate, parentIdTag}."""
        tag = self._tag_param(request)
        body = await _json_object(request)
        unknown = set(body) - {"status", "expiryDate", "parentIdTag"}
        if unknown:
            raise ApiError(400, "BadRequest", f"unknown fields: {', '.join(sorted(unknown))}")
        status = body.get("status", "Accepted")
        if status not in STATUSES:
            raise ApiError(
                400, "BadRequest", f"status must be one of {', '.join(sorted(STATUSES))}"
            )
        expiry = None
        if body.get("expiryDate") is not None:
            text = body["expiryDate"]
            expiry = parse_timestamp(text) if isinstance(text, str) else None
            if expiry is None:
                raise ApiError(400, "BadRequest", "expiryDate must be an ISO 8601 date-time")
        parent = body.get("parentIdTag")
        if parent is not None and (not isinstance(parent, str)
                                   or not 1 <= len(parent) <= ID_TAG_MAX):
            raise ApiError(
                400, "BadRequest", f"parentIdTag must be a string of 1 to {ID_TAG_MAX} characters"
            )
        row = IdTagRow(tag, status, expiry, parent, self.now())
        store = self.csms.store
        store.put_id_tag(row)
        await store.flush()
        self.csms.policy.records[tag] = row
        return JSONResponse(self._render_tag(row))

    async def delete_id_tag(self, request: Request) -> Response:
        """DELETE /api/id-tags/{idTag}."""
        tag = self._tag_param(request)
        if tag not in self.csms.policy.records:
            raise ApiError(404, "NotFound", f"no authorization data for {tag!r}")
        store = self.csms.store
        store.delete_id_tag(tag)
        await store.flush()
        self.csms.policy.records.pop(tag, None)
        return Response(status_code=204)

    async def openapi(self, request: Request) -> Response:
        """GET /api/openapi.json."""
        return JSONResponse(openapi_document())


def build_app(csms: Csms, *, token: str | None = None) -> ASGIApp:
    """The ASGI app of the operator API for ``csms``; with ``token``, bearer-protected."""
    api = Api(csms)
    cp = "/api/charge-points/{charge_point_id}"
    routes = [
        Route("/api/openapi.json", _guard(api.openapi), methods=["GET"]),
        Route("/api/charge-points", _guard(api.charge_points), methods=["GET"]),
        Route(cp, _guard(api.charge_point), methods=["GET"]),
        Route(cp + "/ocpp16/{action}", _guard(api.send), methods=["POST"]),
        Route("/api/transactions", _guard(api.transactions), methods=["GET"]),
        Route("/api/transactions/{transaction_id}", _guard(api.transaction), methods=["GET"]),
        Route("/api/reservations", _guard(api.reservations), methods=["GET"]),
        Route("/api/reservations/{reservation_id}", _guard(api.reservation), methods=["GET"]),
        Route("/api/remote-commands", _guard(api.remote_commands), methods=["GET"]),
        Route("/api/messages", _guard(api.messages), methods=["GET"]),
        Route("/api/id-tags", _guard(api.id_tags), methods=["GET"]),
        Route("/api/id-tags/{id_tag}", _guard(api.get_id_tag), methods=["GET"]),
        Route("/api/id-tags/{id_tag}", _guard(api.put_id_tag), methods=["PUT"]),
        Route("/api/id-tags/{id_tag}", _guard(api.delete_id_tag), methods=["DELETE"]),
    ]
    app: ASGIApp = Starlette(routes=routes)
    if token:
        app = BearerAuth(app, token)
    return app
