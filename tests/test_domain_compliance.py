"""Whether a charger keeps to the limit it accepted (csms.domain.compliance), as the
domain folds its MeterValues: pure, so replay finds the same."""

from __future__ import annotations

import datetime

import pytest

from csms.domain import events as ev
from csms.domain.compliance import measured_in_unit, overdraws
from domain_helpers import AT, Csms

CP = "CP-1"
POWER = "Power.Active.Import"


def accepted_profile(csms: Csms, tx: int, limit: float, unit: str = "A",
                     at: datetime.datetime = AT, status: str = "Accepted",
                     profile_id: int = 9101) -> None:
    period = {"startPeriod": 0, "limit": limit}
    if unit == "A":
        period["numberPhases"] = 3
    request = {"connectorId": 1, "csChargingProfiles": {
        "chargingProfileId": profile_id, "transactionId": tx, "stackLevel": 1,
        "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Relative",
        "chargingSchedule": {"chargingRateUnit": unit, "chargingSchedulePeriod": [period]}}}
    csms.recorder.answer(CP, "SetChargingProfile", request, {"status": status}, None, at)


def reading(csms: Csms, tx: int, minutes: float, watts: float) -> list[ev.Event]:
    at = AT + datetime.timedelta(minutes=minutes)
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return csms.meter_values(CP, 1, transaction_id=tx, at=at, meter_value=[
        {"timestamp": stamp, "sampledValue": [{"value": str(watts), "measurand": POWER}]}])


def start(csms: Csms) -> int:
    (event,) = [e for e in csms.start(CP, 1) if isinstance(e, ev.SessionStarted)]
    return event.transaction_id


def test_in_the_profiles_unit() -> None:
    currents = (("L1", 16.0), ("L2", 16.5), ("L3", 15.0), ("N", 40.0))
    assert measured_in_unit("A", 11_000.0, currents, 3) == 16.5  # the highest phase
    assert measured_in_unit("A", 6900.0, None, 3) == pytest.approx(10.0)
    assert measured_in_unit("A", 2300.0, None, 1) == pytest.approx(10.0)
    assert measured_in_unit("W", 6900.0, currents, 3) == 6900.0
    assert measured_in_unit("A", None, None, 3) is None
    # 10 % and 1 A (or 700 W) of slack: meters and chargers are not exact.
    assert not overdraws(16.0, "A", 18.6)
    assert overdraws(16.0, "A", 18.7)
    assert overdraws(0.0, "A", 1.1)  # paused, but drawing
    assert not overdraws(10_000.0, "W", 11_700.0)
    assert overdraws(10_000.0, "W", 11_701.0)


def test_two_readings_above_the_accepted_limit_make_a_session_non_compliant() -> None:
    csms = Csms()
    tx = start(csms)
    accepted_profile(csms, tx, 10.0)  # 10 A x 3 phases: 6,900 W
    # Within the minute a charger may take to apply it: no judgement.
    reading(csms, tx, 0.5, 22_000.0)
    assert csms.state.sessions[tx].overdraw_readings == 0
    reading(csms, tx, 2, 22_000.0)
    assert csms.state.sessions[tx].overdraw_readings == 1
    assert not csms.state.sessions[tx].non_compliant
    reading(csms, tx, 3, 22_000.0)
    session = csms.state.sessions[tx]
    assert session.non_compliant
    [anomaly] = [a for a in csms.state.anomalies if a.kind == "non_compliant"]
    assert anomaly.transaction_id == tx
    assert "draws 31.9 A under the 10 A it accepted" in anomaly.detail
    # Still above: no second anomaly. Back within its limit: compliant again.
    reading(csms, tx, 4, 22_000.0)
    assert len([a for a in csms.state.anomalies if a.kind == "non_compliant"]) == 1
    reading(csms, tx, 5, 6900.0)
    session = csms.state.sessions[tx]
    assert (session.overdraw_readings, session.non_compliant) == (0, False)


def test_an_ev_within_its_limit_or_without_an_accepted_profile_is_never_judged() -> None:
    csms = Csms()
    tx = start(csms)
    for minute in range(1, 5):
        reading(csms, tx, minute, 22_000.0)  # no profile: it may draw what it wants
    assert csms.state.sessions[tx].overdraw_readings == 0
    accepted_profile(csms, tx, 10_000.0, unit="W")
    for minute in range(6, 10):
        reading(csms, tx, minute, 10_500.0)  # within 10 % and 700 W
    assert csms.state.sessions[tx].overdraw_readings == 0
    assert not [a for a in csms.state.anomalies if a.kind == "non_compliant"]


