"""Pure tests of what the API added below it: schema-ordered payloads, and the domain
records from the answers to our CALLs and the new charger messages, replayed exactly."""

from __future__ import annotations

import datetime
import json
from typing import Any

from csms.domain import events as ev
from csms.domain.model import Reservation, SentProfile
from csms.domain.projection import events_for_answer
from csms.domain.state import DomainState, apply
from csms.replay import diff, rebuild
from csms.storage.base import LogRow
from ocppj.payloads import in_schema_order

AT = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)


def test_in_schema_order_top_level_and_nested() -> None:
    payload = {
        "csChargingProfiles": {
            "chargingSchedule": {
                "chargingSchedulePeriod": [{"limit": 16.0, "startPeriod": 0}],
                "chargingRateUnit": "A",
            },
            "stackLevel": 0,
            "chargingProfileKind": "Absolute",
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileId": 1,
        },
        "connectorId": 1,
    }
    ordered = in_schema_order("SetChargingProfile", payload)
    assert ordered == payload
    assert list(ordered) == ["connectorId", "csChargingProfiles"]
    profile = ordered["csChargingProfiles"]
    assert list(profile) == ["chargingProfileId", "stackLevel", "chargingProfilePurpose",
                             "chargingProfileKind", "chargingSchedule"]
    assert list(profile["chargingSchedule"]) == ["chargingRateUnit", "chargingSchedulePeriod"]
    assert list(profile["chargingSchedule"]["chargingSchedulePeriod"][0]) == [
        "startPeriod", "limit"]
    local = in_schema_order("SendLocalList", {
        "localAuthorizationList": [{"idTagInfo": {"status": "Accepted", "expiryDate": "x"},
                                    "idTag": "A"}],
        "updateType": "Full", "listVersion": 1})
    assert list(local) == ["listVersion", "localAuthorizationList", "updateType"]
    assert list(local["localAuthorizationList"][0]) == ["idTag", "idTagInfo"]
    assert list(local["localAuthorizationList"][0]["idTagInfo"]) == ["expiryDate", "status"]


def test_reservation_state_is_computed_from_now() -> None:
    r = Reservation(1, "CP", 1, "T", None, "2024-05-01T13:00:00Z", "Accepted", AT)
    assert r.state_at(AT) == "active"
    assert r.state_at(AT + datetime.timedelta(hours=1)) == "expired"


def _answer(state: DomainState, action: str, request: dict[str, Any],
            response: dict[str, Any] | None, error: str | None = None) -> None:
    for event in events_for_answer(state, "CP", action, request, response, error, AT):
        apply(state, event)


def test_clear_charging_profile_removes_what_it_matches() -> None:
    state = DomainState()
    for connector, pid, purpose in ((1, 10, "TxProfile"), (2, 20, "TxDefaultProfile")):
        apply(state, ev.ChargingProfileAnswered("CP", AT, SentProfile(
            "CP", connector, pid, purpose, 0, None, "A", 16.0, "Accepted", AT)))
    _answer(state, "ClearChargingProfile", {"chargingProfilePurpose": "TxProfile"},
            {"status": "Unknown"})
    assert len(state.profiles) == 2
    _answer(state, "ClearChargingProfile", {"chargingProfilePurpose": "TxProfile"},
            {"status": "Accepted"})
    assert list(state.profiles) == [("CP", 2)]
    _answer(state, "ClearChargingProfile", {"id": 20, "connectorId": 7}, {"status": "Accepted"})
    assert state.profiles == {}


def test_a_call_error_answer_is_recorded_as_its_code() -> None:
    state = DomainState()
    _answer(state, "ReserveNow", {"connectorId": 1, "expiryDate": "2024-05-01T13:00:00Z",
                                  "idTag": "T", "reservationId": 3}, None, "NotSupported")
    assert state.reservations[("CP", 3)].status == "NotSupported"
    _answer(state, "RemoteStartTransaction", {"idTag": "T"}, None, "InternalError")
    assert state.remote_commands[0].status == "InternalError"


def _frame(*parts: Any) -> str:
    return json.dumps(list(parts), separators=(",", ":"))


