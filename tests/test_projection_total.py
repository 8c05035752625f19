"""Every projector handles every schema-valid payload (issue 15, point 2): a charger's CALL
with any answer, and any answer of a charger to any CALL of ours, become events that fold
without raising, whatever the state they meet. Before, a SetChargingProfile with an empty
period list made the live CSMS log an error and ``replay`` stop with a traceback."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from csms.domain.projection import (
    OUT_PROJECTORS,
    PROJECTORS,
    events_for,
    events_for_abandoned,
    events_for_answer,
    events_for_call,
)
from csms.domain.state import DomainState, apply
from domain_helpers import AT, Csms, energy_sample
from ocppj.errors import ErrorCode
from ocppj.payloads import request_from_payload, response_from_payload
from schema_strategies import requests, responses

CP = "CP_01"


def _a_day() -> DomainState:
    """A state with what payloads may name: an open session (1) and a closed one (2) on
    CP_01, a reservation, a profile in force, an EVSE of CP_02."""
    csms = Csms()
    csms.boot(CP)
    csms.start(CP, 1, "TAG1", 1000)
    csms.meter_values(CP, 1, [energy_sample("1500")], transaction_id=1)
    csms.start(CP, 2, "TAG2", 0)
    csms.stop(CP, 2, 700)
    csms.status("CP_02", 1, "Available")
    answer = csms.recorder.answer
    answer(CP, "ReserveNow", {"connectorId": 1, "expiryDate": "2024-05-01T13:00:00Z",
                              "idTag": "T", "reservationId": 3},
           {"status": "Accepted"}, None, AT)
    answer(CP, "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": {
        "chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Relative", "transactionId": 1, "chargingSchedule": {
            "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0,
                                                                 "limit": 16}]}}},
           {"status": "Accepted"}, None, AT)
    assert set(csms.state.sessions) == {1, 2} and csms.state.sessions[1].open
    csms.state.take_dirty()
    return csms.state


DAY = _a_day()


def _fold(state: DomainState, events: list[Any]) -> None:
    for event in events:
        apply(state, event)
    assert not [a for a in state.anomalies if a.kind == "unprojectable"]


@given(st.data(), st.sampled_from(sorted(PROJECTORS)))
def test_every_charger_message_with_any_answer_projects_and_folds(
    data: st.DataObject, action: str
) -> None:
    state = copy.deepcopy(DAY)
    request = request_from_payload(action, data.draw(requests(action), label="request"))
    response = response_from_payload(action, data.draw(responses(action), label="response"))
    cp_id = data.draw(st.sampled_from([CP, "CP_02", "CP_NEW"]), label="charger")
    _fold(state, events_for(state, cp_id, action, request, response, AT))


@given(st.data(), st.sampled_from(sorted(OUT_PROJECTORS)))
def test_every_answer_to_our_calls_projects_and_folds(data: st.DataObject, action: str) -> None:
    state = copy.deepcopy(DAY)
    request = data.draw(requests(action), label="our request")
    cp_id = data.draw(st.sampled_from([CP, "CP_02", "CP_NEW"]), label="charger")
    _fold(state, events_for_call(state, cp_id, action, request, AT))
    outcome = data.draw(st.sampled_from(["answer", "error", "abandoned"]), label="outcome")
    if outcome == "abandoned":
        _fold(state, events_for_abandoned(state, cp_id, action, AT))
        return
    if outcome == "error":
        code = data.draw(st.sampled_from(list(ErrorCode)), label="code")
        _fold(state, events_for_answer(state, cp_id, action, request, None, str(code), AT))
        return
    response = data.draw(responses(action), label="answer")
    _fold(state, events_for_answer(state, cp_id, action, request, response, None, AT))


def test_a_set_charging_profile_with_no_period_changes_nothing() -> None:
    """The payload of the report: schema-valid, so the API sent it; the charger's answer,
    whatever it is, changes no record (no limit to keep)."""
    state = copy.deepcopy(DAY)
    before = copy.deepcopy(state)
    request = {"connectorId": 1, "csChargingProfiles": {
        "chargingProfileId": 9, "stackLevel": 1, "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Absolute", "transactionId": 1, "chargingSchedule": {
            "chargingRateUnit": "W", "chargingSchedulePeriod": []}}}
    for status in ("Accepted", "Rejected"):
        _fold(state, events_for_call(state, CP, "SetChargingProfile", request, AT))
        _fold(state, events_for_answer(state, CP, "SetChargingProfile", request,
                                       {"status": status}, None, AT))
    assert state.sessions == before.sessions and state.profiles == before.profiles
