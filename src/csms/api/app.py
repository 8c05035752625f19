"""The operator HTTP API: a Starlette app over one running :class:`csms.app.Csms`.

Every handler runs in the CSMS's own trio process (Starlette is anyio-based), so it
reads the live domain state and sends CALLs on the live connections directly. It never
changes the domain itself: a command's effect comes from the charger's answer, recorded
through the recorder like any OCPP message (and so rebuilt by replay); idTag data is the
operator's own, kept in its table.

Every request first passes :mod:`csms.api.guard` (Host, Origin, token, content type).

Status codes: 200 answered (a CALLRESULT or a CALLERROR, marked ``result`` / ``error``);
400 bad request (unknown action, invalid JSON, a payload that breaks the 1.6 schema,
an invalid charge point id, an unknown or repeated query parameter: nothing was sent);
401 missing or wrong bearer token; 403 a Host or Origin not allowed; 415 a body not sent
as ``application/json``; 404 unknown record, or the charge
point is not connected; 429 too many CALLs already wait for that charge point (not sent);
503 not sent (its deadline passed while it waited behind earlier CALLs, or the connection
closed); 502 the connection closed before the answer; 504 sent, no answer in time
(``timeout: true``). A command's ``?timeout=`` bounds all of it.
"""

from __future__ import annotations

import datetime
import logging
from typing import TYPE_CHECKING, Any

import attrs
import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from csms.api import render
from csms.api.actions import CSMS_ACTIONS
from csms.api.common import (
    ID_TAG_MAX,
    ApiError,
    Endpoint,
    flag_param,
    guard_endpoint,
    int_param,
    json_object,
    limit_param,
    path_charge_point,
    query_charge_point,
)
from csms.api.guard import EdgeGuard, allowed_hosts
from csms.api.health import Health
from csms.api.openapi import openapi_document
from csms.api.registrations import Registrations
from csms.authorization import STATUSES
from csms.passwords import BadPassword, check_password, hash_password
from csms.registry import Registration
from csms.secrets import SECRET_KEYS
from csms.storage.base import IdTagRow
from ocppj import Answer, CallTimeout, NotSent, PayloadError, SessionClosed
from ocppj.payloads import in_schema_order
from ocppj.schemas import validate_request
from ocppj.timestamps import parse_timestamp

if TYPE_CHECKING:
    from csms.app import Csms

log = logging.getLogger("csms.api")

#: Operator actions that change what a charger enforces.
_PROFILE_ACTIONS = frozenset({"SetChargingProfile", "ClearChargingProfile"})


