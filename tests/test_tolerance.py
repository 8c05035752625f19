"""Transaction messages that break their schema but not their meaning are accepted, their
usable data kept and the deviation recorded (``ocppj.tolerance``); ambiguous ones are
refused as before; ``strict_payloads`` refuses them all.

The frames of the first tests are the ones real chargers sent (issue 15): each was
refused before, and the charger would have sent it again for days.
"""

from __future__ import annotations

import copy
import datetime
import json
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from api_helpers import api
from ocppj.payloads import request_from_payload
from ocppj.tolerance import KINDS, TOLERANT_ACTIONS, read_odd_timestamp, tolerate
from process_helpers import run_python
from raw_cp_helpers import Wire
from test_csms_e2e import WATCHDOG, ChargePoint, read_back, running_csms, shut_down, ts

AT = datetime.datetime(2026, 12, 7, 10, 0, tzinfo=datetime.UTC)
RECEIVED = "2026-12-07T10:00:00.000Z"


def kinds(action: str, payload: dict[str, Any]) -> list[str]:
    tolerated = tolerate(action, payload, AT)
    assert tolerated is not None, payload
    return [d.kind for d in tolerated.deviations]


def repaired(action: str, payload: dict[str, Any]) -> dict[str, Any]:
    tolerated = tolerate(action, payload, AT)
    assert tolerated is not None, payload
    return tolerated.payload


STOP = {"meterStop": 1200, "timestamp": "2026-12-07T09:59:00Z", "transactionId": 3}
START = {"connectorId": 1, "idTag": "TAG", "meterStart": 10, "timestamp": "2026-12-07T09:00:00Z"}
STATUS = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}


# -- the pure repair ----------------------------------------------------------------------


def test_an_over_long_idtag_in_stop_transaction_is_kept_whole() -> None:
    payload = {**STOP, "idTag": "A" * 21}
    assert repaired("StopTransaction", payload) == payload
    assert kinds("StopTransaction", payload) == ["overlong_string"]


def test_one_bad_sample_in_transaction_data_is_dropped_and_the_others_kept() -> None:
    payload = {**STOP, "transactionData": [{"timestamp": "2026-12-07T09:59:00Z", "sampledValue": [
        {"value": "1200", "unit": "Wh"},
        {"value": "80", "unit": "%", "measurand": "SoC"},
        {"value": "9", "unit": "furlong"},
    ]}]}
    result = repaired("StopTransaction", payload)
    assert result["transactionData"][0]["sampledValue"] == [
        {"value": "1200", "unit": "Wh"}, {"value": "80", "unit": "Percent", "measurand": "SoC"},
    ]
    assert kinds("StopTransaction", payload) == ["enum_alias", "malformed_sample"]


def test_an_unknown_error_code_becomes_other_error_and_the_status_is_kept() -> None:
    payload = {"connectorId": 1, "errorCode": "Error", "status": "Faulted"}
    assert repaired("StatusNotification", payload) == {**payload, "errorCode": "OtherError"}
    assert kinds("StatusNotification", payload) == ["unknown_enum"]


def test_an_extra_connector_id_in_authorize_is_dropped() -> None:
    assert repaired("Authorize", {"idTag": "ABC", "connectorId": 1}) == {"idTag": "ABC"}
    assert kinds("Authorize", {"idTag": "ABC", "connectorId": 1}) == ["extra_property"]


