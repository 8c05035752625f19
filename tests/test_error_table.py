"""Every row of ocppj.errors.ERROR_TABLE, end to end over a real loopback WebSocket.

A raw client sends the exact frame text to a running RpcSession and reads the exact
CALLERROR back; codes are compared with literal OCPP 1.6 spellings, so a wrong table
entry, a 2.0 spelling or a wrong rule mapping fails here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
from ocpp.v16 import call, call_result
from ocpp.v16.datatypes import IdTagInfo
from ocpp.v16.enums import AuthorizationStatus, ChargingProfileStatus, RegistrationStatus

from ocppj import ERROR_TABLE, CallError, ErrorCode, Failure, Router
from ocppj.errors import SCHEMA_RULE_FAILURES
from ocppj_helpers import WATCHDOG, RawPeer, raw_peer

NOW = "2026-11-24T10:00:00Z"
SECRET = "do-not-leak-this"
ACCEPTED = IdTagInfo(status=AuthorizationStatus.accepted)


def make_router() -> Router:
    """The server's handlers: some well behaved, some broken on purpose."""
    router = Router()

    @router.on("Heartbeat")
    async def heartbeat(request: call.Heartbeat) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=NOW)

    @router.on("StatusNotification")
    async def status(request: call.StatusNotification) -> call_result.StatusNotification:
        return call_result.StatusNotification()

    @router.on("MeterValues")
    async def meter_values(request: call.MeterValues) -> call_result.MeterValues:
        return call_result.MeterValues()

    @router.on("Authorize")
    async def authorize(request: call.Authorize) -> call_result.Authorize:
        return call_result.Authorize(id_tag_info=ACCEPTED)

    @router.on("StartTransaction")
    async def start(request: call.StartTransaction) -> call_result.StartTransaction:
        # An id the schema allows ("integer") but no 64-bit JSON encoder can write.
        transaction_id = 2**64 if request.id_tag == "HUGE" else 1
        return call_result.StartTransaction(transaction_id=transaction_id, id_tag_info=ACCEPTED)

    @router.on("SetChargingProfile")
    async def set_profile(request: call.SetChargingProfile) -> call_result.SetChargingProfile:
        return call_result.SetChargingProfile(status=ChargingProfileStatus.accepted)

    @router.on("DiagnosticsStatusNotification")
    async def explode(request: Any) -> Any:
        raise RuntimeError(SECRET)

    @router.on("BootNotification")
    async def invalid_result(request: call.BootNotification) -> call_result.BootNotification:
        # interval must be an integer: the response breaks its schema.
        return call_result.BootNotification(
            current_time=NOW,
            interval="sixty",  # type: ignore[arg-type]
            status=RegistrationStatus.accepted,
        )

    @router.on("SecurityEventNotification")
    async def refuse(request: Any) -> Any:
        raise CallError(ErrorCode.SECURITY_ERROR, "not from you", {"reason": "untrusted"})

    @router.on("FirmwareStatusNotification")
    async def refuse_with_junk(request: Any) -> Any:
        raise CallError(ErrorCode.GENERIC_ERROR, "busy", {"junk": object()})

    # DataTransfer is OCPP 1.6 but deliberately has no handler.
    return router


@pytest.fixture
async def peer(autojump_clock: trio.abc.Clock) -> AsyncIterator[RawPeer]:
    async with raw_peer(make_router()) as peer:
        yield peer


async def assert_alive(peer: RawPeer) -> None:
    """The session still answers: the connection outlived whatever came before."""
    reply = await peer.exchange('[2, "alive", "Heartbeat", {}]')
    assert reply == [3, "alive", {"currentTime": NOW}]
    assert not peer.server.session.closed


def status_notification(**changes: Any) -> str:
    payload = {"connectorId": 1, "errorCode": "NoError", "status": "Available", **changes}
    return json.dumps([2, "sn", "StatusNotification", payload])


def charging_profile(limit: float) -> dict[str, Any]:
    return {
        "connectorId": 1,
        "csChargingProfiles": {
            "chargingProfileId": 1,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
            },
        },
    }


def row(failure: Failure, frame: str, unique_id: Any, code: str, *, id: str) -> Any:
    return pytest.param(failure, frame, unique_id, code, id=id)


