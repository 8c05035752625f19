"""The OpenAPI 3.1 document of the operator API, served at ``/api/openapi.json``."""

from __future__ import annotations

import functools
from typing import Any

from csms.api.actions import CSMS_ACTIONS


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def _path(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema,
            "description": description}


_STRING = {"type": "string"}
_NSTRING = {"type": ["string", "null"]}
_NINT = {"type": ["integer", "null"]}
_TIME = {"type": ["string", "null"], "format": "date-time"}
_LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                "at most this many, newest first")
_CP_FILTER = _query("chargePoint", _STRING, "only this charge point")
_FORBIDDEN = _error("the Host header is not an allowed name of the API, or the request "
                    "came from another origin")
_UNAUTHORIZED = _error("a bearer token is configured and the request has none or another")


def _schemas() -> dict[str, Any]:
    count = {"type": "integer", "minimum": 0}
    return {
        "Health": {
            "type": "object",
            "required": ["status", "connections", "store"],
            "properties": {
                "status": {"enum": ["ok", "storeUnavailable", "stopping"]},
                "connections": count,
                "store": {
                    "type": "object",
                    "required": ["pending", "writing", "commits", "rowsWritten", "flushes",
                                 "unavailable"],
                    "properties": {
                        "pending": count, "writing": {"type": "boolean"}, "commits": count,
                        "rowsWritten": count, "flushes": count, "unavailable": _NSTRING,
                    },
                },
            },
        },
        "Error": {
            "type": "object",
            "required": ["error", "message"],
            "properties": {"error": _STRING, "message": _STRING},
            "additionalProperties": True,
        },
        "Answer": {
            "type": "object",
            "description": "The charge point's answer: `result` (CALLRESULT payload) or "
            "`error` (CALLERROR), never both.",
            "required": ["uniqueId", "action", "chargePoint"],
            "properties": {
                "uniqueId": _STRING,
                "action": _STRING,
                "chargePoint": _STRING,
                "result": {"type": "object"},
                "error": {
                    "type": "object",
                    "required": ["code", "description", "details"],
                    "properties": {"code": _STRING, "description": _STRING,
                                   "details": {"type": "object"}},
                },
            },
        },
        "Timeout": {
            "type": "object",
            "required": ["timeout", "action", "chargePoint"],
            "properties": {"uniqueId": _NSTRING, "action": _STRING, "chargePoint": _STRING,
                           "timeout": {"const": True}, "message": _STRING},
        },
        "Evse": {
            "type": "object",
            "properties": {
                "connectorId": {"type": "integer"}, "name": _STRING, "status": _STRING,
                "errorCode": _STRING, "info": _NSTRING, "vendorId": _NSTRING,
                "vendorErrorCode": _NSTRING, "statusTimestamp": _TIME,
                "pluggedIn": {"type": "boolean"},
            },
        },
        "ChargePoint": {
            "type": "object",
            "properties": {
                "id": _STRING,
                "connected": {"type": "boolean"},
                "connection": {"type": "object"},
                "boot": {"type": "object"},
                "status": _NSTRING,
                "errorCode": _NSTRING,
                "localListVersion": _NINT,
                "firmwareStatus": _NSTRING,
                "firmwareStatusAt": _TIME,
                "diagnosticsStatus": _NSTRING,
                "diagnosticsStatusAt": _TIME,
                "logStatus": _NSTRING,
                "logStatusAt": _TIME,
                "signedFirmwareStatus": _NSTRING,
                "signedFirmwareStatusAt": _TIME,
                "securityEventCount": {"type": "integer"},
                "certificateSigningRequest": {"type": ["object", "null"], "properties": {
                    "csr": _STRING, "receivedAt": _TIME}},
                "securityEvents": {"type": "array", "description": "the last 20", "items": {
                    "type": "object", "properties": {
                        "type": _STRING, "timestamp": _TIME, "techInfo": _NSTRING,
                        "receivedAt": _TIME}}},
                "evses": {"type": "array", "items": _ref("Evse")},
                "chargingProfiles": {"type": "array", "items": {"type": "object"}},
            },
        },
        "Transaction": {
            "type": "object",
            "properties": {
                "transactionId": {"type": "integer"}, "chargePoint": _STRING,
                "connectorId": {"type": "integer"}, "idTag": _STRING,
                "authorizationStatus": _STRING, "reservationId": _NINT,
                "active": {"type": "boolean"}, "startTimestamp": _STRING, "startedAt": _TIME,
                "meterStart": {"type": "integer"}, "stopTimestamp": _NSTRING,
                "stoppedAt": _TIME, "meterStop": _NINT, "energyWh": {"type": "number"},
                "stopReason": _NSTRING, "stopIdTag": _NSTRING,
                "powerW": {"type": ["number", "null"]}, "soc": {"type": ["number", "null"]},
                "samples": {"type": "integer"},
                "powerFromEnergy": {"type": "boolean", "description":
                                    "powerW comes from energy register deltas"},
                "nonCompliant": {"type": "boolean", "description":
                                 "it draws persistently more than the limit it accepted"},
                "limit": {
                    "type": ["object", "null"],
                    "description": "the limit its charger accepted for it (the first period"
                                   " of the profile), as recorded",
                    "properties": {
                        "limit": {"type": "number"}, "unit": {"enum": ["A", "W"]},
                        "chargingProfileId": {"type": "integer"}, "purpose": _STRING,
                        "acceptedAt": _TIME,
                    },
                },
                "limitRefused": {"type": ["string", "null"], "description":
                                 "the answer to a later profile it did not accept"},
                "limitUnanswered": {
                    "type": ["object", "null"],
                    "description": "the highest limit sent since and never answered: the"
                                   " charger may be enforcing it",
                    "properties": {"limit": {"type": "number"}, "unit": {"enum": ["A", "W"]},
                                   "sentAt": _TIME},
                },
            },
        },
        "Reservation": {
            "type": "object",
            "properties": {
                "reservationId": {"type": "integer"}, "chargePoint": _STRING,
                "connectorId": {"type": "integer"}, "idTag": _STRING, "parentIdTag": _NSTRING,
                "expiryDate": _STRING,
                "status": {"type": "string",
                           "description": "the charge point's answer to ReserveNow"},
                "state": {"enum": ["active", "expired", "used", "cancelled", "refused"]},
                "requestedAt": _TIME, "cancelStatus": _NSTRING, "cancelledAt": _TIME,
                "usedByTransactionId": _NINT, "usedAt": _TIME,
            },
        },
        "RemoteCommand": {
            "type": "object",
            "properties": {
                "action": _STRING, "chargePoint": _STRING, "status": _STRING,
                "connectorId": _NINT, "idTag": _NSTRING, "transactionId": _NINT, "at": _TIME,
            },
        },
        "Anomaly": {
            "type": "object",
            "description": "Something a charger sent that did not add up. `tolerated`: a "
            "transaction message that broke its schema, accepted with its usable data kept; "
            "`detail` lists each deviation and what was done, `raw` is the payload as sent. "
            "See docs/data-model.md.",
            "properties": {
                "kind": _STRING, "chargePoint": _STRING, "at": _TIME, "transactionId": _NINT,
                "detail": _STRING, "raw": _NSTRING,
            },
        },
        "Message": {
            "type": "object",
            "properties": {
                "seq": {"type": "integer"}, "chargePoint": _STRING,
                "direction": {"enum": ["in", "out", "connect", "disconnect", "abandoned"]},
                "at": _TIME, "frame": _STRING, "message": {},
            },
        },
        "IdTag": {
            "type": "object",
            "properties": {
                "idTag": _STRING, "status": _STRING, "expiryDate": _TIME,
                "parentIdTag": _NSTRING, "updatedAt": _TIME, "effectiveStatus": _STRING,
            },
        },
        "IdTagInput": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "status": {"enum": ["Accepted", "Blocked", "Expired", "Invalid",
                                    "ConcurrentTx"], "default": "Accepted"},
                "expiryDate": {"type": ["string", "null"], "format": "date-time"},
                "parentIdTag": {"type": ["string", "null"], "maxLength": 20},
            },
        },
        "Registration": {
            "type": "object",
            "properties": {
                "chargePoint": _STRING,
                "status": {"enum": ["accepted", "pending", "disabled"]},
                "securityProfile": {"type": ["integer", "null"], "enum": [0, 1, 2, 3, None]},
                "effectiveSecurityProfile": {"enum": [0, 1, 2, 3]},
                "passwordSet": {"type": "boolean"},
                "connected": {"type": "boolean"},
                "updatedAt": _TIME,
                "bootTriggered": {"type": ["object", "null"],
                                  "description": "PUT only: the TriggerMessage's answer"},
            },
        },
        "RegistrationInput": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "status": {"enum": ["accepted", "pending", "disabled"],
                           "default": "accepted"},
                "securityProfile": {"type": ["integer", "null"], "enum": [0, 1, 2, 3, None]},
                "password": {"type": ["string", "null"], "minLength": 16, "maxLength": 40,
                             "description": "the charger's AuthorizationKey (profiles 1 "
                             "and 2); stored hashed; null removes it"},
            },
        },
    }


