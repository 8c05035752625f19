"""Pure helpers for the domain tests: answer a charge point's CALLs as the handlers do.

An exchange goes the live way without a network or a database: wire dicts are
schema-checked and turned into the ``ocpp`` package's typed payloads
(:mod:`ocppj.payloads`), then :class:`csms.recorder.Recorder` projects them into events and
folds them into the state, saving the changes on an in-memory store.
"""

from __future__ import annotations

import datetime
from typing import Any

import attrs

from csms.domain import events as ev
from csms.domain.state import DomainState, start_key
from csms.recorder import Recorder
from csms.storage.base import Changes
from ocppj.payloads import request_from_payload, response_from_payload
from ocppj.schemas import validate_request, validate_response

AT = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)
TIMESTAMP = "2024-05-01T11:59:58Z"


class MemoryStore:
    """The two writing methods of a Store, kept in lists."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, str, str, datetime.datetime]] = []
        self.changes: list[Changes] = []

    def append_frame(
        self, charger_id: str, direction: str, frame: str, at: datetime.datetime
    ) -> None:
        self.frames.append((charger_id, direction, frame, at))

    def forget_unsent(self, charger_id: str, unique_id: str, summary: str) -> None:
        prefix = f'[2,"{unique_id}",'
        for i in reversed(range(len(self.frames))):
            cp, direction, frame, at = self.frames[i]
            if cp == charger_id and direction == "out" and frame.startswith(prefix):
                self.frames[i] = (cp, direction, summary, at)
                return

    def save(self, changes: Changes) -> None:
        self.changes.append(changes)


class Csms:
    """A domain state and a recorder, answering CALLs the way the handlers decide."""

    def __init__(self) -> None:
        self.state = DomainState()
        self.store = MemoryStore()
        self.recorder = Recorder(self.state, self.store)  # type: ignore[arg-type]

    def exchange(
        self,
        charger_id: str,
        action: str,
        request: dict[str, Any],
        response: dict[str, Any],
        at: datetime.datetime = AT,
    ) -> list[ev.Event]:
        """Record one answered CALL given as wire payloads; the events it produced."""
        validate_request(action, request)
        validate_response(action, response)
        return self.recorder.exchange(
            charger_id,
            action,
            request_from_payload(action, request),
            response_from_payload(action, response),
            at,
        )

    # -- the charge point's messages, with the answers the handlers would give ----------

    def boot(
        self, charger_id: str, status: str = "Accepted", at: datetime.datetime = AT, **fields: Any
    ) -> list[ev.Event]:
        request = {"chargePointVendor": "Acme", "chargePointModel": "AC22", **fields}
        response = {"status": status, "currentTime": "2024-05-01T12:00:00.000Z", "interval": 300}
        return self.exchange(charger_id, "BootNotification", request, response, at)

    def heartbeat(self, charger_id: str, at: datetime.datetime = AT) -> list[ev.Event]:
        return self.exchange(
            charger_id, "Heartbeat", {}, {"currentTime": "2024-05-01T12:00:00.000Z"}, at
        )

    def status(
        self,
        charger_id: str,
        connector_id: int,
        status: str,
        at: datetime.datetime = AT,
        **fields: Any,
    ) -> list[ev.Event]:
        request = {"connectorId": connector_id, "status": status, "errorCode": "NoError", **fields}
        return self.exchange(charger_id, "StatusNotification", request, {}, at)

    def start_request(
        self,
        connector_id: int,
        id_tag: str = "TAG1",
        meter_start: int = 1000,
        timestamp: str = TIMESTAMP,
        **fields: Any,
    ) -> dict[str, Any]:
        return {
            "connectorId": connector_id,
            "idTag": id_tag,
            "meterStart": meter_start,
            "timestamp": timestamp,
            **fields,
        }

    def start_response(
        self, charger_id: str, request: dict[str, Any], status: str = "Accepted"
    ) -> dict[str, Any]:
        """The answer of the StartTransaction handler: the known transactionId of a
        retransmission, else the next one."""
        key = start_key(
            charger_id,
            request["connectorId"],
            request["idTag"],
            request["meterStart"],
            request["timestamp"],
        )
        known = self.state.start_keys.get(key)
        if known is not None:
            transaction_id, status = known, self.state.sessions[known].auth_status
        else:
            transaction_id = self.state.next_transaction_id
        return {"transactionId": transaction_id, "idTagInfo": {"status": status}}

    def start(
        self,
        charger_id: str,
        connector_id: int,
        id_tag: str = "TAG1",
        meter_start: int = 1000,
        timestamp: str = TIMESTAMP,
        at: datetime.datetime = AT,
        status: str = "Accepted",
        **fields: Any,
    ) -> list[ev.Event]:
        request = self.start_request(connector_id, id_tag, meter_start, timestamp, **fields)
        response = self.start_response(charger_id, request, status)
        return self.exchange(charger_id, "StartTransaction", request, response, at)

    def meter_values(
        self,
        charger_id: str,
        connector_id: int,
        sampled: list[dict[str, Any]] | None = None,
        transaction_id: int | None = None,
        at: datetime.datetime = AT,
        *,
        meter_value: list[dict[str, Any]] | None = None,
    ) -> list[ev.Event]:
        if meter_value is None:
            meter_value = [{"timestamp": TIMESTAMP, "sampledValue": sampled or []}]
        request: dict[str, Any] = {"connectorId": connector_id, "meterValue": meter_value}
        if transaction_id is not None:
            request["transactionId"] = transaction_id
        return self.exchange(charger_id, "MeterValues", request, {}, at)

    def stop(
        self,
        charger_id: str,
        transaction_id: int,
        meter_stop: int,
        at: datetime.datetime = AT,
        timestamp: str = TIMESTAMP,
        **fields: Any,
    ) -> list[ev.Event]:
        request = {
            "transactionId": transaction_id,
            "meterStop": meter_stop,
            "timestamp": timestamp,
            **fields,
        }
        return self.exchange(charger_id, "StopTransaction", request, {}, at)

    def connect(self, charger_id: str, at: datetime.datetime = AT, remote: str = "") -> None:
        self.recorder.connection(charger_id, "connect", at, remote=remote)

    def disconnect(self, charger_id: str, at: datetime.datetime = AT, **data: Any) -> None:
        self.recorder.connection(charger_id, "disconnect", at, **data)


def without_last_seen(state: DomainState) -> dict[str, Any]:
    """Everything ``state`` holds except the chargers' last-seen times (which every
    message moves, a retransmission too)."""
    return {
        "chargers": {
            key: attrs.evolve(charger, last_seen=None) for key, charger in state.chargers.items()
        },
        "evses": dict(state.evses),
        "sessions": dict(state.sessions),
        "open_sessions": dict(state.open_sessions),
        "start_keys": dict(state.start_keys),
        "next_transaction_id": state.next_transaction_id,
        "anomalies": list(state.anomalies),
    }


def energy_sample(value: str, unit: str | None = None, **fields: Any) -> dict[str, Any]:
    """A sampled value of the energy register (measurand left to its default)."""
    sampled: dict[str, Any] = {"value": value, **fields}
    if unit is not None:
        sampled["unit"] = unit
    return sampled