@pytest.mark.parametrize(
    ("action", "payload", "fixed", "kind"),
    [
        ("StartTransaction", {**START, "connectorId": "1"}, {"connectorId": 1}, "coerced_number"),
        ("StartTransaction", {**START, "meterStart": 10.0}, {"meterStart": 10}, "coerced_number"),
        ("StartTransaction", {**START, "meterStart": 12.7}, {"meterStart": 13}, "coerced_number"),
        ("StopTransaction", {**STOP, "meterStop": "1200"}, {"meterStop": 1200}, "coerced_number"),
        ("StopTransaction", {**STOP, "reason": "EVDisconnect"}, {"reason": "Other"},
         "unknown_enum"),
        ("StopTransaction", {**STOP, "reason": "local"}, {"reason": "Local"}, "enum_alias"),
        ("StartTransaction", {**START, "timestamp": "2026-12-7 9:00:00 UTC"},
         {"timestamp": "2026-12-07T09:00:00.000Z"}, "odd_timestamp"),
        ("StartTransaction", {**START, "timestamp": "0000-00-00T00:00:00Z"},
         {"timestamp": RECEIVED}, "unreadable_timestamp"),
        ("StopTransaction", {**STOP, "timestamp": "yesterday"}, {"timestamp": RECEIVED},
         "unreadable_timestamp"),
        ("StartTransaction", {**START, "reservationId": "none"}, {"reservationId": None},
         "dropped_field"),
        ("StatusNotification", {**STATUS, "timestamp": "never"}, {"timestamp": None},
         "dropped_field"),
        ("StatusNotification", {**STATUS, "info": "x" * 51}, {"info": "x" * 51},
         "overlong_string"),
        ("Authorize", {"idTag": 12345}, {"idTag": "12345"}, "coerced_string"),
        ("MeterValues", {"connectorId": 1, "meterValue": [
            {"timestamp": "2026-12-07T09:59:00Z", "sampledValue": [{"value": 1200}]}]},
         {"meterValue": [{"timestamp": "2026-12-07T09:59:00Z",
                          "sampledValue": [{"value": "1200"}]}]}, "coerced_string"),
        ("MeterValues", {"connectorId": 1, "meterValue": [
            {"timestamp": "2026-12-07T09:59:00Z", "sampledValue": [
                {"value": "1", "context": "Sample.Periodical", "location": "Outlet"}]}]},
         {"meterValue": [{"timestamp": "2026-12-07T09:59:00Z",
                          "sampledValue": [{"value": "1", "location": "Outlet"}]}]},
         "dropped_field"),
        ("MeterValues", {"connectorId": 1, "meterValue": [
            {"timestamp": "2026-12-07T09:59:00Z",
             "sampledValue": [{"value": "1", "unit": "kwh"}]}]},
         {"meterValue": [{"timestamp": "2026-12-07T09:59:00Z",
                          "sampledValue": [{"value": "1", "unit": "kWh"}]}]}, "enum_alias"),
    ],
)
def test_each_deviation_whose_meaning_is_clear_is_repaired(
    action: str, payload: dict[str, Any], fixed: dict[str, Any], kind: str
) -> None:
    """``fixed``: the fields repaired (None: left out)."""
    result = repaired(action, payload)
    expected = {k: v for k, v in {**payload, **fixed}.items() if v is not None}
    assert result == expected
    assert kinds(action, payload) == [kind]
    request_from_payload(action, result)


def test_a_meter_values_whose_every_sample_is_unreadable_is_accepted_with_none() -> None:
    payload = {"connectorId": 1, "transactionId": 3, "meterValue": [
        {"timestamp": "2026-12-07T09:59:00Z", "sampledValue": [{"value": "1", "unit": "furlong"}]}]}
    assert repaired("MeterValues", payload) == {**payload, "meterValue": []}
    assert kinds("MeterValues", payload) == ["malformed_sample"]


@pytest.mark.parametrize(
    ("action", "payload"),
    [
        pytest.param("StatusNotification", {**STATUS, "status": "Busy"}, id="unknown status"),
        pytest.param("StatusNotification", {**STATUS, "connectorId": "one"}, id="connector text"),
        pytest.param("StopTransaction", {k: v for k, v in STOP.items() if k != "transactionId"},
                     id="no transactionId"),
        pytest.param("StopTransaction", {**STOP, "transactionId": "abc"}, id="transactionId text"),
        pytest.param("StopTransaction", {**STOP, "transactionId": 3.5}, id="transactionId 3.5"),
        pytest.param("StartTransaction", {**START, "connectorId": 1.5}, id="connector 1.5"),
        pytest.param("StartTransaction", {k: v for k, v in START.items() if k != "idTag"},
                     id="no idTag"),
        pytest.param("StartTransaction", {**START, "meterStart": 1e30}, id="meterStart 1e30"),
        pytest.param("StartTransaction", {**START, "meterStart": "lots"}, id="meterStart text"),
        pytest.param("MeterValues", {"connectorId": 1, "meterValue": []}, id="no meter values"),
        pytest.param("MeterValues", {"connectorId": 1, "meterValue": [
            {"timestamp": "2026-12-07T09:59:00Z", "sampledValue": []}]}, id="no samples"),
        pytest.param("Authorize", {"idTag": None}, id="idTag null"),
        pytest.param("BootNotification", {"chargePointVendor": "V" * 21, "chargePointModel": "M"},
                     id="not a transaction message"),
    ],
)
def test_a_deviation_that_makes_the_meaning_ambiguous_is_not_repaired(
    action: str, payload: dict[str, Any]
) -> None:
    assert tolerate(action, payload, AT) is None


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2026-12-7 9:05:00 UTC", "2026-12-07T09:05:00+00:00"),
        ("2026-12-07T09:05:00.250+00:00Z", "2026-12-07T09:05:00.250000+00:00"),
        ("2026-12-07T10:05:00+0100 ", "2026-12-07T09:05:00+00:00"),
        ("2026-12-07 09:05 GMT", "2026-12-07T09:05:00+00:00"),
    ],
)
def test_odd_timestamps_whose_moment_is_clear_are_read(text: str, iso: str) -> None:
    moment = read_odd_timestamp(text)
    assert moment is not None and moment.isoformat() == iso


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01 10:00 UTC", "10:00", "",
                                  "0000-00-00T00:00:00Z"])