def _list(schema: str, summary: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    return {"get": {
        "summary": summary,
        "parameters": params,
        "responses": {
            "200": _json({"type": "array", "items": _ref(schema)}, summary),
            "400": _error("a bad query parameter"),
            "401": _UNAUTHORIZED,
        },
    }}


def _one(schema: str, summary: str) -> dict[str, Any]:
    return {"get": {
        "summary": summary,
        "responses": {
            "200": _json(_ref(schema), summary),
            "401": _UNAUTHORIZED,
            "404": _error("no such record"),
        },
    }}


def _registration_paths(cp_param: dict[str, Any]) -> dict[str, Any]:
    return {
        "/api/registrations": _list("Registration", "Every registered charge point", []),
        "/api/registrations/{chargePointId}": {
            "parameters": [cp_param],
            **_one("Registration", "One charge point's registration"),
            "put": {
                "summary": "Register a charge point or change its registration",
                "description": "Only the fields given change; a new registration is "
                "accepted unless `status` says otherwise. Accepting a connected charge "
                "point that was not accepted triggers its BootNotification "
                "(`bootTriggered`); disabling one closes its connection.",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": _ref("RegistrationInput")}}},
                "responses": {
                    "200": _json(_ref("Registration"), "stored"),
                    "400": _error("invalid field"),
                    "401": _UNAUTHORIZED,
                },
            },
            "delete": {
                "summary": "Remove a charge point's registration",
                "responses": {
                    "204": {"description": "removed"},
                    "401": _UNAUTHORIZED,
                    "404": _error("no registration for this charge point"),
                },
            },
        },
        "/api/registrations/{chargePointId}/authorization-key": {
            "parameters": [cp_param],
            "post": {
                "summary": "Rotate a connected charge point's AuthorizationKey",
                "description": "Sends ChangeConfiguration AuthorizationKey with a new "
                "random 40-character key; when the charger accepts it, it is its password "
                "from then on (profiles 1, 2). The key is never shown or logged.",
                "responses": {
                    "200": _json({"type": "object"}, "the charger answered (`result` or "
                                 "`error`) and the registration as it is now"),
                    "401": _UNAUTHORIZED,
                    "404": _error("the charge point is not connected"),
                    "502": _error("the connection closed before the answer"),
                    "504": _error("no answer in time: the password is unchanged"),
                },
            },
        },
    }


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (built once)."""
    cp_param = _path("chargePointId", _STRING, "the charge point id")
    tag_param = _path("idTag", {"type": "string", "minLength": 1, "maxLength": 20}, "the idTag")
    paths: dict[str, Any] = {
        "/api/openapi.json": {"get": {
            "summary": "This document (no token needed)",
            "responses": {"200": _json({"type": "object"}, "the OpenAPI document")},
        }},
        "/api/charge-points": _list("ChargePoint", "Every charge point the CSMS knows", []),
        "/api/charge-points/{chargePointId}": {
            "parameters": [cp_param],
            **_one("ChargePoint", "One charge point: connection, boot data, EVSE states"),
        },
        "/api/charge-points/{chargePointId}/ocpp16/{action}": {
            "parameters": [cp_param, _path("action", {"enum": list(CSMS_ACTIONS)},
                                           "a CSMS-initiated OCPP 1.6 action")],
            "post": {
                "summary": "Send an OCPP 1.6 CALL to a connected charge point; its answer",
                "description": "The body is the OCPP payload as on the wire. It is checked "
                "against the 1.6 JSON schema first (400, nothing sent); otherwise sent as is, "
                "keys in schema order, and the charge point decides. A ReserveNow without "
                "reservationId gets one above every id this CSMS has used, returned as "
                "`reservationId`.",
                "parameters": [_query("timeout", {"type": "number", "exclusiveMinimum": 0,
                                                  "maximum": 3600},
                                      "seconds to wait (default: --call-timeout)")],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"type": "object"}}}},
                "responses": {
                    "200": _json(_ref("Answer"), "the charge point answered (result or error)"),
                    "400": _error("unknown action, not JSON, or the payload breaks the schema "
                                  "(`code` and `path` say how)"),
                    "401": _UNAUTHORIZED,
                    "404": _error("the charge point is not connected"),
                    "502": _error("the connection closed before the answer"),
                    "504": _json(_ref("Timeout"), "no answer in time"),
                },
            },
        },
        "/api/transactions": _list("Transaction", "Transactions, newest first", [
            _query("chargePoint", _STRING, "only this charge point"),
            _query("idTag", _STRING, "only this idTag"),
            _query("active", {"type": "boolean"}, "only open (true) or closed (false)"),
            _LIMIT,
        ]),
        "/api/transactions/{transactionId}": {
            "parameters": [_path("transactionId", {"type": "integer"}, "the transactionId")],
            **_one("Transaction", "One transaction"),
        },
        "/api/reservations": _list("Reservation", "Reservations, newest first", [
            _CP_FILTER,
            _query("state", {"enum": ["active", "expired", "used", "cancelled", "refused"]},
                   "only in this state (as of now)"),
            _LIMIT,
        ]),
        "/api/reservations/{reservationId}": {
            "parameters": [_path("reservationId", {"type": "integer"}, "the reservationId")],
            "get": {
                "summary": "One reservation",
                "description": "Reservation ids are per charge point: where several have "
                "this id, name one with chargePoint (else 409, listing them).",
                "parameters": [_CP_FILTER],
                "responses": {
                    "200": _json(_ref("Reservation"), "One reservation"),
                    "401": _UNAUTHORIZED,
                    "404": _error("no such reservation"),
                    "409": _error("several charge points have this reservationId "
                                  "(`chargePoints` lists them)"),
                },
            },
        },
        "/api/remote-commands": _list(
            "RemoteCommand", "RemoteStart/StopTransaction answers, newest first",
            [_CP_FILTER, _LIMIT],
        ),
        "/api/anomalies": _list("Anomaly", "Anomalies, newest first", [
            _CP_FILTER,
            _query("kind", _STRING, "only this kind (tolerated, register_backwards, ...)"),
            _LIMIT,
        ]),
        "/api/messages": _list("Message", "The OCPP message log, newest first",
                               [_CP_FILTER, _LIMIT]),
        "/api/id-tags": _list("IdTag", "Every idTag the operator set", []),
        "/api/id-tags/{idTag}": {
            "parameters": [tag_param],
            "get": {
                "summary": "An idTag's authorization data",
                "responses": {
                    "200": _json(_ref("IdTag"), "the idTag's data"),
                    "401": _UNAUTHORIZED,
                    "404": _error("no data for this idTag (`effectiveStatus` is the answer "
                                  "the policy gives it)"),
                },
            },
            "put": {
                "summary": "Set an idTag's authorization data",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": _ref("IdTagInput")}}},
                "responses": {
                    "200": _json(_ref("IdTag"), "stored"),
                    "400": _error("invalid field"),
                    "401": _UNAUTHORIZED,
                },
            },
            "delete": {
                "summary": "Remove an idTag's authorization data",
                "responses": {
                    "204": {"description": "removed"},
                    "401": _UNAUTHORIZED,
                    "404": _error("no data for this idTag"),
                },
            },
        },
    }
    paths.update(_registration_paths(cp_param))
    paths["/api/health"] = {"get": {
        "summary": "Whether the CSMS serves and stores; connections and store counters",
        "description": "200 while it serves and its database takes writes; 503 (same body) "
        "while the database cannot be written or the CSMS is stopping. Counters are since "
        "start: commits, rows and flushes over an interval give commit batch sizes.",
        "responses": {
            "200": _json(_ref("Health"), "serving"),
            "401": _UNAUTHORIZED,
            "503": _json(_ref("Health"), "not serving: see `status`"),
        },
    }}
    for operations in paths.values():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            operation["responses"]["403"] = _FORBIDDEN
            if method in ("post", "put"):
                operation["responses"]["415"] = _error(
                    "the body was not sent as application/json")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "trio-csms operator API",
            "version": "1.0.0",
            "description": "Send OCPP 1.6 commands to connected charge points and read the "
            "CSMS's records. Every request must name an allowed host in Host, come from no "
            "other origin, and send bodies as application/json; an unknown or repeated query "
            "parameter, or a charge point id that is not valid, is a 400. See docs/api.md.",
        },
        "servers": [{"url": "http://127.0.0.1:8180"}],
        "security": [{"bearer": []}, {}],
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": paths,
    }