ROWS = [
    row(
        Failure.UNKNOWN_ACTION,
        '[2, "u1", "FlyToTheMoon", {}]',
        "u1",
        "NotImplemented",
        id="unknown action",
    ),
    row(
        Failure.NO_HANDLER,
        '[2, "u2", "DataTransfer", {"vendorId": "acme"}]',
        "u2",
        "NotSupported",
        id="no handler",
    ),
    row(
        Failure.WRONG_TYPE,
        status_notification(connectorId="1"),
        "sn",
        "TypeConstraintViolation",
        id="string for integer",
    ),
    row(
        Failure.WRONG_TYPE,
        '[2, "mv", "MeterValues", {"connectorId": 1, "meterValue": {}}]',
        "mv",
        "TypeConstraintViolation",
        id="object for array",
    ),
    row(
        Failure.MISSING_FIELD,
        '[2, "sn", "StatusNotification", {"connectorId": 1, "errorCode": "NoError"}]',
        "sn",
        "OccurenceConstraintViolation",
        id="missing field",
    ),
    row(
        Failure.MISSING_FIELD,
        '[2, "a", "Authorize", {}]',
        "a",
        "OccurenceConstraintViolation",
        id="missing only field",
    ),
    row(
        Failure.WRONG_CARDINALITY,
        '[2, "mv", "MeterValues", {"connectorId": 1, "meterValue": []}]',
        "mv",
        "OccurenceConstraintViolation",
        id="empty meterValue",
    ),
    row(
        Failure.WRONG_CARDINALITY,
        json.dumps(
            [
                2,
                "mv",
                "MeterValues",
                {"connectorId": 1, "meterValue": [{"timestamp": NOW, "sampledValue": []}]},
            ]
        ),
        "mv",
        "OccurenceConstraintViolation",
        id="empty sampledValue",
    ),
    row(
        Failure.UNKNOWN_FIELD,
        '[2, "hb", "Heartbeat", {"foo": 1}]',
        "hb",
        "FormationViolation",
        id="unknown field",
    ),
    row(
        Failure.UNKNOWN_FIELD,
        status_notification(connector=1),
        "sn",
        "FormationViolation",
        id="misspelt field",
    ),
    row(
        Failure.BAD_VALUE,
        status_notification(status="Plugged"),
        "sn",
        "PropertyConstraintViolation",
        id="enum",
    ),
    row(
        Failure.BAD_VALUE,
        json.dumps([2, "a", "Authorize", {"idTag": "x" * 21}]),
        "a",
        "PropertyConstraintViolation",
        id="length",
    ),
    row(
        Failure.BAD_VALUE,
        json.dumps([2, "p", "SetChargingProfile", charging_profile(16.05)]),
        "p",
        "PropertyConstraintViolation",
        id="range (multipleOf 0.1)",
    ),
    row(
        Failure.BAD_VALUE,
        status_notification(timestamp="yesterday"),
        "sn",
        "PropertyConstraintViolation",
        id="date-time",
    ),
    row(
        Failure.BAD_MESSAGE_TYPE,
        '[5, "m", "Heartbeat", {}]',
        "m",
        "FormationViolation",
        id="MessageTypeId 5",
    ),
    row(
        Failure.BAD_MESSAGE_TYPE,
        '[2.0, "m", "Heartbeat", {}]',
        "m",
        "FormationViolation",
        id="MessageTypeId 2.0",
    ),
    row(
        Failure.BAD_MESSAGE_TYPE,
        '["2", "m", "Heartbeat", {}]',
        "m",
        "FormationViolation",
        id='MessageTypeId "2"',
    ),
    row(
        Failure.BAD_MESSAGE_TYPE,
        '[true, "m", "Heartbeat", {}]',
        "m",
        "FormationViolation",
        id="MessageTypeId true",
    ),
    row(
        Failure.BAD_UNIQUE_ID,
        '[2, 17, "Heartbeat", {}]',
        17,
        "FormationViolation",
        id="numeric uniqueId echoed",
    ),
    row(
        Failure.BAD_ACTION_TYPE,
        '[2, "ac", 42, {}]',
        "ac",
        "FormationViolation",
        id="numeric Action",
    ),
    row(
        Failure.PAYLOAD_NOT_OBJECT,
        '[2, "po", "Heartbeat", []]',
        "po",
        "FormationViolation",
        id="payload array",
    ),
    row(
        Failure.PAYLOAD_NOT_OBJECT,
        '[2, "po", "Heartbeat", "{}"]',
        "po",
        "FormationViolation",
        id="payload string",
    ),
    row(Failure.WRONG_ARITY, '[2, "ar", "Heartbeat"]', "ar", "ProtocolError", id="CALL of 3"),
    row(
        Failure.WRONG_ARITY, '[2, "ar", "Heartbeat", {}, {}]', "ar", "ProtocolError", id="CALL of 5"
    ),
    row(
        Failure.HANDLER_FAILED,
        '[2, "hf", "DiagnosticsStatusNotification", {"status": "Idle"}]',
        "hf",
        "InternalError",
        id="handler raises",
    ),
    row(
        Failure.INVALID_RESULT,
        json.dumps(
            [2, "ir", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]
        ),
        "ir",
        "InternalError",
        id="invalid response",
    ),
    row(
        Failure.INVALID_RESULT,
        json.dumps(
            [
                2,
                "ir",
                "StartTransaction",
                {"connectorId": 1, "idTag": "HUGE", "meterStart": 0, "timestamp": NOW},
            ]
        ),
        "ir",
        "InternalError",
        id="unencodable response",
    ),
    row(
        Failure.HANDLER_FAILED,
        '[2, "hf", "FirmwareStatusNotification", {"status": "Idle"}]',
        "hf",
        "InternalError",
        id="CallError with unencodable details",
    ),
]