def test_an_ev_that_draws_nothing_is_idle_from_its_first_such_reading() -> None:
    csms = Csms()
    tx = start(csms)
    reading(csms, tx, 1, 7000.0)
    assert csms.state.sessions[tx].idle_since is None
    reading(csms, tx, 2, 80.0)  # 100 W or less is nothing: full, or waiting
    first = AT + datetime.timedelta(minutes=2)
    assert csms.state.sessions[tx].idle_since == first
    reading(csms, tx, 3, 0.0)
    assert csms.state.sessions[tx].idle_since == first  # since then, not since the last
    reading(csms, tx, 4, 1500.0)
    assert csms.state.sessions[tx].idle_since is None


def test_the_limit_in_force_is_the_last_one_accepted_whatever_was_refused_since() -> None:
    csms = Csms()
    tx = start(csms)
    accepted_profile(csms, tx, 10.0)
    later = AT + datetime.timedelta(minutes=1)
    accepted_profile(csms, tx, 20.0, at=later, status="Rejected")
    session = csms.state.sessions[tx]
    assert session.limit is not None and session.limit.limit == 10.0
    assert session.refused == "Rejected"  # not controlled until one is accepted again
    # The charger still enforces 10 A: an EV drawing 16 A is judged against that.
    reading(csms, tx, 3, 16 * 690.0)
    reading(csms, tx, 4, 16 * 690.0)
    assert csms.state.sessions[tx].non_compliant
    accepted_profile(csms, tx, 16.0, at=AT + datetime.timedelta(minutes=5))
    session = csms.state.sessions[tx]
    assert session.limit is not None and session.limit.limit == 16.0
    assert session.refused is None


def test_a_cleared_limit_is_no_longer_in_force() -> None:
    csms = Csms()
    tx = start(csms)
    accepted_profile(csms, tx, 10.0)
    # Another profile's id, another connector's profiles: its limit stays.
    csms.recorder.answer(CP, "ClearChargingProfile", {"id": 9102}, {"status": "Accepted"},
                         None, AT)
    csms.recorder.answer(CP, "ClearChargingProfile", {"connectorId": 2},
                         {"status": "Accepted"}, None, AT)
    assert csms.state.sessions[tx].limit is not None
    # Every TxProfile on the charger: gone, and so is what the domain knows it enforces.
    csms.recorder.answer(CP, "ClearChargingProfile", {"chargingProfilePurpose": "TxProfile"},
                         {"status": "Accepted"}, None, AT)
    assert csms.state.sessions[tx].limit is None


def test_the_same_limit_sent_again_does_not_restart_the_minute_to_apply_it() -> None:
    csms = Csms()
    tx = start(csms)
    accepted_profile(csms, tx, 10.0)
    reading(csms, tx, 2, 22_000.0)  # clearly above: the CSMS sends the limit again
    assert csms.state.sessions[tx].overdraw_readings == 1
    accepted_profile(csms, tx, 10.0, at=AT + datetime.timedelta(minutes=2.5))
    # The charger had it all along: the next reading is judged at once.
    reading(csms, tx, 3, 22_000.0)
    assert csms.state.sessions[tx].non_compliant


def test_in_the_minute_a_change_takes_the_higher_of_the_two_limits_is_judged() -> None:
    csms = Csms()
    tx = start(csms)
    accepted_profile(csms, tx, 16.0)
    accepted_profile(csms, tx, 10.0, at=AT + datetime.timedelta(minutes=5))
    # Still applying the decrease: 16 A is no overdraw yet ...
    reading(csms, tx, 5.5, 16 * 690.0)
    assert csms.state.sessions[tx].overdraw_readings == 0
    # ... 31.9 A is, under either limit. A charger whose limits change every minute is
    # judged all the same.
    accepted_profile(csms, tx, 9.0, at=AT + datetime.timedelta(minutes=5.8))
    reading(csms, tx, 6, 22_000.0)
    accepted_profile(csms, tx, 8.0, at=AT + datetime.timedelta(minutes=6.5))
    reading(csms, tx, 7, 22_000.0)
    assert csms.state.sessions[tx].non_compliant