def test_replay_rebuilds_the_new_records_exactly() -> None:
    rows: list[LogRow] = []

    def row(direction: str, frame: str) -> None:
        at = AT + datetime.timedelta(seconds=len(rows))
        rows.append(LogRow(len(rows) + 1, "CP", direction, at, frame))

    row("connect", '{"remote":"127.0.0.1"}')
    row("out", _frame(2, "a", "ReserveNow", {"connectorId": 1, "expiryDate":
                                             "2024-05-01T13:00:00Z", "idTag": "T",
                                             "reservationId": 9}))
    row("in", _frame(3, "a", {"status": "Accepted"}))
    row("in", _frame(2, "b", "StartTransaction", {"connectorId": 1, "idTag": "T",
                                                  "meterStart": 0, "reservationId": 9,
                                                  "timestamp": "2024-05-01T12:00:05Z"}))
    row("out", _frame(3, "b", {"transactionId": 1, "idTagInfo": {"status": "Accepted"}}))
    row("out", _frame(2, "c", "SendLocalList", {"listVersion": 4, "updateType": "Full"}))
    row("in", _frame(3, "c", {"status": "Accepted"}))
    row("in", _frame(2, "d", "FirmwareStatusNotification", {"status": "Installing"}))
    row("out", _frame(3, "d", {}))
    row("in", _frame(2, "e", "DiagnosticsStatusNotification", {"status": "Uploaded"}))
    row("out", _frame(3, "e", {}))
    row("out", _frame(2, "f", "RemoteStopTransaction", {"transactionId": 1}))
    row("in", _frame(4, "f", "InternalError", "boom", {}))
    row("out", _frame(2, "g", "CancelReservation", {"reservationId": 9}))
    row("in", _frame(3, "g", {"status": "Rejected"}))
    rebuilt = rebuild(rows)
    state = rebuilt.state
    reservation = state.reservations[("CP", 9)]
    assert (reservation.used_by_transaction_id, reservation.cancel_status) == (1, "Rejected")
    charger = state.chargers["CP"]
    assert (charger.local_list_version, charger.firmware_status,
            charger.diagnostics_status) == (4, "Installing", "Uploaded")
    assert [(c.action, c.status) for c in state.remote_commands] == [
        ("RemoteStopTransaction", "InternalError")]
    # The same log, rebuilt twice, is identical; a changed record shows in the diff.
    again = rebuild(rows)
    assert diff(again.state, again.samples, rebuilt) == []
    state.reservations[("CP", 9)] = Reservation(9, "CP", 1, "T", None, "x", "Accepted", AT)
    assert any(line.startswith("reservations[('CP', 9)]") for line in diff(state, [], again))


def test_replay_records_a_late_answer_after_an_abandoned_row_as_the_live_csms_does() -> None:
    def log(reconnected: bool) -> list[LogRow]:
        rows: list[LogRow] = []

        def row(direction: str, frame: str) -> None:
            at = AT + datetime.timedelta(seconds=len(rows))
            rows.append(LogRow(len(rows) + 1, "CP", direction, at, frame))

        row("connect", '{"remote":"127.0.0.1"}')
        row("out", _frame(2, "a", "SendLocalList", {"listVersion": 4, "updateType": "Full"}))
        # The CSMS gave the CALL up: no answer within its timeout.
        row("abandoned", '{"uniqueId":"a","action":"SendLocalList"}')
        if reconnected:
            row("disconnect", '{"reason":"gone"}')
            row("connect", '{"remote":"127.0.0.1"}')
        row("in", _frame(3, "a", {"status": "Accepted"}))  # late
        return rows

    # On the same connection the live CSMS still records a late answer (the charger did
    # what it answers); on a new one nothing of the old one is awaited: dropped.
    assert rebuild(log(reconnected=False)).state.chargers["CP"].local_list_version == 4
    assert rebuild(log(reconnected=True)).state.chargers["CP"].local_list_version is None


def test_an_abandoned_row_for_another_call_changes_nothing() -> None:
    rows = [
        LogRow(1, "CP", "connect", AT, '{"remote":"127.0.0.1"}'),
        LogRow(2, "CP", "out", AT, _frame(2, "b", "SendLocalList",
                                          {"listVersion": 5, "updateType": "Full"})),
        LogRow(3, "CP", "abandoned", AT, '{"uniqueId":"a","action":"SendLocalList"}'),
        LogRow(4, "CP", "in", AT, _frame(3, "b", {"status": "Accepted"})),
    ]
    assert rebuild(rows).state.chargers["CP"].local_list_version == 5


def test_a_refused_reserve_now_does_not_replace_an_accepted_reservation() -> None:
    state = DomainState()
    first = {"connectorId": 1, "expiryDate": "2024-05-01T13:00:00Z", "idTag": "T",
             "reservationId": 3}
    _answer(state, "ReserveNow", first, {"status": "Accepted"})
    # The same reservationId again, refused: the charger keeps the accepted one.
    _answer(state, "ReserveNow", {**first, "connectorId": 2, "idTag": "U"},
            {"status": "Occupied"})
    held = state.reservations[("CP", 3)]
    assert (held.status, held.connector_id, held.id_tag) == ("Accepted", 1, "T")
    # Accepted, it replaces the reservation.
    _answer(state, "ReserveNow", {**first, "connectorId": 2, "idTag": "U"},
            {"status": "Accepted"})
    held = state.reservations[("CP", 3)]
    assert (held.status, held.connector_id, held.id_tag) == ("Accepted", 2, "U")
    # A refused first attempt is recorded as refused, and an accepted retry replaces it.
    _answer(state, "ReserveNow", {**first, "reservationId": 4}, {"status": "Rejected"})
    assert state.reservations[("CP", 4)].status == "Rejected"
    _answer(state, "ReserveNow", {**first, "reservationId": 4}, None, "InternalError")
    assert state.reservations[("CP", 4)].status == "InternalError"
    _answer(state, "ReserveNow", {**first, "reservationId": 4}, {"status": "Accepted"})
    assert state.reservations[("CP", 4)].status == "Accepted"
