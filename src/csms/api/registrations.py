"""``/api/registrations``: the charger registry (:mod:`csms.registry`) for operators.

List, read, add or change (PUT: status, security profile, password) and remove a
charge point's registration. Effects on a live connection:

* accepting a charge point that was not accepted sends it ``TriggerMessage
  BootNotification`` at once (its answer in ``bootTriggered``), so its new
  BootNotification is answered Accepted;
* disabling one closes its connection (1008); removing one under a policy other than
  ``accept`` closes it too.

A password is hashed before it is stored and never shown or logged; the answer says
only whether one is set. ``POST .../authorization-key`` rotates a connected charger's
AuthorizationKey (ChangeConfiguration with a new random key; stored when accepted).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import trio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from csms.api import render
from csms.api.common import ApiError, json_object, path_charge_point
from csms.passwords import BadPassword, check_password, hash_password, new_password
from csms.registry import PROFILES, STATUSES, Registration
from ocppj import CallTimeout

if TYPE_CHECKING:
    from csms.api.app import Api

#: Seconds the triggered BootNotification's TriggerMessage may take.
TRIGGER_TIMEOUT = 10.0
_FIELDS = frozenset({"status", "securityProfile", "password"})


class Registrations:
    """The endpoints, bound to one CSMS's API."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.csms = api.csms

    def _id(self, request: Request) -> str:
        return path_charge_point(request, relaxed=self.csms.config.relaxed_ids)

    def render(self, record: Registration) -> dict[str, Any]:
        """A registration as the API shows it (never the password or its hash)."""
        registry = self.csms.registry
        cp_id = record.charge_point_id
        return {
            "chargePoint": cp_id,
            "status": record.status,
            "securityProfile": record.security_profile,
            "effectiveSecurityProfile": registry.profile_of(cp_id),
            "passwordSet": record.password_hash is not None,
            "connected": self.csms.connections.get(cp_id) is not None,
            "updatedAt": render.iso(record.updated_at),
        }

    async def list(self, request: Request) -> Response:
        """GET /api/registrations."""
        records = self.csms.registry.records
        return JSONResponse([self.render(records[cp]) for cp in sorted(records)])

    async def get(self, request: Request) -> Response:
        """GET /api/registrations/{id}."""
        cp_id = self._id(request)
        record = self.csms.registry.records.get(cp_id)
        if record is None:
            raise ApiError(404, "NotFound", f"no registration for {cp_id!r}",
                           unknownChargers=self.csms.registry.unknown)
        return JSONResponse(self.render(record))

    async def put(self, request: Request) -> Response:
        """PUT /api/registrations/{id} with {status, securityProfile, password}: create
        (status defaults to accepted) or change only the fields given."""
        cp_id = self._id(request)
        body = await json_object(request)
        unknown = set(body) - _FIELDS
        if unknown:
            raise ApiError(400, "BadRequest", f"unknown fields: {', '.join(sorted(unknown))}")
        registry = self.csms.registry
        was_accepted = registry.accepted(cp_id)
        record = registry.records.get(cp_id) or Registration(cp_id)
        changes: dict[str, Any] = {"updated_at": self.csms.clock()}
        if "status" in body:
            if body["status"] not in STATUSES:
                raise ApiError(400, "BadRequest", f"status must be one of {', '.join(STATUSES)}")
            changes["status"] = body["status"]
        if "securityProfile" in body:
            profile = body["securityProfile"]
            if profile is not None and (isinstance(profile, bool) or profile not in PROFILES):
                raise ApiError(400, "BadRequest", "securityProfile must be 0, 1, 2, 3 or null")
            changes["security_profile"] = profile
        if "password" in body:
            password = body["password"]
            if password is None:
                changes["password_hash"] = None
            else:
                try:
                    check_password(password if isinstance(password, str) else "")
                except BadPassword as exc:
                    raise ApiError(400, "BadRequest", str(exc)) from None
                changes["password_hash"] = await trio.to_thread.run_sync(
                    hash_password, password
                )
        record = attrs.evolve(record, **changes)
        store = self.csms.store
        store.put_registration(record)
        await store.flush()
        registry.records[cp_id] = record
        answer = self.render(record)
        if record.status == "disabled":
            self._close(cp_id, "disabled by the operator")
        elif record.status == "accepted" and not was_accepted:
            answer["bootTriggered"] = await self._trigger_boot(cp_id)
        return JSONResponse(answer)

    async def delete(self, request: Request) -> Response:
        """DELETE /api/registrations/{id}."""
        cp_id = self._id(request)
        registry = self.csms.registry
        if cp_id not in registry.records:
            raise ApiError(404, "NotFound", f"no registration for {cp_id!r}")
        store = self.csms.store
        store.delete_registration(cp_id)
        await store.flush()
        del registry.records[cp_id]
        if registry.unknown != "accept":
            self._close(cp_id, "registration removed by the operator")
        return Response(status_code=204)

    async def rotate_key(self, request: Request) -> Response:
        """POST /api/registrations/{id}/authorization-key: a new random AuthorizationKey,
        sent to the connected charger with ChangeConfiguration; when it accepts, it is
        the charger's password from then on. The key itself is never shown."""
        cp_id = self._id(request)
        sent = {"key": "AuthorizationKey", "value": new_password()}
        try:
            answer = await self.api.exchange(
                cp_id, "ChangeConfiguration", sent, self.csms.config.call_timeout
            )
        except CallTimeout:
            raise ApiError(504, "Timeout", f"{cp_id!r} did not answer; its password is "
                           "unchanged (if it did take the key, set it again)") from None
        await self.csms.store.flush()
        body: dict[str, Any] = {"chargePoint": cp_id, **render.answer(answer)}
        record = self.csms.registry.records.get(cp_id)
        body["registration"] = self.render(record) if record is not None else None
        return JSONResponse(body)

    def _close(self, cp_id: str, reason: str) -> None:
        conn = self.csms.connections.get(cp_id)
        if conn is not None:
            conn.close(1008, reason)

    async def _trigger_boot(self, cp_id: str) -> dict[str, Any] | None:
        """Ask a connected charge point for a new BootNotification; its answer, or None
        when it is not connected (its next BootNotification is answered Accepted)."""
        if self.csms.connections.get(cp_id) is None:
            return None
        sent = {"requestedMessage": "BootNotification"}
        try:
            answer = await self.api.exchange(cp_id, "TriggerMessage", sent, TRIGGER_TIMEOUT)
        except CallTimeout:
            return {"timeout": True}
        except ApiError as exc:
            return {"error": {"code": exc.error, "description": exc.message}}
        await self.csms.store.flush()
        return render.answer(answer)