def test_timestamps_that_name_no_moment_are_not_read(text: str) -> None:
    assert read_odd_timestamp(text) is None


# -- every payload: repaired into one the handlers can read, or refused -------------------

BASES: dict[str, dict[str, Any]] = {
    "StartTransaction": {**START, "reservationId": 4},
    "StopTransaction": {**STOP, "idTag": "TAG", "reason": "Local", "transactionData": [
        {"timestamp": "2026-12-07T09:59:00Z", "sampledValue": [
            {"value": "1200", "unit": "Wh", "measurand": "Energy.Active.Import.Register"}]}]},
    "MeterValues": {"connectorId": 1, "transactionId": 3, "meterValue": [
        {"timestamp": "2026-12-07T09:59:00Z", "sampledValue": [
            {"value": "1200", "unit": "Wh", "context": "Sample.Periodic"},
            {"value": "7.2", "unit": "kW", "measurand": "Power.Active.Import", "phase": "L1"}]}]},
    "StatusNotification": {**STATUS, "info": "i", "timestamp": "2026-12-07T09:59:00Z",
                           "vendorId": "v", "vendorErrorCode": "e"},
    "Authorize": {"idTag": "TAG"},
}

ODD_VALUES = st.sampled_from([
    "1", "12.5", "%", "kwh", "KW", "Error", "local", "2026-1-2 3:04:05 UTC", "yesterday",
    "x" * 60, "", 1.0, 2.5, 2**60, 1e300, -1, True, None, [], {}, {"value": "1"},
])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=6,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


def _fresh(draw: st.DrawFn, values: st.SearchStrategy[Any]) -> Any:
    # sampled_from gives the same object each time: a {} put in a payload and then given
    # an extra key would be another {} in the next example (hypothesis calls that a flaky
    # strategy), so every drawn value is a copy.
    return copy.deepcopy(draw(values))


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    action = draw(st.sampled_from(sorted(TOLERANT_ACTIONS)))
    payload = copy.deepcopy(BASES[action])
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(payload)[1:]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = payload
        for part in path[:-1]:
            parent = parent[part]
        operation = draw(st.sampled_from(["replace", "delete", "extra"]))
        if operation == "replace":
            parent[path[-1]] = _fresh(draw, ODD_VALUES | JSON_VALUES)
        elif operation == "delete":
            del parent[path[-1]]
            if isinstance(parent, list) and not parent:
                parent.append(_fresh(draw, ODD_VALUES))
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = _fresh(draw, ODD_VALUES)
    return action, payload


@given(mutated())
def test_any_payload_is_repaired_into_one_the_handlers_read_or_refused(
    case: tuple[str, dict[str, Any]],
) -> None:
    action, payload = case
    sent = copy.deepcopy(payload)
    tolerated = tolerate(action, payload, AT)
    assert payload == sent, "the payload as sent is never changed"
    if tolerated is None:
        return
    assert tolerate(action, payload, AT) == tolerated, "the same repair every time (replay)"
    assert json.loads(tolerated.raw) == payload
    assert all(d.kind in KINDS for d in tolerated.deviations)
    request_from_payload(action, tolerated.payload)  # structures: the handlers can read it
    # Integers stay in 64 bits: nothing the store cannot hold.
    for path in _paths(tolerated.payload):
        value: Any = tolerated.payload
        for part in path:
            value = value[part]
        assert not isinstance(value, int) or abs(value) < 2**63


@given(st.sampled_from(sorted(TOLERANT_ACTIONS)))
def test_a_valid_payload_is_left_as_it_is(action: str) -> None:
    tolerated = tolerate(action, BASES[action], AT)
    assert tolerated is not None
    assert tolerated.payload == BASES[action] and tolerated.deviations == ()