@pytest.mark.parametrize(("failure", "frame", "unique_id", "code"), ROWS)
async def test_error_table_row(
    peer: RawPeer, failure: Failure, frame: str, unique_id: Any, code: str
) -> None:
    assert ERROR_TABLE[failure] == code  # the row under test is the table's row
    with trio.fail_after(WATCHDOG):
        reply = await peer.exchange(frame)
        assert reply[:3] == [4, unique_id, code]
        assert type(reply[1]) is type(unique_id)
        assert len(reply) == 5
        assert isinstance(reply[3], str)
        assert isinstance(reply[4], dict)
        assert SECRET not in json.dumps(reply)
        assert peer.server.session.statistics().errors_sent == 1
        await assert_alive(peer)


async def test_handler_call_error_sends_the_chosen_code(peer: RawPeer) -> None:
    with trio.fail_after(WATCHDOG):
        reply = await peer.exchange(
            f'[2, "se", "SecurityEventNotification", {{"type": "x", "timestamp": "{NOW}"}}]'
        )
        assert reply == [4, "se", "SecurityError", "not from you", {"reason": "untrusted"}]
        await assert_alive(peer)


def test_every_failure_has_a_row_in_the_table() -> None:
    assert set(ERROR_TABLE) == set(Failure)
    assert all(isinstance(code, ErrorCode) for code in ERROR_TABLE.values())


def test_every_failure_is_exercised_end_to_end() -> None:
    assert {p.values[0] for p in ROWS} == set(Failure)


def test_schema_rules_map_to_failures_in_the_table() -> None:
    assert set(SCHEMA_RULE_FAILURES.values()) <= set(ERROR_TABLE)


def test_codes_are_spelled_as_in_ocpp_16() -> None:
    assert {code.value for code in ErrorCode} == {
        "NotImplemented",
        "NotSupported",
        "InternalError",
        "ProtocolError",
        "SecurityError",
        "FormationViolation",
        "PropertyConstraintViolation",
        "OccurenceConstraintViolation",
        "TypeConstraintViolation",
        "GenericError",
    }


# -- frames nobody can answer, and responses nobody asked for -----------------------------


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param("not json", id="not JSON"),
        pytest.param("{}", id="object"),
        pytest.param("[]", id="empty array"),
        pytest.param("[2]", id="no uniqueId"),
        pytest.param('[2, null, "Heartbeat", {}]', id="null uniqueId"),
        pytest.param('[2, 1.5, "Heartbeat", {}]', id="float uniqueId"),
        pytest.param('[2, true, "Heartbeat", {}]', id="boolean uniqueId"),
        pytest.param('[3, "nobody"]', id="broken CALLRESULT for nobody"),
    ],
)
async def test_unreadable_frame_gets_no_answer_and_is_counted(peer: RawPeer, frame: str) -> None:
    with trio.fail_after(WATCHDOG):
        await peer.send(frame)
        # Frames are handled in order: had the bad frame been answered, that answer
        # would arrive before the Heartbeat's.
        await assert_alive(peer)
        stats = peer.server.session.statistics()
        assert stats.unreadable_frames == 1
        assert stats.errors_sent == 0
        assert stats.unmatched_responses == 0


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param('[3, "nobody", {}]', id="CALLRESULT"),
        pytest.param('[4, "nobody", "GenericError", "late", {}]', id="CALLERROR"),
        pytest.param('[4, "nobody", "GenericError", "late"]', id="CALLERROR of 4"),
        pytest.param('[3, 17, {"currentTime": "x"}]', id="CALLRESULT numeric id"),
    ],
)
async def test_response_to_unknown_unique_id_is_dropped_and_counted(
    peer: RawPeer, frame: str
) -> None:
    with trio.fail_after(WATCHDOG):
        await peer.send(frame)
        await assert_alive(peer)
        stats = peer.server.session.statistics()
        assert stats.unmatched_responses == 1
        assert stats.unreadable_frames == 0
        assert stats.errors_sent == 0


# -- date-time is read leniently ----------------------------------------------------------


@pytest.mark.parametrize(
    "timestamp",
    [
        "2026-11-24T10:00:00Z",
        "2026-11-24T10:00:00",
        "2026-11-24 10:00:00.123+01:00",
        "2026-11-24T10:00:00.123456789+00:00",
    ],
)
async def test_lenient_timestamps_are_accepted(peer: RawPeer, timestamp: str) -> None:
    with trio.fail_after(WATCHDOG):
        assert await peer.exchange(status_notification(timestamp=timestamp)) == [3, "sn", {}]
        start = json.dumps(
            [
                2,
                "st",
                "StartTransaction",
                {"connectorId": 1, "idTag": "TAG", "meterStart": 0, "timestamp": timestamp},
            ]
        )
        reply = await peer.exchange(start)
        assert reply[:2] == [3, "st"]
        assert reply[2]["transactionId"] == 1


@pytest.mark.parametrize("timestamp", ["yesterday", "", "2026-13-01T10:00:00Z", "10:00"])
async def test_unreadable_timestamp_is_a_property_violation(peer: RawPeer, timestamp: str) -> None:
    with trio.fail_after(WATCHDOG):
        reply = await peer.exchange(status_notification(timestamp=timestamp))
        assert reply[:3] == [4, "sn", "PropertyConstraintViolation"]
        assert "timestamp" in reply[3]