class Api:
    """The endpoints, bound to one CSMS."""

    def __init__(self, csms: Csms) -> None:
        self.csms = csms
        self._last_reservation_id = 0

    def now(self) -> datetime.datetime:
        """The CSMS's clock."""
        return self.csms.clock()

    def path_charge_point(self, request: Request) -> str:
        """The charge point id of a ``/api/charge-points/{id}`` path (see
        :func:`~csms.api.common.path_charge_point`)."""
        return path_charge_point(request, relaxed=self.csms.config.relaxed_ids)

    def query_charge_point(self, request: Request) -> str | None:
        """The ``chargePoint`` filter, checked as an id (None: no filter)."""
        return query_charge_point(request, relaxed=self.csms.config.relaxed_ids)

    # -- commands -----------------------------------------------------------------------

    async def exchange(
        self, cp_id: str, action: str, sent: dict[str, Any], call_timeout: float
    ) -> Answer:
        """Send one CALL of ours to ``cp_id``; its answer, recorded like any OCPP message.

        A ChangeConfiguration of the ``AuthorizationKey``: the key must be a valid
        password (400 otherwise); when the charger accepts it, its registration's
        password becomes that key (so it can still authenticate on its next connection).

        Raises:
            ApiError: 404 not connected, 429 too many CALLs wait for the charge point,
                503 not sent before its deadline or the connection closed (``delivery``
                ``not_sent``: sending it again is safe); 502 sent, and
                the connection closed before the answer (``sent_connection_closed``).
            CallTimeout: sent, and no answer within ``call_timeout`` seconds.
        """
        if self.csms.stopping:
            raise ApiError(503, "ShuttingDown", f"the CSMS is shutting down; the {action} was "
                           "not sent", reason="shutting_down", **NOT_SENT)
        conn = self.csms.connections.get(cp_id)
        session = conn.session if conn is not None else None
        if session is None or session.closed:
            raise ApiError(404, "NotConnected", f"charge point {cp_id!r} is not connected",
                           **NOT_SENT)
        recorder = self.csms.recorder
        smart = self.csms.smart
        new_key = await self._new_authorization_key(action, sent)

        def record(answer: Answer) -> None:
            # Called by the session's reader as the answer is read, in log order.
            error = str(answer.error.code) if answer.error is not None else None
            recorder.answer(cp_id, action, sent, answer.payload, error, answer.answered_at)
            accepted = (answer.payload or {}).get("status") == "Accepted"
            if new_key is not None and accepted:
                self._set_password_hash(cp_id, new_key)
            if smart is not None and action in _PROFILE_ACTIONS and accepted:
                # The operator changed what the charger enforces: smart charging counts
                # it as unknown and sends its limits again.
                smart.profiles_changed(cp_id)

        try:
            return await session.exchange(action, sent, timeout=call_timeout, on_answer=record)
        except NotSent as exc:
            raise not_sent_error(cp_id, action, exc) from None
        except SessionClosed:
            raise ApiError(
                502, "ConnectionClosed",
                f"the {action} was sent to {cp_id!r}, and its connection closed before an "
                "answer: the charge point may have carried it out (a Reset reboots without "
                "answering); check before sending it again",
                delivery="sent_connection_closed", retrySafe=False,
            ) from None

    async def _new_authorization_key(self, action: str, sent: dict[str, Any]) -> str | None:
        """The hash of the AuthorizationKey ``sent`` sets, if it sets one."""
        if action != "ChangeConfiguration" or str(sent.get("key", "")).lower() not in SECRET_KEYS:
            return None
        value = sent.get("value")
        try:
            password = check_password(value if isinstance(value, str) else "")
        except BadPassword as exc:
            raise ApiError(400, "BadRequest", f"AuthorizationKey: {exc}") from None
        return await trio.to_thread.run_sync(hash_password, password)

    def _set_password_hash(self, cp_id: str, password_hash: str) -> None:
        """The charger took a new AuthorizationKey: it is its password from now on
        (queued; the caller flushes)."""
        registry = self.csms.registry
        record = registry.records.get(cp_id) or Registration(cp_id)
        record = attrs.evolve(record, password_hash=password_hash, updated_at=self.now())
        registry.records[cp_id] = record
        self.csms.store.put_registration(record)
        log.info("%s: accepted a new AuthorizationKey; its password is updated", cp_id)

    async def send(self, request: Request) -> Response:
        """POST /api/charge-points/{id}/ocpp16/{action}: send a CALL, return the answer."""
        cp_id = self.path_charge_point(request)
        action = request.path_params["action"]
        if action not in CSMS_ACTIONS:
            raise ApiError(
                400, "UnknownAction",
                f"{action!r} is not an action the Central System sends in OCPP 1.6",
                actions=list(CSMS_ACTIONS),
            )
        payload = await json_object(request)
        if action == "ReserveNow" and "reservationId" not in payload:
            payload["reservationId"] = self.next_reservation_id()
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
        sent = in_schema_order(action, payload)
        try:
            answer = await self.exchange(cp_id, action, sent, timeout)
        except CallTimeout as exc:
            return JSONResponse(
                {"uniqueId": exc.unique_id, "action": action, "chargePoint": cp_id,
                 "timeout": True, "delivery": "sent_no_answer", "retrySafe": False,
                 "message": f"sent; no answer within {timeout:g} s: the charge point may "
                 "still carry it out"},
                status_code=504,
            )
        await self.csms.store.flush()
        body: dict[str, Any] = {"uniqueId": answer.unique_id, "action": action,
                                "chargePoint": cp_id}
        body.update(render.answer(answer))
        if action == "ReserveNow":
            body["reservationId"] = sent["reservationId"]
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
        cp_id = self.path_charge_point(request)
        if cp_id not in self.csms.state.chargers:
            raise ApiError(404, "NotFound", f"no charge point {cp_id!r}")
        return JSONResponse(self._charger(cp_id))

    async def transactions(self, request: Request) -> Response:
        """GET /api/transactions?chargePoint=&idTag=&active=&limit=, newest first."""
        cp_id = self.query_charge_point(request)
        tag = request.query_params.get("idTag") or None
        active = flag_param(request, "active")
        limit = limit_param(request)
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
        tx = int_param(request, "transaction_id")
        session = self.csms.state.sessions.get(tx)
        if session is None:
            raise ApiError(404, "NotFound", f"no transaction {tx}")
        return JSONResponse(render.transaction(session))

    async def reservations(self, request: Request) -> Response:
        """GET /api/reservations?chargePoint=&state=, newest first."""
        cp_id = self.query_charge_point(request)
        wanted = request.query_params.get("state") or None
        now = self.now()
        records = [
            r for r in self.csms.state.reservations.values()
            if (cp_id is None or r.charger_id == cp_id)
            and (wanted is None or r.state_at(now) == wanted)
        ]
        records.sort(key=lambda r: (r.requested_at, r.reservation_id), reverse=True)
        return JSONResponse([render.reservation(r, now) for r in records[: limit_param(request)]])

    async def reservation(self, request: Request) -> Response:
        """GET /api/reservations/{id}?chargePoint=: reservation ids are per charge point."""
        rid = int_param(request, "reservation_id")
        cp_id = self.query_charge_point(request)
        found = [
            r for (charger_id, reservation_id), r in self.csms.state.reservations.items()
            if reservation_id == rid and (cp_id is None or charger_id == cp_id)
        ]
        if not found:
            where = f" at {cp_id}" if cp_id is not None else ""
            raise ApiError(404, "NotFound", f"no reservation {rid}{where}")
        if len(found) > 1:
            holders = sorted(r.charger_id for r in found)
            raise ApiError(409, "Ambiguous", f"reservation {rid} exists at {len(found)} charge "
                           "points: name one with chargePoint=", chargePoints=holders)
        return JSONResponse(render.reservation(found[0], self.now()))

    def next_reservation_id(self) -> int:
        """A reservationId no charge point has from this CSMS: above every recorded one
        and every one given out since start (their answers may not be in yet)."""
        recorded = max((rid for _, rid in self.csms.state.reservations), default=0)
        self._last_reservation_id = max(recorded, self._last_reservation_id) + 1
        return self._last_reservation_id

    async def remote_commands(self, request: Request) -> Response:
        """GET /api/remote-commands?chargePoint=&limit=, newest first."""
        cp_id = self.query_charge_point(request)
        records = [
            r for r in reversed(self.csms.state.remote_commands)
            if cp_id is None or r.charger_id == cp_id
        ]
        return JSONResponse([render.remote_command(r) for r in records[: limit_param(request)]])

    async def anomalies(self, request: Request) -> Response:
        """GET /api/anomalies?chargePoint=&kind=&limit=, newest first."""
        cp_id = self.query_charge_point(request)
        kind = request.query_params.get("kind") or None
        records = [
            a for a in reversed(self.csms.state.anomalies)
            if (cp_id is None or a.charger_id == cp_id) and (kind is None or a.kind == kind)
        ]
        return JSONResponse([render.anomaly(a) for a in records[: limit_param(request)]])

    async def messages(self, request: Request) -> Response:
        """GET /api/messages?chargePoint=&limit=: the OCPP message log, newest first."""
        cp_id = self.query_charge_point(request)
        rows = await self.csms.store.read_messages(cp_id, limit_param(request))
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
        body = await json_object(request)
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


