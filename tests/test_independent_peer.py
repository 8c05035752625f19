"""Interoperability with an OCPP 1.6J implementation we did not write.

The peer is the ``ocpp`` package's own asyncio ``ocpp.v16.ChargePoint`` over the
``websockets`` library, run with ``asyncio.run`` in a worker thread while the CSMS runs in
trio on the test's thread. The peer validates every CALLRESULT we send against its copy
of the 1.6 schemas, so a malformed answer fails here even where our own tests agree with
our own code.

Real time throughout (the asyncio side knows nothing of trio's clock); every asyncio
coroutine is bounded by ``asyncio.wait_for``, every trio wait by ``fail_after``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
import trio
import websockets
from ocpp.exceptions import (
    NotSupportedError,
    OccurenceConstraintViolationError,
    TypeConstraintViolationError,
)
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.datatypes import MeterValue, SampledValue
from ocpp.v16.enums import (
    ChargePointErrorCode,
    ChargePointStatus,
    Location,
    Measurand,
    Phase,
    ReadingContext,
    RegistrationStatus,
    ResetType,
    UnitOfMeasure,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from csms.app import Csms
from csms.config import CsmsConfig

T = TypeVar("T")

#: Real seconds the asyncio side may take for one whole scenario.
PEER_TIMEOUT = 10.0
OCPP16 = Subprotocol("ocpp1.6")


@pytest.fixture
async def csms(nursery: trio.Nursery) -> AsyncIterator[tuple[Csms, int]]:
    service = Csms(CsmsConfig(port=0, heartbeat_interval=120))
    port = await nursery.start(service.serve)
    yield service, port
    with trio.fail_after(10):
        await service.shutdown()


async def in_asyncio(scenario: Callable[[], Awaitable[T]]) -> T:
    """Run an asyncio coroutine to completion in a worker thread, bounded in real time."""

    async def bounded() -> T:
        return await asyncio.wait_for(scenario(), PEER_TIMEOUT)

    with trio.fail_after(PEER_TIMEOUT + 5):
        return await trio.to_thread.run_sync(lambda: asyncio.run(bounded()))


def url(port: int, cp_id: str, prefix: str = "/ocpp/") -> str:
    return f"ws://127.0.0.1:{port}{prefix}{cp_id}"


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


def parse_ocpp_time(text: str) -> datetime.datetime:
    """An OCPP date-time, which must carry its UTC offset (``Z``)."""
    moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert moment.tzinfo is not None, text
    return moment


@contextlib.asynccontextmanager
async def running_peer(
    port: int, cp_id: str
) -> AsyncIterator[tuple[ChargePoint, ClientConnection]]:
    """An ``ocpp`` ChargePoint connected with ocpp1.6, its reader task running."""
    async with connect(url(port, cp_id), subprotocols=[OCPP16]) as ws:
        cp = ChargePoint(cp_id, ws, response_timeout=5)
        reader = asyncio.create_task(cp.start())
        try:
            yield cp, ws
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await reader


def realistic_meter_values() -> call.MeterValues:
    """One periodic sample of a three-phase 11 kW charge, as real chargers report it."""
    sample_time = now_iso()
    sampled = [
        SampledValue(
            value="12.345",
            context=ReadingContext.sample_periodic,
            measurand=Measurand.energy_active_import_register,
            location=Location.outlet,
            unit=UnitOfMeasure.kwh,
        ),
        SampledValue(
            value="11040.0",
            context=ReadingContext.sample_periodic,
            measurand=Measurand.power_active_import,
            unit=UnitOfMeasure.w,
        ),
    ]
    for phase, amps in ((Phase.l1, "16.02"), (Phase.l2, "15.97"), (Phase.l3, "16.10")):
        sampled.append(
            SampledValue(
                value=amps,
                context=ReadingContext.sample_periodic,
                measurand=Measurand.current_import,
                phase=phase,
                location=Location.outlet,
                unit=UnitOfMeasure.a,
            )
        )
    sampled.append(
        SampledValue(
            value="229.6",
            measurand=Measurand.voltage,
            phase=Phase.l1_n,
            unit=UnitOfMeasure.v,
        )
    )
    return call.MeterValues(
        connector_id=1,
        meter_value=[MeterValue(timestamp=sample_time, sampled_value=sampled)],
    )


async def test_a_whole_session_with_the_ocpp_package_charge_point(
    csms: tuple[Csms, int],
) -> None:
    service, port = csms

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with running_peer(port, "INTEROP-1") as (cp, ws):
            out["subprotocol"] = ws.subprotocol
            out["boot"] = await cp.call(
                call.BootNotification(
                    charge_point_model="Wallbox-22",
                    charge_point_vendor="IndependentVendor",
                    charge_point_serial_number="SN-0001",
                    firmware_version="1.2.3",
                ),
                suppress=False,
            )
            out["heartbeat"] = await cp.call(call.Heartbeat(), suppress=False)
            out["status"] = [
                await cp.call(
                    call.StatusNotification(
                        connector_id=connector,
                        error_code=ChargePointErrorCode.no_error,
                        status=status,
                        timestamp=now_iso(),
                    ),
                    suppress=False,
                )
                for connector, status in (
                    (0, ChargePointStatus.available),
                    (1, ChargePointStatus.preparing),
                )
            ]
            out["meter"] = await cp.call(realistic_meter_values(), suppress=False)
        return out

    before = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
    out = await in_asyncio(scenario)
    after = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=1)

    assert out["subprotocol"] == "ocpp1.6"
    boot = out["boot"]
    assert isinstance(boot, call_result.BootNotification)
    assert boot.status == RegistrationStatus.accepted
    assert boot.interval == 120
    assert before <= parse_ocpp_time(boot.current_time) <= after
    heartbeat = out["heartbeat"]
    assert isinstance(heartbeat, call_result.Heartbeat)
    assert before <= parse_ocpp_time(heartbeat.current_time) <= after
    assert all(isinstance(r, call_result.StatusNotification) for r in out["status"])
    assert len(out["status"]) == 2
    assert isinstance(out["meter"], call_result.MeterValues)
    # The peer left: the CSMS forgot it.
    with trio.fail_after(5):
        while service.connections.get("INTEROP-1") is not None:
            await trio.testing.wait_all_tasks_blocked()


async def test_an_action_the_csms_does_not_handle_is_the_peers_not_supported_error(
    csms: tuple[Csms, int],
) -> None:
    _, port = csms

    async def scenario() -> list[Exception | None]:
        errors: list[Exception | None] = []
        async with running_peer(port, "INTEROP-2") as (cp, _):
            # Reset is an OCPP 1.6 action the CSMS sends, never answers: recognised, not
            # supported, whatever handlers are added to the CSMS later.
            for request in (call.Reset(type=ResetType.soft), call.ClearCache()):
                try:
                    await cp.call(request, suppress=False)
                except Exception as exc:
                    errors.append(exc)
                else:
                    errors.append(None)
            # The connection is still usable afterwards.
            await cp.call(call.Heartbeat(), suppress=False)
        return errors

    errors = await in_asyncio(scenario)
    assert [type(e) for e in errors] == [NotSupportedError, NotSupportedError]


async def test_schema_violations_reach_the_peer_as_1_6_error_classes(
    csms: tuple[Csms, int],
) -> None:
    """The peer maps the code string to its exception class: 1.6 spelling or bust."""
    _, port = csms

    async def scenario() -> list[type[Exception]]:
        raised: list[type[Exception]] = []
        async with running_peer(port, "INTEROP-3") as (cp, _):
            broken: list[Any] = [
                # chargePointModel missing (None is dropped from the payload)
                call.BootNotification(charge_point_model=None, charge_point_vendor="V"),
                # connectorId of the wrong JSON type, and no number in it (a "1" is
                # read as 1: see ocppj.tolerance)
                call.StatusNotification(
                    connector_id="one",
                    error_code=ChargePointErrorCode.no_error,
                    status=ChargePointStatus.available,
                ),
            ]
            for request in broken:
                try:
                    await cp.call(request, suppress=False, skip_schema_validation=True)
                except Exception as exc:
                    raised.append(type(exc))
        return raised

    assert await in_asyncio(scenario) == [
        OccurenceConstraintViolationError,
        TypeConstraintViolationError,
    ]


#: Raw frames and the CALLERROR code OCPP 1.6 prescribes for each.
HOSTILE_CALLS: list[tuple[str, Any, str]] = [
    (
        "required field missing",
        [2, "h1", "BootNotification", {"chargePointVendor": "V"}],
        "OccurenceConstraintViolation",
    ),
    (
        "array below minItems",
        [2, "h2", "MeterValues", {"connectorId": 1, "meterValue": []}],
        "OccurenceConstraintViolation",
    ),
    (
        "field of the wrong type",
        [2, "h3", "BootNotification", {"chargePointVendor": "V", "chargePointModel": 42}],
        "TypeConstraintViolation",
    ),
    (
        "connectorId with no number in it (a sampled value 12.5 is read as '12.5')",
        [
            2,
            "h4",
            "MeterValues",
            {
                "connectorId": "one",
                "meterValue": [
                    {"timestamp": "2024-05-01T10:00:00Z", "sampledValue": [{"value": 12.5}]}
                ],
            },
        ],
        "TypeConstraintViolation",
    ),
    (
        "field the schema does not define",
        [
            2,
            "h5",
            "BootNotification",
            {"chargePointVendor": "V", "chargePointModel": "M", "colour": "red"},
        ],
        "FormationViolation",
    ),
    (
        "value outside its enum",
        [
            2,
            "h6",
            "StatusNotification",
            {"connectorId": 1, "errorCode": "NoError", "status": "Dancing"},
        ],
        "PropertyConstraintViolation",
    ),
    (
        "string longer than maxLength (CiString20)",
        [2, "h7", "BootNotification", {"chargePointVendor": "V" * 21, "chargePointModel": "M"}],
        "PropertyConstraintViolation",
    ),
    ("action OCPP 1.6 does not define", [2, "h8", "FlyToTheMoon", {}], "NotImplemented"),
    ("payload not an object", [2, "h9", "Heartbeat", []], "FormationViolation"),
    ("CALL with three elements", [2, "h10", "Heartbeat"], "ProtocolError"),
    ("CALL with five elements", [2, "h11", "Heartbeat", {}, {}], "ProtocolError"),
    ("unknown MessageTypeId", [7, "h12", "Heartbeat", {}], "FormationViolation"),
    ("Action not a string", [2, "h13", 42, {}], "FormationViolation"),
]


async def test_hostile_raw_frames_get_the_1_6_error_codes(csms: tuple[Csms, int]) -> None:
    _, port = csms

    async def scenario() -> list[Any]:
        replies: list[Any] = []
        async with connect(url(port, "INTEROP-RAW"), subprotocols=[OCPP16]) as ws:
            assert ws.subprotocol == "ocpp1.6"
            for _, frame, _ in HOSTILE_CALLS:
                await ws.send(json.dumps(frame))
                replies.append(json.loads(await ws.recv()))
            # A numeric uniqueId is a broken CALL, answered with the id echoed as sent.
            await ws.send('[2, 17, "Heartbeat", {}]')
            replies.append(json.loads(await ws.recv()))
            # Frames without a readable uniqueId have nobody to answer: nothing is sent,
            # the connection stays; the next reply is the Heartbeat's.
            for garbage in ("not json", '[2, "x", "Heartbeat", {', "[]", "[2]", "{}"):
                await ws.send(garbage)
            await ws.send('[2, "alive", "Heartbeat", {}]')
            replies.append(json.loads(await ws.recv()))
        return replies

    replies = await in_asyncio(scenario)
    for (what, frame, code), reply in zip(HOSTILE_CALLS, replies, strict=False):
        assert reply[0] == 4, what
        assert reply[1] == frame[1], what
        assert reply[2] == code, f"{what}: {reply}"
        assert isinstance(reply[3], str), what
        assert isinstance(reply[4], dict), what
    numeric = replies[len(HOSTILE_CALLS)]
    assert numeric[:3] == [4, 17, "FormationViolation"]
    alive = replies[-1]
    assert alive[:2] == [3, "alive"]
    parse_ocpp_time(alive[2]["currentTime"])
    # Never the 2.0 spellings the ocpp package itself uses.
    codes = {reply[2] for reply in replies[:-1]}
    assert not codes & {"OccurrenceConstraintViolation", "FormatViolation"}


@pytest.mark.parametrize("offered", [None, ["ocpp2.0.1"]], ids=["no-subprotocol", "ocpp2.0.1"])
async def test_a_client_without_ocpp1_6_gets_no_subprotocol_and_1002(
    csms: tuple[Csms, int], offered: list[str] | None
) -> None:
    service, port = csms

    async def scenario() -> tuple[str | None, int | None, str | None]:
        subprotocols = None if offered is None else [Subprotocol(p) for p in offered]
        async with connect(url(port, "NO-SUBPROTOCOL"), subprotocols=subprotocols) as ws:
            negotiated = ws.subprotocol
            try:
                # Nothing is ever answered: the server closes first.
                await ws.send('[2, "1", "Heartbeat", {}]')
                await ws.recv()
            except websockets.ConnectionClosed as exc:
                rcvd = exc.rcvd
                return negotiated, rcvd.code if rcvd else None, rcvd.reason if rcvd else None
            return negotiated, None, "got a message"

    negotiated, code, reason = await in_asyncio(scenario)
    assert negotiated is None
    assert code == 1002
    assert reason is not None
    assert "ocpp1.6" in reason
    assert service.connections.get("NO-SUBPROTOCOL") is None


async def test_ocpp1_6_is_chosen_among_several_offered(csms: tuple[Csms, int]) -> None:
    _, port = csms

    async def scenario() -> tuple[str | None, Any]:
        offered = [Subprotocol("ocpp2.0.1"), OCPP16, Subprotocol("ocpp1.5")]
        async with connect(url(port, "MULTI"), subprotocols=offered) as ws:
            await ws.send('[2, "1", "Heartbeat", {}]')
            return ws.subprotocol, json.loads(await ws.recv())

    negotiated, reply = await in_asyncio(scenario)
    assert negotiated == "ocpp1.6"
    assert reply[:2] == [3, "1"]


@pytest.mark.parametrize(
    "path",
    ["/other/CP1", "/ocpp/", "/ocpp/CP1/extra", "/"],
    ids=["other-prefix", "no-id", "nested", "root"],
)
async def test_a_path_outside_the_ocpp_prefix_is_refused_with_404(
    csms: tuple[Csms, int], path: str
) -> None:
    _, port = csms

    async def scenario() -> int:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with connect(f"ws://127.0.0.1:{port}{path}", subprotocols=[OCPP16]):
                pass
        return refused.value.response.status_code

    assert await in_asyncio(scenario) == 404