# -- end to end: a raw charger, the real CSMS, the file, replay ----------------------------

BAD_FRAMES: list[tuple[str, dict[str, Any]]] = [
    ("Authorize", {"idTag": "TAG", "connectorId": 1}),
    ("StatusNotification", {"connectorId": 1, "errorCode": "Error", "status": "Faulted",
                            "timestamp": ts(30)}),
]


def stop_payload(transaction_id: int) -> dict[str, Any]:
    return {
        "transactionId": transaction_id, "meterStop": 1700, "timestamp": ts(29),
        "idTag": "TAG-ECHOED-TOO-LONG-1",  # 21 characters: the charger echoed it
        "reason": "EVDisconnected",
        "transactionData": [{"timestamp": ts(29), "sampledValue": [
            {"value": "1700", "unit": "Wh", "measurand": "Energy.Active.Import.Register"},
            {"value": "80", "unit": "%", "measurand": "SoC"},
            {"value": "3", "unit": "furlong"},
        ]}],
    }


async def test_real_world_frames_are_accepted_recorded_and_replayed(tmp_path: Path) -> None:
    db = tmp_path / "csms.db"
    wire = Wire()
    with trio.fail_after(WATCHDOG):
        async with running_csms(db, api_port=0) as (csms, port), \
                ChargePoint.connect(port, "CP_01", wire) as cp:
            await cp.boot()
            started = await cp.start(1, "TAG", 1000, 0)
            tx = started["transactionId"]
            stopped = await cp.exchange("StopTransaction", stop_payload(tx))
            assert stopped[0] == 3 and "idTagInfo" in stopped[2], stopped
            for action, payload in BAD_FRAMES:
                answer = await cp.exchange(action, payload)
                assert answer[0] == 3, answer
            session = csms.state.sessions[tx]
            assert (session.open, session.meter_stop, session.energy_wh) == (False, 1700, 700)
            assert session.stop_id_tag == "TAG-ECHOED-TOO-LONG-1"
            evse = csms.state.evses[("CP_01", 1)]
            assert (evse.status, evse.error_code) == ("Faulted", "OtherError")
            tolerated = [a for a in csms.state.anomalies if a.kind == "tolerated"]
            assert [a.detail.split(":")[0] for a in tolerated] == [
                "StopTransaction", "Authorize", "StatusNotification"]
            assert tolerated[0].transaction_id == tx
            assert "malformed_sample" in tolerated[0].detail
            assert json.loads(tolerated[0].raw or "") == stop_payload(tx)
            listed = await api(csms, "GET", "/api/anomalies",
                               query={"chargePoint": "CP_01", "kind": "tolerated"})
            assert listed.status == 200
            assert [a["raw"] for a in listed.body] == [a.raw for a in reversed(tolerated)]
            await shut_down(csms, cp)
        stored = await read_back(db)
    assert stored.diff == []
    assert [a.detail for a in stored.state.anomalies] == [a.detail for a in tolerated]
    shown = await run_python("-m", "csms", "status", "--db", str(db), "--json")
    assert shown.returncode == 0
    raws = [a["raw"] for a in json.loads(shown.stdout)["anomalies"] if a["kind"] == "tolerated"]
    assert raws == [a.raw for a in tolerated]
    text = await run_python("-m", "csms", "status", "--db", str(db))
    assert b"overlong_string" in text.stdout


async def test_strict_payloads_refuse_them_as_before(tmp_path: Path) -> None:
    db = tmp_path / "csms.db"
    wire = Wire()
    with trio.fail_after(WATCHDOG):
        async with running_csms(db, strict_payloads=True) as (csms, port), \
                ChargePoint.connect(port, "CP_01", wire) as cp:
            await cp.boot()
            tx = (await cp.start(1, "TAG", 1000, 0))["transactionId"]
            codes = []
            for action, payload in [("StopTransaction", stop_payload(tx)), *BAD_FRAMES]:
                answer = await cp.exchange(action, payload)
                assert answer[0] == 4, answer
                codes.append(answer[2])
            assert codes == ["PropertyConstraintViolation", "FormationViolation",
                             "PropertyConstraintViolation"]
            assert csms.state.sessions[tx].open
            assert csms.state.anomalies == []
            await shut_down(csms, cp)
        stored = await read_back(db)
    assert stored.diff == []