#: What an error body says of a command that never reached the charge point.
NOT_SENT: dict[str, Any] = {"delivery": "not_sent", "retrySafe": True}


def not_sent_error(cp_id: str, action: str, exc: NotSent) -> ApiError:
    """The answer to a command that never left: 429 when too many CALLs already waited
    for the charge point, else 503 (its deadline passed in the queue, or the connection
    closed); ``reason`` says which."""
    if exc.reason == "queue_full":
        return ApiError(
            429, "QueueFull",
            f"too many CALLs already wait for {cp_id!r} (a charge point answers one at a "
            f"time); the {action} was not sent: try again later", reason=exc.reason,
            **NOT_SENT,
        )
    if exc.reason == "deadline":
        why = ("its deadline passed while earlier CALLs to it were outstanding (a slow or "
               "unresponsive charge point)")
    else:
        why = "its connection closed first"
    return ApiError(
        503, "NotSent",
        f"the {action} was not sent to {cp_id!r}: {why}; the charge point never saw it, so "
        "sending it again is safe", reason=exc.reason, **NOT_SENT,
    )

_LISTING = frozenset({"chargePoint", "limit"})
#: The query parameters each route takes (none where absent); any other is a 400.
QUERY_PARAMETERS: dict[str, frozenset[str]] = {
    "/api/charge-points/{charge_point_id}/ocpp16/{action}": frozenset({"timeout"}),
    "/api/transactions": _LISTING | {"idTag", "active"},
    "/api/reservations": _LISTING | {"state"},
    "/api/reservations/{reservation_id}": frozenset({"chargePoint"}),
    "/api/remote-commands": _LISTING,
    "/api/anomalies": _LISTING | {"kind"},
    "/api/messages": _LISTING,
}


