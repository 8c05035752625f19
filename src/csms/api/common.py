"""What every operator API module shares: the error answer, the endpoint wrapper that
checks query parameters, and the parameter and body readers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ocppj.identity import BadChargePointId, check_charge_point_id, decode_charge_point_id

#: Largest ``limit`` a list endpoint accepts.
MAX_LIMIT = 1000
#: idTags are CiString20 in OCPP 1.6.
ID_TAG_MAX = 20

Endpoint = Callable[[Request], Awaitable[Response]]

class ApiError(Exception):
    """An error answer: HTTP status, a short code and a message."""

    def __init__(self, status: int, error: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.extra = status, error, message, extra

    def response(self) -> JSONResponse:
        """The JSON error response."""
        body = {"error": self.error, "message": self.message, **self.extra}
        return JSONResponse(body, status_code=self.status)


def guard_endpoint(endpoint: Endpoint, query: frozenset[str] = frozenset()) -> Endpoint:
    """``endpoint`` answering :class:`ApiError` as JSON, and 400 to a query parameter
    that is not in ``query`` or is repeated (a misspelt filter must not widen a list)."""

    async def guarded(request: Request) -> Response:
        try:
            names = [name for name, _ in request.query_params.multi_items()]
            unknown = sorted(set(names) - query)
            if unknown:
                known = ", ".join(sorted(query)) or "none"
                raise ApiError(
                    400, "BadRequest",
                    f"unknown query parameters: {', '.join(unknown)} (known: {known})",
                )
            repeated = sorted({name for name in names if names.count(name) > 1})
            if repeated:
                raise ApiError(
                    400, "BadRequest", f"repeated query parameters: {', '.join(repeated)}"
                )
            return await endpoint(request)
        except ApiError as exc:
            return exc.response()

    return guarded


# -- parameters -------------------------------------------------------------------------


def limit_param(request: Request, default: int = 100) -> int:
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


def flag_param(request: Request, name: str) -> bool | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return None
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise ApiError(400, "BadRequest", f"{name} must be true or false")


def int_param(request: Request, name: str) -> int:
    try:
        return int(request.path_params[name])
    except ValueError:
        raise ApiError(404, "NotFound", f"{name} must be an integer") from None


async def json_object(request: Request) -> dict[str, Any]:
    body = await request.body()
    try:
        data = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "BadRequest", f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "BadRequest", "the body must be a JSON object")
    return data


def path_charge_point(request: Request, *, relaxed: bool) -> str:
    """The charge point id in the path (its fourth segment, ``/api/<kind>/{id}``), decoded
    once from the raw path by the OCPP server's own rule (400 when it is not valid)."""
    raw = request.scope.get("raw_path")
    try:
        if isinstance(raw, bytes):
            segment = raw.split(b"/")[3].decode("ascii", errors="strict")
            return decode_charge_point_id(segment, relaxed=relaxed)
        return check_charge_point_id(request.path_params["charge_point_id"], relaxed=relaxed)
    except UnicodeDecodeError:
        raise ApiError(
            400, "BadChargePointId", "the charge point id is not percent-encoded"
        ) from None
    except BadChargePointId as exc:
        raise ApiError(400, "BadChargePointId", str(exc)) from None


def query_charge_point(request: Request, *, relaxed: bool) -> str | None:
    """The ``chargePoint`` filter, checked as an id (None: no filter)."""
    cp_id = request.query_params.get("chargePoint") or None
    if cp_id is None:
        return None
    try:
        return check_charge_point_id(cp_id, relaxed=relaxed)
    except BadChargePointId as exc:
        raise ApiError(400, "BadChargePointId", str(exc)) from None
