"""RpcSession over a real loopback WebSocket: two sessions (CSMS and charge point) or one
session facing a raw peer. Time is virtual (``autojump_clock``); tests synchronise on
frame logs, trio events and ``wait_all_tasks_blocked``, never on sleeps.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing
from ocpp.v16 import call, call_result
from ocpp.v16.datatypes import IdTagInfo
from ocpp.v16.enums import (
    AuthorizationStatus,
    ConfigurationStatus,
    RegistrationStatus,
    RemoteStartStopStatus,
)

from ocppj import (
    CallError,
    CallInfo,
    CallTimeout,
    Direction,
    ErrorCode,
    InvalidResponse,
    PayloadError,
    Router,
    RpcSession,
    SessionClosed,
    current_call,
)
from ocppj.payloads import response_from_payload, to_payload
from ocppj.schemas import ACTIONS, schema
from ocppj.session import LATE_ANSWERS_KEPT
from ocppj_helpers import (
    WATCHDOG,
    example_payload,
    heartbeat_router,
    raw_csms,
    raw_peer,
    session_pair,
    websocket_pair,
)

IN, OUT = Direction.IN, Direction.OUT
NOW = "2026-11-24T10:00:00Z"


def boot_request() -> call.BootNotification:
    return call.BootNotification(
        charge_point_vendor="Acme", charge_point_model="X1", firmware_version="1.0"
    )


def accepted(parent: str | None = None) -> IdTagInfo:
    return IdTagInfo(status=AuthorizationStatus.accepted, parent_id_tag=parent)


# -- pairing -----------------------------------------------------------------------------


async def test_call_returns_the_typed_response(autojump_clock: trio.abc.Clock) -> None:
    seen: list[Any] = []
    csms = Router()

    @csms.on("BootNotification")
    async def boot(request: call.BootNotification) -> call_result.BootNotification:
        seen.append(request)
        return call_result.BootNotification(
            current_time=NOW, interval=300, status=RegistrationStatus.accepted
        )

    async with session_pair(csms) as pair:
        with trio.fail_after(WATCHDOG):
            result = await pair.cp.session.call(boot_request())

    assert seen == [boot_request()]
    assert result == call_result.BootNotification(
        current_time=NOW, interval=300, status=RegistrationStatus.accepted
    )
    assert isinstance(result.status, RegistrationStatus)
    # On the wire: camelCase, and the answer carries the CALL's uniqueId.
    [sent] = pair.cp.log.frames(OUT)
    assert sent[0] == 2
    assert sent[2:] == [
        "BootNotification",
        {"chargePointVendor": "Acme", "chargePointModel": "X1", "firmwareVersion": "1.0"},
    ]
    assert isinstance(sent[1], str)
    assert 0 < len(sent[1]) <= 36
    assert pair.cp.log.frames(IN) == [
        [3, sent[1], {"status": "Accepted", "currentTime": NOW, "interval": 300}]
    ]
    assert pair.csms.log.texts(IN) == pair.cp.log.texts(OUT)


async def test_nested_response_types_are_structured(autojump_clock: trio.abc.Clock) -> None:
    csms = Router()

    @csms.on("StartTransaction")
    async def start(request: call.StartTransaction) -> call_result.StartTransaction:
        return call_result.StartTransaction(
            transaction_id=request.meter_start + 1, id_tag_info=accepted(request.id_tag)
        )

    async with session_pair(csms) as pair:
        with trio.fail_after(WATCHDOG):
            first = await pair.cp.session.call(
                call.StartTransaction(connector_id=1, id_tag="TAG1", meter_start=41, timestamp=NOW)
            )
            second = await pair.cp.session.call(
                call.StartTransaction(connector_id=2, id_tag="TAG2", meter_start=99, timestamp=NOW)
            )

    assert first == call_result.StartTransaction(transaction_id=42, id_tag_info=accepted("TAG1"))
    assert isinstance(first.id_tag_info, IdTagInfo)
    assert second.transaction_id == 100
    assert second.id_tag_info.parent_id_tag == "TAG2"
    ids = [frame[1] for frame in pair.cp.log.calls(OUT)]
    assert len(set(ids)) == 2  # every CALL has its own uniqueId


async def test_the_csms_side_calls_the_charge_point(autojump_clock: trio.abc.Clock) -> None:
    cp = Router()
    changed: list[tuple[str, str]] = []

    @cp.on("ChangeConfiguration")
    async def change(request: call.ChangeConfiguration) -> call_result.ChangeConfiguration:
        changed.append((request.key, request.value))
        return call_result.ChangeConfiguration(status=ConfigurationStatus.reboot_required)

    async with session_pair(cp_router=cp) as pair:
        with trio.fail_after(WATCHDOG):
            result = await pair.csms.session.call(
                call.ChangeConfiguration(key="HeartbeatInterval", value="60")
            )

    assert changed == [("HeartbeatInterval", "60")]
    assert result.status == ConfigurationStatus.reboot_required
    assert pair.cp.log.frames(IN)[0][2:] == [
        "ChangeConfiguration",
        {"key": "HeartbeatInterval", "value": "60"},
    ]


# -- errors on our CALLs -----------------------------------------------------------------


async def test_call_raises_the_peers_callerror(autojump_clock: trio.abc.Clock) -> None:
    csms = Router()

    @csms.on("Authorize")
    async def authorize(request: call.Authorize) -> call_result.Authorize:
        raise CallError(ErrorCode.GENERIC_ERROR, "directory down", {"retryIn": 60})

    async with session_pair(csms) as pair:
        with trio.fail_after(WATCHDOG):
            with pytest.raises(CallError) as info:
                await pair.cp.session.call(call.Authorize(id_tag="TAG"))
            assert isinstance(info.value, CallError)
            assert info.value.code == "GenericError"
            assert info.value.description == "directory down"
            assert info.value.details == {"retryIn": 60}
            assert info.value.unique_id == pair.cp.log.calls(OUT)[0][1]

            # No handler on the other side: the 1.6 answer is NotSupported.
            with pytest.raises(CallError) as info:
                await pair.cp.session.call(call.DataTransfer(vendor_id="acme"))
            assert info.value.code == "NotSupported"

            # The session goes on.
            with pytest.raises(CallError) as info:
                await pair.cp.session.call(call.Authorize(id_tag="TAG"))
            assert info.value.code == "GenericError"


async def _answer_one_call(ws: Any, answer: Any) -> list[Any]:
    """Read one CALL from a raw WebSocket and send ``answer(uniqueId)`` as text."""
    frame = json.loads(await ws.get_message())
    await ws.send_message(answer(frame[1]))
    return list(frame)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        pytest.param({"currentTime": "never"}, "PropertyConstraintViolation", id="bad date-time"),
        pytest.param({"currentTime": 5}, "TypeConstraintViolation", id="wrong type"),
        pytest.param({}, "OccurenceConstraintViolation", id="missing field"),
        pytest.param({"currentTime": NOW, "x": 1}, "FormationViolation", id="unknown field"),
    ],
)
async def test_schema_breaking_callresult_raises_invalid_response(
    autojump_clock: trio.abc.Clock, payload: dict[str, Any], code: str
) -> None:
    async with raw_csms() as (cp, server_ws), trio.open_nursery() as nursery:
        with trio.fail_after(WATCHDOG):
            nursery.start_soon(
                _answer_one_call, server_ws, lambda uid: json.dumps([3, uid, payload])
            )
            with pytest.raises(InvalidResponse) as info:
                await cp.session.call(call.Heartbeat())
            assert info.value.code == code
            assert info.value.payload == payload

            # A good answer to the next CALL still gets through.
            nursery.start_soon(
                _answer_one_call, server_ws, lambda uid: json.dumps([3, uid, {"currentTime": NOW}])
            )
            assert await cp.session.call(call.Heartbeat()) == call_result.Heartbeat(NOW)
    assert cp.session.statistics().unmatched_responses == 0


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        pytest.param(
            lambda uid: json.dumps([3, uid, []]), "FormationViolation", id="array payload"
        ),
        pytest.param(lambda uid: json.dumps([3, uid]), "ProtocolError", id="CALLRESULT of 2"),
        pytest.param(
            lambda uid: json.dumps([4, uid, "GenericError"]), "ProtocolError", id="CALLERROR of 3"
        ),
    ],
)
async def test_malformed_response_fails_the_call_it_names(
    autojump_clock: trio.abc.Clock, answer: Any, code: str
) -> None:
    async with raw_csms() as (cp, server_ws), trio.open_nursery() as nursery:
        with trio.fail_after(WATCHDOG):
            nursery.start_soon(_answer_one_call, server_ws, answer)
            with pytest.raises(CallError) as info:
                await cp.session.call(call.Heartbeat())
            assert info.value.code == code


async def test_invalid_request_raises_locally_and_sends_nothing(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with session_pair() as pair:
        session = pair.cp.session
        with trio.fail_after(WATCHDOG):
            with pytest.raises(PayloadError) as info:
                await session.call(call.Authorize(id_tag="x" * 21))
            assert info.value.code == "PropertyConstraintViolation"
            assert info.value.action == "Authorize"
            assert info.value.path == "idTag"

            with pytest.raises(PayloadError) as info:
                await session.call_payload("StatusNotification", {"connectorId": 1})
            assert info.value.code == "OccurenceConstraintViolation"

            with pytest.raises(PayloadError) as info:
                await session.call(
                    call.StatusNotification(connector_id=1, error_code="NoError", status="Idle")
                )
            assert info.value.code == "PropertyConstraintViolation"

            with pytest.raises(CallError) as call_info:
                await session.call_payload("FlyToTheMoon", {})
            assert call_info.value.code == "NotImplemented"

            await trio.testing.wait_all_tasks_blocked()
    assert pair.cp.log.records == []
    assert pair.csms.log.records == []
    assert session.statistics().calls_sent == 0


# -- timeouts ----------------------------------------------------------------------------


async def test_call_times_out_after_the_default_timeout(autojump_clock: trio.abc.Clock) -> None:
    csms = Router()

    @csms.on("Heartbeat")
    async def never(request: call.Heartbeat) -> call_result.Heartbeat:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async with session_pair(csms, call_timeout=7) as pair:
        with trio.fail_after(WATCHDOG):
            start = trio.current_time()
            with pytest.raises(CallTimeout):
                await pair.cp.session.call(call.Heartbeat())
            assert trio.current_time() - start == pytest.approx(7)

            start = trio.current_time()
            with pytest.raises(CallTimeout):
                await pair.cp.session.call(call.Heartbeat(), timeout=2.5)
            assert trio.current_time() - start == pytest.approx(2.5)
    assert len(pair.csms.log.calls(IN)) == 2  # both were sent


async def test_late_answer_after_timeout_is_dropped_as_unmatched(
    autojump_clock: trio.abc.Clock,
) -> None:
    gates = [trio.Event(), trio.Event()]  # the first two CALLs are answered late
    served: list[int] = []
    csms = Router()

    @csms.on("Heartbeat")
    async def heartbeat(request: call.Heartbeat) -> call_result.Heartbeat:
        number = len(served)
        served.append(number)
        if number < len(gates):
            await gates[number].wait()
        return call_result.Heartbeat(current_time=f"2026-11-24T10:00:0{number}Z")

    async with session_pair(csms) as pair, trio.open_nursery() as nursery:
        cp = pair.cp.session
        with trio.fail_after(WATCHDOG):
            start = trio.current_time()
            with pytest.raises(CallTimeout):
                await cp.call(call.Heartbeat(), timeout=5)
            assert trio.current_time() - start == pytest.approx(5)

            # The late answer arrives while nothing is outstanding.
            gates[0].set()
            await pair.cp.log.wait_count(IN, 1)
            await trio.testing.wait_all_tasks_blocked()
            assert cp.statistics().unmatched_responses == 1

            with pytest.raises(CallTimeout):
                await cp.call(call.Heartbeat(), timeout=5)

            # A new CALL goes out while the timed-out one's answer is still owed; the late
            # answer arrives first and must not be taken for the new one's.
            third: list[Any] = []

            async def call_again() -> None:
                third.append(await cp.call(call.Heartbeat()))

            nursery.start_soon(call_again)
            await pair.csms.log.wait_count(IN, 3)
            gates[1].set()
            await pair.cp.log.wait_count(IN, 3)
            await trio.testing.wait_all_tasks_blocked()

    assert third == [call_result.Heartbeat(current_time="2026-11-24T10:00:02Z")]
    assert cp.statistics().unmatched_responses == 2
    call_ids = [frame[1] for frame in pair.cp.log.calls(OUT)]
    answer_ids = [frame[1] for frame in pair.cp.log.frames(IN)]
    assert answer_ids == call_ids  # each answer names its own CALL, in order


async def test_a_call_given_up_is_told_to_the_observer_before_its_late_answer(
    autojump_clock: trio.abc.Clock,
) -> None:
    # A message log that keeps the ABANDONED record lets a replay drop the late answer as
    # the live session did, even when no newer CALL came between.
    gates = [trio.Event(), trio.Event()]
    csms = Router()

    @csms.on("Heartbeat")
    async def heartbeat(request: call.Heartbeat) -> call_result.Heartbeat:
        await gates[len([g for g in gates if g.is_set()])].wait()
        return call_result.Heartbeat(current_time=NOW)

    async with session_pair(csms) as pair:
        cp = pair.cp.session
        with trio.fail_after(WATCHDOG):
            with pytest.raises(CallTimeout) as info:
                await cp.call(call.Heartbeat(), timeout=5)
            gates[0].set()
            await pair.cp.log.wait_count(IN, 1)
            await trio.testing.wait_all_tasks_blocked()

            # A caller cancelled while it waits gives its CALL up too.
            with trio.move_on_after(3):
                await cp.call(call.Heartbeat(), timeout=30)
            gates[1].set()
            await pair.cp.log.wait_count(IN, 2)
            await trio.testing.wait_all_tasks_blocked()

    sent = [frame[1] for frame in pair.cp.log.calls(OUT)]
    assert sent[0] == info.value.unique_id
    kinds = [(d, json.loads(t)) for d, t in pair.cp.log.records]
    assert [(d, body if d is Direction.ABANDONED else body[:2]) for d, body in kinds] == [
        (OUT, [2, sent[0]]),
        (Direction.ABANDONED, {"uniqueId": sent[0], "action": "Heartbeat",
                               "reason": "timeout", "sent": True}),
        (IN, [3, sent[0]]),  # late: dropped as unmatched
        (OUT, [2, sent[1]]),
        (Direction.ABANDONED, {"uniqueId": sent[1], "action": "Heartbeat",
                               "reason": "cancelled", "sent": True}),
        (IN, [3, sent[1]]),
    ]
    assert cp.statistics().unmatched_responses == 2


async def test_a_late_answer_still_reaches_the_callers_on_answer(
    autojump_clock: trio.abc.Clock,
) -> None:
    # The peer did what it answers, late or not: a CSMS records it. A session remembers
    # its last LATE_ANSWERS_KEPT CALLs given up; an answer to an older one is dropped.
    gate = trio.Event()
    csms = Router()

    @csms.on("Heartbeat")
    async def heartbeat(request: call.Heartbeat) -> call_result.Heartbeat:
        await gate.wait()
        return call_result.Heartbeat(current_time=NOW)

    heard: list[str] = []
    async with session_pair(csms) as pair:
        cp = pair.cp.session
        with trio.fail_after(WATCHDOG):
            given_up: list[str] = []
            for _ in range(LATE_ANSWERS_KEPT + 1):
                with pytest.raises(CallTimeout) as info:
                    await cp.exchange("Heartbeat", {}, timeout=2,
                                      on_answer=lambda a: heard.append(a.unique_id))
                given_up.append(info.value.unique_id)
            gate.set()  # all are answered now, in order
            await pair.cp.log.wait_count(IN, LATE_ANSWERS_KEPT + 1)
            await trio.testing.wait_all_tasks_blocked()

    assert heard == given_up[1:]  # the first was forgotten
    assert cp.statistics().unmatched_responses == 1


async def test_an_answered_call_is_not_abandoned(autojump_clock: trio.abc.Clock) -> None:
    csms = Router()

    @csms.on("Heartbeat")
    async def heartbeat(request: call.Heartbeat) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=NOW)

    async with session_pair(csms) as pair:
        with trio.fail_after(WATCHDOG):
            await pair.cp.session.call(call.Heartbeat())
    assert Direction.ABANDONED not in {d for d, _ in pair.cp.log.records}


# -- ordering ----------------------------------------------------------------------------


async def test_concurrent_callers_queue_one_call_at_a_time(autojump_clock: trio.abc.Clock) -> None:
    tags = ["A", "B", "C"]
    gates = {tag: trio.Event() for tag in tags}
    csms = Router()

    @csms.on("Authorize")
    async def authorize(request: call.Authorize) -> call_result.Authorize:
        await gates[request.id_tag].wait()
        return call_result.Authorize(id_tag_info=accepted(request.id_tag))

    answers: list[tuple[str, str]] = []
    async with session_pair(csms) as pair, trio.open_nursery() as nursery:
        cp, peer_log = pair.cp.session, pair.csms.log

        async def caller(tag: str) -> None:
            result = await cp.call(call.Authorize(id_tag=tag))
            answers.append((tag, result.id_tag_info.parent_id_tag))

        with trio.fail_after(WATCHDOG):
            for tag in tags:
                nursery.start_soon(caller, tag)
                # Let this caller reach the lock before the next one starts.
                await trio.testing.wait_all_tasks_blocked()
            for count, tag in enumerate(tags, start=1):
                await trio.testing.wait_all_tasks_blocked()
                # The peer has seen exactly one CALL more than it has answered.
                assert [c[3]["idTag"] for c in peer_log.calls(IN)] == tags[:count]
                assert len(peer_log.texts(OUT)) == count - 1
                gates[tag].set()
                await peer_log.wait_count(OUT, count)

    assert answers == [("A", "A"), ("B", "B"), ("C", "C")]
    kinds = [(d, json.loads(text)[0]) for d, text in pair.csms.log.records]
    assert kinds == [(IN, 2), (OUT, 3)] * 3


@pytest.mark.parametrize("answer_in_reader", [False, True])
async def test_incoming_calls_are_answered_in_arrival_order(
    autojump_clock: trio.abc.Clock, answer_in_reader: bool
) -> None:
    tags = ["A", "B", "C"]
    gates = {tag: trio.Event() for tag in tags}
    running: list[str] = []
    most_at_once = 0
    router = Router()

    @router.on("Authorize")
    async def authorize(request: call.Authorize) -> call_result.Authorize:
        nonlocal most_at_once
        running.append(request.id_tag)
        most_at_once = max(most_at_once, len(running))
        await gates[request.id_tag].wait()
        running.remove(request.id_tag)
        return call_result.Authorize(id_tag_info=accepted(request.id_tag))

    async with raw_peer(router, answer_in_reader=answer_in_reader) as peer:
        with trio.fail_after(WATCHDOG):
            # A careless peer sends three CALLs without waiting for answers.
            for tag in tags:
                await peer.send(json.dumps([2, f"id-{tag}", "Authorize", {"idTag": tag}]))
            # Answering in the reader, nothing more is read while A's handler runs.
            await peer.server.log.wait_count(IN, 1 if answer_in_reader else 3)
            gates["C"].set()
            gates["B"].set()
            await trio.testing.wait_all_tasks_blocked()
            assert peer.server.log.texts(OUT) == []  # B and C wait for A
            gates["A"].set()
            replies = [await peer.receive() for _ in tags]

    assert replies == [
        [3, f"id-{tag}", {"idTagInfo": {"status": "Accepted", "parentIdTag": tag}}] for tag in tags
    ]
    assert most_at_once == 1


async def test_answering_in_the_reader_runs_after_answer_callbacks_once_the_answer_is_out(
    autojump_clock: trio.abc.Clock,
) -> None:
    """answer_in_reader (the CSMS's way): no dispatcher task; the handler knows its CALL,
    and what waits for the answer runs once it went out, before the next CALL."""
    router = Router()
    order: list[str] = []
    sides: list[Any] = []

    @router.on("Heartbeat")
    async def heartbeat(request: call.Heartbeat) -> call_result.Heartbeat:
        info = current_call.get()
        order.append(f"handler {info.unique_id}")
        info.after_answer.append(lambda: order.append(
            f"after, {len(sides[0].log.texts(OUT))} answers out"))
        return call_result.Heartbeat(current_time=NOW)

    async with raw_peer(router, answer_in_reader=True) as peer:
        sides.append(peer.server)
        with trio.fail_after(WATCHDOG):
            await peer.send(json.dumps([2, "h1", "Heartbeat", {}]))
            assert await peer.receive() == [3, "h1", {"currentTime": NOW}]
            await peer.send(json.dumps([2, "h2", "Heartbeat", {}]))
            assert await peer.receive() == [3, "h2", {"currentTime": NOW}]
            await trio.testing.wait_all_tasks_blocked()
    assert order == ["handler h1", "after, 1 answers out", "handler h2",
                     "after, 2 answers out"]


# -- re-entrancy -------------------------------------------------------------------------


async def test_handler_may_call_the_peer_mid_dispatch(autojump_clock: trio.abc.Clock) -> None:
    csms, cp = Router(), Router()
    sessions: dict[str, RpcSession] = {}
    inside: list[CallInfo] = []

    @csms.on("BootNotification")
    async def boot(request: call.BootNotification) -> call_result.BootNotification:
        # Ask the charge point while its own BootNotification waits for this answer.
        config = await sessions["csms"].call(call.GetConfiguration(key=["HeartbeatInterval"]))
        inside.append(current_call.get())
        [entry] = config.configuration_key
        return call_result.BootNotification(
            current_time=NOW, interval=int(entry["value"]), status=RegistrationStatus.accepted
        )

    @cp.on("GetConfiguration")
    async def get_configuration(request: call.GetConfiguration) -> call_result.GetConfiguration:
        assert request.key == ["HeartbeatInterval"]
        return call_result.GetConfiguration(
            configuration_key=[{"key": "HeartbeatInterval", "readonly": False, "value": "123"}]
        )

    async with session_pair(csms, cp) as pair:
        sessions["csms"] = pair.csms.session
        with trio.fail_after(WATCHDOG):
            result = await pair.cp.session.call(boot_request())

    assert result.interval == 123
    # The CSMS saw: the Boot CALL, its own CALL out, the answer in, the Boot answer out.
    assert [(d, json.loads(t)[0]) for d, t in pair.csms.log.records] == [
        (IN, 2),
        (OUT, 2),
        (IN, 3),
        (OUT, 3),
    ]
    # The handler still knows which CALL it answers after its own call returned.
    [boot_call] = pair.csms.log.calls(IN)
    assert inside == [CallInfo(boot_call[1], "BootNotification", pair.csms.log.stamps[0])]


async def test_charge_point_handler_may_call_the_csms(autojump_clock: trio.abc.Clock) -> None:
    csms, cp = Router(), Router()
    sessions: dict[str, RpcSession] = {}
    started: list[int] = []

    @csms.on("StartTransaction")
    async def start(request: call.StartTransaction) -> call_result.StartTransaction:
        return call_result.StartTransaction(transaction_id=7, id_tag_info=accepted())

    @cp.on("RemoteStartTransaction")
    async def remote_start(
        request: call.RemoteStartTransaction,
    ) -> call_result.RemoteStartTransaction:
        result = await sessions["cp"].call(
            call.StartTransaction(
                connector_id=request.connector_id or 1,
                id_tag=request.id_tag,
                meter_start=0,
                timestamp=NOW,
            )
        )
        started.append(result.transaction_id)
        return call_result.RemoteStartTransaction(status=RemoteStartStopStatus.accepted)

    async with session_pair(csms, cp) as pair:
        sessions["cp"] = pair.cp.session
        with trio.fail_after(WATCHDOG):
            result = await pair.csms.session.call(
                call.RemoteStartTransaction(id_tag="TAG", connector_id=2)
            )

    assert result.status == RemoteStartStopStatus.accepted
    assert started == [7]
    assert pair.csms.log.calls(IN)[0][3]["connectorId"] == 2


# -- closing -----------------------------------------------------------------------------


async def test_waiting_calls_raise_session_closed_when_the_socket_closes(
    autojump_clock: trio.abc.Clock,
) -> None:
    csms = Router()

    @csms.on("Heartbeat")
    async def never(request: call.Heartbeat) -> call_result.Heartbeat:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    closed: list[str] = []
    async with session_pair(csms, call_timeout=1000) as pair:
        cp = pair.cp.session
        with trio.fail_after(WATCHDOG):
            async with trio.open_nursery() as nursery:

                async def caller(name: str) -> None:
                    with pytest.raises(SessionClosed):
                        await cp.call(call.Heartbeat())
                    closed.append(name)

                nursery.start_soon(caller, "outstanding")
                await pair.csms.log.wait_count(IN, 1)
                nursery.start_soon(caller, "queued")
                await trio.testing.wait_all_tasks_blocked()
                assert closed == []
                await pair.csms.ws.aclose()
            await pair.cp.finished.wait()  # run() returned

            assert closed == ["outstanding", "queued"]
            assert cp.closed
            assert cp.close_reason is not None
            assert cp.close_reason.code == 1000
            with pytest.raises(SessionClosed):
                await cp.call(call.Heartbeat())
    assert len(pair.cp.log.calls(OUT)) == 1  # nothing was sent after the first CALL


# -- observing ---------------------------------------------------------------------------


async def test_observer_sees_every_frame_in_and_out(autojump_clock: trio.abc.Clock) -> None:
    csms, cp = Router(), Router()

    @csms.on("Heartbeat")
    async def heartbeat(request: call.Heartbeat) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=NOW)

    @cp.on("Reset")
    async def reset(request: call.Reset) -> call_result.Reset:
        raise RuntimeError("cannot")

    async with session_pair(csms, cp) as pair:
        with trio.fail_after(WATCHDOG):
            await pair.cp.session.call(call.Heartbeat())
            with pytest.raises(CallError):
                await pair.csms.session.call(call.Reset(type="Soft"))
            with pytest.raises(CallError):
                await pair.cp.session.call(call.Authorize(id_tag="TAG"))

    assert pair.cp.log.texts(OUT) == pair.csms.log.texts(IN)
    assert pair.csms.log.texts(OUT) == pair.cp.log.texts(IN)
    assert [(d, json.loads(t)[0]) for d, t in pair.cp.log.records] == [
        (OUT, 2),  # Heartbeat
        (IN, 3),
        (IN, 2),  # Reset
        (OUT, 4),  # InternalError
        (OUT, 2),  # Authorize
        (IN, 4),  # NotSupported
    ]
    for _, text in pair.cp.log.records:  # compact JSON, no padding
        assert text == json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
    cp_stats, csms_stats = pair.cp.session.statistics(), pair.csms.session.statistics()
    assert (cp_stats.calls_sent, cp_stats.calls_received, cp_stats.errors_sent) == (2, 1, 1)
    assert (csms_stats.calls_sent, csms_stats.calls_received, csms_stats.errors_sent) == (1, 2, 1)


async def test_observer_sees_the_exact_wire_text_of_bad_frames(
    autojump_clock: trio.abc.Clock,
) -> None:
    router = heartbeat_router(NOW)

    good, garbage, broken = '[2, "g", "Heartbeat", {}]', "\u26a1 not json", '[2, "b", 7, {}]'
    async with raw_peer(router) as peer:
        with trio.fail_after(WATCHDOG):
            await peer.send(good)
            answer = await peer.client.get_message()
            await peer.send(garbage)
            await peer.send(broken)
            error = await peer.client.get_message()

    assert answer == f'[3,"g",{{"currentTime":"{NOW}"}}]'
    assert json.loads(error)[:3] == [4, "b", "FormationViolation"]
    assert peer.server.log.records == [
        (IN, good),
        (OUT, answer),
        (IN, garbage),
        (IN, broken),
        (OUT, error),
    ]


# -- every OCPP 1.6 action, typed, end to end ------------------------------------------


@pytest.mark.parametrize("full", [False, True], ids=["required fields", "all fields"])
async def test_every_action_round_trips_through_typed_dataclasses(
    autojump_clock: trio.abc.Clock, full: bool
) -> None:
    """Each action's CALL reaches a handler as its ``ocpp.v16.call`` dataclass and the
    handler's ``ocpp.v16.call_result`` dataclass reaches the caller, nothing lost."""
    requests = {a: example_payload(schema(a), full=full) for a in sorted(ACTIONS)}
    responses = {a: example_payload(schema(f"{a}Response"), full=full) for a in sorted(ACTIONS)}
    received: dict[str, Any] = {}
    router = Router()

    def handler_for(action: str) -> Any:
        async def handle(request: Any) -> Any:
            assert type(request) is getattr(call, action)
            # A list the ocpp dataclass defaults to [] (SendLocalList) comes back as [].
            received[action] = {
                k: v for k, v in to_payload(request).items() if v != [] or k in requests[action]
            }
            return response_from_payload(action, responses[action])

        return handle

    for action in ACTIONS:
        router.register(action, handler_for(action))

    failures: dict[str, str] = {}
    async with session_pair(router) as pair:
        with trio.fail_after(WATCHDOG):
            for action, payload in requests.items():
                try:
                    answer = await pair.cp.session.call_payload(action, payload)
                except CallError as exc:
                    failures[action] = f"{exc.code}: {exc.description}"
                    continue
                if received.get(action) != payload:
                    failures[action] = f"request arrived as {received.get(action)!r}"
                elif answer != responses[action]:
                    failures[action] = f"response arrived as {answer!r}"
                elif type(response_from_payload(action, answer)) is not getattr(
                    call_result, action
                ):
                    failures[action] = "response not typed"
    assert failures == {}


@pytest.mark.parametrize(("rate", "burst", "throttled"), [(10.0, 100.0, 50), (None, 100.0, 0)])
async def test_a_call_flood_is_read_at_the_call_rate_and_nothing_is_refused(
    autojump_clock: trio.abc.Clock, rate: float | None, burst: float, throttled: int
) -> None:
    """150 CALLs sent without waiting: the first ``burst`` are read at once, the rest at
    ``rate`` per second (the peer is pushed back by TCP), and every one is answered."""
    router = heartbeat_router(NOW)

    flood = 150
    async with websocket_pair() as (server_ws, client_ws), trio.open_nursery() as nursery:
        session = RpcSession(server_ws, router, name="csms", call_rate=rate, call_burst=burst)
        await nursery.start(session.run)
        start = trio.current_time()
        with trio.fail_after(WATCHDOG + flood):
            for n in range(flood):
                await client_ws.send_message(json.dumps([2, str(n), "Heartbeat", {}]))
            answers = [json.loads(await client_ws.get_message()) for _ in range(flood)]
        elapsed = trio.current_time() - start
        nursery.cancel_scope.cancel()
    assert [a[:2] for a in answers] == [[3, str(n)] for n in range(flood)]
    assert session.statistics().calls_throttled == throttled
    if rate is not None:
        assert elapsed == pytest.approx((flood - burst) / rate, abs=0.5)
    else:
        assert elapsed < 1


async def test_a_peer_over_its_rate_for_too_long_is_ended_with_1008(
    autojump_clock: trio.abc.Clock,
) -> None:
    router = heartbeat_router(NOW)

    async with websocket_pair() as (server_ws, client_ws), trio.open_nursery() as nursery:
        session = RpcSession(server_ws, router, name="csms", call_rate=10.0, call_burst=10.0,
                             call_flood_after=5.0)
        ended = trio.Event()

        async def run() -> None:
            await session.run()
            ended.set()

        nursery.start_soon(run)

        async def flood() -> None:
            n = 0
            while True:
                n += 1
                await client_ws.send_message(json.dumps([2, str(n), "Heartbeat", {}]))

        async def drain() -> None:
            while True:
                await client_ws.get_message()

        nursery.start_soon(flood)
        nursery.start_soon(drain)
        start = trio.current_time()
        with trio.fail_after(WATCHDOG + 60):
            await ended.wait()
        elapsed = trio.current_time() - start
        nursery.cancel_scope.cancel()
        await server_ws.aclose(*session.ended_for or (1000, None))  # as the CSMS does
    assert session.ended_for == (1008, "CALL rate exceeded")
    # The burst, then 10 per second for the 5 s allowed.
    assert 5.0 < elapsed < 7.0
    assert 60 <= session.statistics().calls_received <= 80