def build_app(
    csms: Csms, *, token: str | None = None, hosts: frozenset[str] | None = None
) -> EdgeGuard:
    """The ASGI app of the operator API for ``csms``, behind its
    :class:`~csms.api.guard.EdgeGuard`: with ``token``, bearer-protected; ``hosts`` are
    the names allowed in ``Host`` (default: loopback and the configured ones)."""
    api = Api(csms)
    registrations = Registrations(api)
    cp = "/api/charge-points/{charge_point_id}"
    registration = "/api/registrations/{charge_point_id}"

    def route(path: str, endpoint: Endpoint, method: str) -> Route:
        return Route(path, guard_endpoint(endpoint, QUERY_PARAMETERS.get(path, frozenset())),
                     methods=[method])

    routes = [
        route("/api/openapi.json", api.openapi, "GET"),
        route("/api/health", Health(csms).get, "GET"),
        route("/api/charge-points", api.charge_points, "GET"),
        route(cp, api.charge_point, "GET"),
        route(cp + "/ocpp16/{action}", api.send, "POST"),
        route("/api/transactions", api.transactions, "GET"),
        route("/api/transactions/{transaction_id}", api.transaction, "GET"),
        route("/api/reservations", api.reservations, "GET"),
        route("/api/reservations/{reservation_id}", api.reservation, "GET"),
        route("/api/remote-commands", api.remote_commands, "GET"),
        route("/api/anomalies", api.anomalies, "GET"),
        route("/api/messages", api.messages, "GET"),
        route("/api/id-tags", api.id_tags, "GET"),
        route("/api/id-tags/{id_tag}", api.get_id_tag, "GET"),
        route("/api/id-tags/{id_tag}", api.put_id_tag, "PUT"),
        route("/api/id-tags/{id_tag}", api.delete_id_tag, "DELETE"),
        route("/api/registrations", registrations.list, "GET"),
        route(registration, registrations.get, "GET"),
        route(registration, registrations.put, "PUT"),
        route(registration, registrations.delete, "DELETE"),
        route(registration + "/authorization-key", registrations.rotate_key, "POST"),
    ]
    config = csms.config
    if hosts is None:
        hosts = allowed_hosts(config.api_host, config.api_allowed_hosts)
    return EdgeGuard(Starlette(routes=routes), token=token, hosts=hosts)
