"""What the domain knows a charger may be enforcing for a session (issue #13, point 8):
the profile it accepted, one on its way, one never answered. Pure, from the frames of
the message log, so replay and a restarted CSMS know it too."""

from __future__ import annotations

import datetime

import orjson

from csms import replay
from csms.domain import events as ev
from csms.storage.base import LogRow
from domain_helpers import AT, Csms

CP = "CP-1"


def start(csms: Csms) -> int:
    (event,) = [e for e in csms.start(CP, 1) if isinstance(e, ev.SessionStarted)]
    return event.transaction_id


def request(tx: int, amps: float) -> dict[str, object]:
    return {"connectorId": 1, "csChargingProfiles": {
        "chargingProfileId": 9101, "transactionId": tx, "stackLevel": 1,
        "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Relative",
        "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [
            {"startPeriod": 0, "limit": amps, "numberPhases": 3}]}}}


def sent(csms: Csms, tx: int, amps: float, minute: int) -> None:
    frame = orjson.dumps([2, f"u{minute}", "SetChargingProfile", request(tx, amps)]).decode()
    csms.recorder.call_frame(CP, "out", frame, AT + datetime.timedelta(minutes=minute))


def given_up(csms: Csms, minute: int) -> None:
    frame = orjson.dumps({"uniqueId": f"u{minute}", "action": "SetChargingProfile"}).decode()
    csms.recorder.call_frame(CP, "abandoned", frame, AT + datetime.timedelta(minutes=minute))


def answered(csms: Csms, tx: int, amps: float, status: str, minute: int) -> None:
    csms.recorder.answer(CP, "SetChargingProfile", request(tx, amps), {"status": status}, None,
                         AT + datetime.timedelta(minutes=minute))


def test_a_profile_is_pending_until_answered_and_uncertain_if_never() -> None:
    csms = Csms()
    tx = start(csms)
    sent(csms, tx, 16.0, 1)
    session = csms.state.sessions[tx]
    assert session.pending is not None and session.pending.limit == 16.0
    answered(csms, tx, 16.0, "Accepted", 1)
    session = csms.state.sessions[tx]
    assert session.pending is None and session.limit is not None
    # 32 A goes out and is never answered; then 20 A, never answered either: the charger
    # may be enforcing either, so the highest stays uncertain.
    sent(csms, tx, 32.0, 2)
    given_up(csms, 3)
    sent(csms, tx, 20.0, 4)
    given_up(csms, 5)
    session = csms.state.sessions[tx]
    assert session.pending is None
    assert session.uncertain is not None and session.uncertain.limit == 32.0
    assert session.uncertain.watts() == 32.0 * 690
    assert session.limit is not None and session.limit.limit == 16.0
    # A refusal changes nothing it may enforce; a limit it accepts replaces them all.
    sent(csms, tx, 10.0, 6)
    answered(csms, tx, 10.0, "Rejected", 6)
    assert csms.state.sessions[tx].uncertain is not None
    sent(csms, tx, 10.0, 7)
    answered(csms, tx, 10.0, "Accepted", 7)
    session = csms.state.sessions[tx]
    assert (session.uncertain, session.pending) == (None, None)
    assert session.limit is not None and session.limit.limit == 10.0


def test_frames_that_are_not_a_sessions_profile_change_nothing() -> None:
    csms = Csms()
    tx = start(csms)
    before = csms.state.sessions[tx]
    csms.recorder.call_frame(CP, "out", '[2, "x", "Reset", {"type": "Soft"}]', AT)
    csms.recorder.call_frame(CP, "out", '[3, "y", {}]', AT)
    sent(csms, tx + 1, 16.0, 1)  # an unknown transaction
    given_up(csms, 2)  # nothing pending
    assert csms.state.sessions[tx] == before


def test_replay_records_a_late_answer_as_the_live_csms_does() -> None:
    at = AT

    def row(seq: int, direction: str, frame: object) -> LogRow:
        text = frame if isinstance(frame, str) else orjson.dumps(frame).decode()
        return LogRow(seq, CP, direction, at + datetime.timedelta(seconds=seq), text)

    start_request = {"connectorId": 1, "idTag": "T", "meterStart": 0,
                     "timestamp": "2026-01-05T05:00:00Z"}
    rows = [row(1, "connect", {"remote": "x"}),
            row(2, "in", [2, "s", "StartTransaction", start_request]),
            row(3, "out", [3, "s", {"transactionId": 1, "idTagInfo": {"status": "Accepted"}}])]
    seq = 3
    # Nine profiles given up, then answers to the first (forgotten: a session keeps the
    # last eight) and to the last (recorded).
    for n in range(1, 10):
        rows.append(row(seq := seq + 1, "out",
                        [2, f"p{n}", "SetChargingProfile", request(1, float(n))]))
        rows.append(row(seq := seq + 1, "abandoned",
                        {"uniqueId": f"p{n}", "action": "SetChargingProfile"}))
    rows.append(row(seq := seq + 1, "in", [3, "p1", {"status": "Accepted"}]))
    assert replay.rebuild(rows).state.sessions[1].limit is None
    # A late Accepted for a lower one than the highest given up: in force, and the
    # higher one may still be applied (it may have been sent after it).
    lower = [*rows, row(seq + 1, "in", [3, "p8", {"status": "Accepted"}])]
    session = replay.rebuild(lower).state.sessions[1]
    assert session.limit is not None and session.limit.limit == 8.0
    assert session.uncertain is not None and session.uncertain.limit == 9.0
    # For the highest: nothing given up can be applied above it.
    rows.append(row(seq := seq + 1, "in", [3, "p9", {"status": "Accepted"}]))
    session = replay.rebuild(rows).state.sessions[1]
    assert session.limit is not None and session.limit.limit == 9.0
    assert session.uncertain is None
    # On a new connection, nothing given up on the old one is awaited.
    reconnected = [*rows[:-1], row(seq + 1, "connect", {"remote": "x"}),
                   row(seq + 2, "in", [3, "p9", {"status": "Accepted"}])]
    assert replay.rebuild(reconnected).state.sessions[1].limit is None
