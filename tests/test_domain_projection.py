"""OCPP exchanges → events → state, action by action (csms.domain.projection and .state).

Every exchange goes the live way: wire payloads are schema-checked and typed by
ocppj.payloads, answered as the handlers answer, then recorded (projection + fold).
"""

from __future__ import annotations

import datetime
from typing import Any

import attrs
import pytest

from csms.api.actions import CSMS_ACTIONS
from csms.domain import events as ev
from csms.domain.meter import ENERGY_REGISTER, POWER, SOC
from csms.domain.model import Anomaly, Charger, Evse
from csms.domain.projection import PROJECTORS
from csms.domain.state import DomainState, apply, replay
from domain_helpers import AT, TIMESTAMP, Csms, energy_sample, without_last_seen
from ocppj.schemas import ACTIONS

LATER = AT + datetime.timedelta(minutes=5)
CP = "CP-1"
OTHER = "CP-2"


@pytest.fixture
def csms() -> Csms:
    return Csms()


def kinds(events: list[ev.Event]) -> list[type]:
    return [type(event) for event in events]


def started(csms: Csms, connector_id: int = 1, **fields: Any) -> int:
    """Start a session on CP's connector; its transactionId."""
    (event,) = [e for e in csms.start(CP, connector_id, **fields) if type(e) is ev.SessionStarted]
    assert isinstance(event, ev.SessionStarted)
    return event.transaction_id


# -- BootNotification -------------------------------------------------------------------------


def test_boot_creates_the_charger(csms: Csms) -> None:
    events = csms.boot(
        CP,
        chargePointSerialNumber="CPS-1",
        chargeBoxSerialNumber="CBS-1",
        firmwareVersion="1.2.3",
        iccid="ICCID",
        imsi="IMSI",
        meterType="MT",
        meterSerialNumber="MS-1",
    )
    assert kinds(events) == [ev.ChargerBooted]
    assert csms.state.chargers[CP] == Charger(
        id=CP,
        vendor="Acme",
        model="AC22",
        charge_point_serial_number="CPS-1",
        charge_box_serial_number="CBS-1",
        firmware_version="1.2.3",
        iccid="ICCID",
        imsi="IMSI",
        meter_type="MT",
        meter_serial_number="MS-1",
        registration_status="Accepted",
        booted_at=AT,
        last_seen=AT,
    )


@pytest.mark.parametrize("status", ["Accepted", "Pending", "Rejected"])
def test_boot_records_the_registration_status_we_answered(csms: Csms, status: str) -> None:
    csms.boot(CP, status=status)
    assert csms.state.chargers[CP].registration_status == status


def test_second_boot_updates_the_charger(csms: Csms) -> None:
    csms.connect(CP, remote="10.0.0.7:1234")
    csms.status(CP, 0, "Available")
    csms.boot(CP, firmwareVersion="1.0", chargePointSerialNumber="S1")
    csms.boot(CP, at=LATER, status="Pending", firmwareVersion="2.0", chargePointModel="AC11")
    charger = csms.state.chargers[CP]
    assert (charger.model, charger.firmware_version) == ("AC11", "2.0")
    assert charger.charge_point_serial_number is None  # not sent the second time
    assert charger.registration_status == "Pending"
    assert charger.booted_at == LATER
    assert charger.last_seen == LATER
    # What boot does not describe is kept.
    assert (charger.connected, charger.remote, charger.status) == (
        True,
        "10.0.0.7:1234",
        "Available",
    )
    assert list(csms.state.chargers) == [CP]


# -- Heartbeat ------------------------------------------------------------------------------


def test_heartbeat_updates_last_seen_only(csms: Csms) -> None:
    csms.boot(CP)
    before = without_last_seen(csms.state)
    assert kinds(csms.heartbeat(CP, at=LATER)) == [ev.HeartbeatReceived]
    assert csms.state.chargers[CP].last_seen == LATER
    assert csms.state.chargers[CP].booted_at == AT
    assert without_last_seen(csms.state) == before


def test_heartbeat_from_an_unknown_charger_creates_it(csms: Csms) -> None:
    csms.heartbeat(CP)
    assert csms.state.chargers == {CP: Charger(id=CP, last_seen=AT)}


# -- StatusNotification ---------------------------------------------------------------------


def test_status_creates_the_evse_at_first_sight(csms: Csms) -> None:
    events = csms.status(
        CP,
        2,
        "Available",
        timestamp="2024-05-01T13:00:00+01:00",
        info="ok",
        vendorId="Acme",
        vendorErrorCode="E0",
    )
    assert kinds(events) == [ev.ConnectorStatusChanged]
    assert csms.state.evses == {
        (CP, 2): Evse(
            charger_id=CP,
            connector_id=2,
            status="Available",
            error_code="NoError",
            info="ok",
            vendor_id="Acme",
            vendor_error_code="E0",
            status_timestamp=datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.UTC),
            plugged_in=False,
            status_at=AT,
        )
    }
    assert csms.state.evses[(CP, 2)].available
    assert csms.state.chargers[CP].last_seen == AT


def test_status_timestamp_is_optional(csms: Csms) -> None:
    csms.status(CP, 1, "Available")
    assert csms.state.evses[(CP, 1)].status_timestamp is None


def test_status_of_connector_zero_is_the_charger_s(csms: Csms) -> None:
    csms.status(CP, 0, "Faulted", errorCode="GroundFailure")
    assert csms.state.evses == {}
    charger = csms.state.chargers[CP]
    assert (charger.status, charger.error_code) == ("Faulted", "GroundFailure")


def test_status_updates_the_evse(csms: Csms) -> None:
    csms.status(CP, 1, "Available")
    csms.status(CP, 1, "Faulted", at=LATER, errorCode="OverCurrentFailure")
    evse = csms.state.evses[(CP, 1)]
    assert (evse.status, evse.error_code) == ("Faulted", "OverCurrentFailure")
    assert list(csms.state.evses) == [(CP, 1)]


@pytest.mark.parametrize(
    ("status", "plugged_in", "available"),
    [
        ("Available", False, True),
        ("Preparing", True, True),
        ("Charging", True, True),
        ("SuspendedEVSE", True, True),
        ("SuspendedEV", True, True),
        ("Finishing", True, True),
        ("Reserved", False, True),
        ("Unavailable", False, False),
        ("Faulted", False, False),
    ],
)
def test_status_plugged_in_and_available(
    csms: Csms, status: str, plugged_in: bool, available: bool
) -> None:
    csms.status(CP, 1, "Charging" if status == "Available" else "Available")
    csms.status(CP, 1, status)
    evse = csms.state.evses[(CP, 1)]
    assert evse.status == status
    assert evse.plugged_in is plugged_in
    assert evse.available is available


def test_status_of_two_chargers_are_separate_evses(csms: Csms) -> None:
    csms.status(CP, 1, "Preparing")
    csms.status(OTHER, 1, "Faulted")
    assert csms.state.evses[(CP, 1)].plugged_in
    assert not csms.state.evses[(OTHER, 1)].available


# -- StartTransaction -----------------------------------------------------------------------


def test_start_opens_a_session_with_the_answered_transaction_id(csms: Csms) -> None:
    csms.state.next_transaction_id = 41
    events = csms.start(CP, 2, id_tag="ABC", meter_start=12_345, reservationId=7)
    assert kinds(events) == [ev.SessionStarted]
    session = csms.state.sessions[41]
    assert (session.charger_id, session.connector_id, session.id_tag) == (CP, 2, "ABC")
    assert (session.meter_start, session.start_timestamp) == (12_345, TIMESTAMP)
    assert (session.started_at, session.reservation_id, session.auth_status) == (AT, 7, "Accepted")
    assert session.open
    assert session.energy_wh == 0.0
    assert session.last_register_wh == 12_345.0
    assert session.start_time == datetime.datetime(2024, 5, 1, 11, 59, 58, tzinfo=datetime.UTC)
    assert csms.state.open_sessions == {(CP, 2): 41}
    assert csms.state.next_transaction_id == 42


def test_start_uses_the_response_s_transaction_id_not_the_counter(csms: Csms) -> None:
    request = csms.start_request(1)
    response = {"transactionId": 500, "idTagInfo": {"status": "Accepted"}}
    csms.exchange(CP, "StartTransaction", request, response)
    assert list(csms.state.sessions) == [500]
    assert csms.state.next_transaction_id == 501


def test_start_with_a_refused_id_tag_still_opens_the_session(csms: Csms) -> None:
    tx = started(csms, status="Invalid")
    assert csms.state.sessions[tx].auth_status == "Invalid"
    assert csms.state.sessions[tx].open


def test_next_transaction_id_advances(csms: Csms) -> None:
    ids = [started(csms, connector) for connector in (1, 2, 3)]
    (other,) = [e.transaction_id for e in csms.start(OTHER, 1) if isinstance(e, ev.SessionStarted)]
    assert [*ids, other] == [1, 2, 3, 4]
    assert csms.state.next_transaction_id == 5


def test_start_retransmission_creates_nothing(csms: Csms) -> None:
    tx = started(csms, 1, id_tag="ABC", meter_start=100)
    csms.meter_values(CP, 1, [energy_sample("150")])
    before = without_last_seen(csms.state)
    request = csms.start_request(1, id_tag="ABC", meter_start=100)
    response = csms.start_response(CP, request)
    assert response["transactionId"] == tx  # the handler answers the same id
    events = csms.exchange(CP, "StartTransaction", request, response, LATER)
    assert kinds(events) == [ev.ChargerSeen]
    assert without_last_seen(csms.state) == before
    assert csms.state.chargers[CP].last_seen == LATER


def test_start_retransmission_answered_with_another_id_still_creates_nothing(csms: Csms) -> None:
    """The projection recognises a retransmission by its content, not by our answer."""
    started(csms, 1)
    before = without_last_seen(csms.state)
    request = csms.start_request(1)
    response = {"transactionId": 99, "idTagInfo": {"status": "Accepted"}}
    assert kinds(csms.exchange(CP, "StartTransaction", request, response)) == [ev.ChargerSeen]
    assert without_last_seen(csms.state) == before


def test_start_answered_with_an_id_already_given_creates_nothing(csms: Csms) -> None:
    tx = started(csms, 1)
    before = without_last_seen(csms.state)
    request = csms.start_request(2, id_tag="OTHER")
    response = {"transactionId": tx, "idTagInfo": {"status": "Accepted"}}
    assert kinds(csms.exchange(CP, "StartTransaction", request, response)) == [ev.ChargerSeen]
    assert without_last_seen(csms.state) == before


def test_start_retransmission_after_the_stop_creates_nothing(csms: Csms) -> None:
    tx = started(csms, 1)
    csms.stop(CP, tx, 2000)
    before = without_last_seen(csms.state)
    assert kinds(csms.start(CP, 1, at=LATER)) == [ev.ChargerSeen]
    assert without_last_seen(csms.state) == before


@pytest.mark.parametrize(
    "change",
    [
        {"charger_id": OTHER},
        {"connector_id": 2},
        {"id_tag": "OTHER"},
        {"meter_start": 1001},
        {"timestamp": "2024-05-01T11:59:59Z"},
    ],
)
def test_start_differing_in_any_key_field_is_a_new_session(csms: Csms, change: Any) -> None:
    first = {"charger_id": CP, "connector_id": 1, "id_tag": "TAG1", "meter_start": 1000}
    first_events = csms.start(**{**first, "timestamp": TIMESTAMP})
    second = {**first, "timestamp": TIMESTAMP, **change}
    events = csms.start(**second)
    assert kinds(first_events) == [ev.SessionStarted]
    assert ev.SessionStarted in kinds(events)
    assert events[-1].transaction_id == 2  # type: ignore[union-attr]
    assert list(csms.state.sessions) == [1, 2]


def test_second_start_on_a_connector_supersedes_the_open_session(csms: Csms) -> None:
    old = started(csms, 1, meter_start=100)
    events = csms.start(CP, 1, id_tag="TAG2", meter_start=500, at=LATER)
    assert kinds(events) == [ev.SessionSuperseded, ev.SessionStarted]
    new = events[1].transaction_id  # type: ignore[union-attr]
    assert new == old + 1
    closed = csms.state.sessions[old]
    assert not closed.open
    assert closed.stop_reason == "Superseded"
    assert closed.stopped_at == LATER
    assert closed.meter_stop is None
    assert csms.state.sessions[new].open
    assert csms.state.open_sessions == {(CP, 1): new}
    assert csms.state.anomalies == [
        Anomaly(LATER, CP, "superseded", f"closed by transaction {new} on connector 1", old)
    ]


def test_start_on_another_connector_supersedes_nothing(csms: Csms) -> None:
    first = started(csms, 1)
    second = started(csms, 2)
    assert csms.state.sessions[first].open and csms.state.sessions[second].open
    assert csms.state.open_sessions == {(CP, 1): first, (CP, 2): second}
    assert csms.state.anomalies == []


# -- MeterValues ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sampled", "energy"),
    [
        (energy_sample("1500"), 500.0),
        (energy_sample("1500", "Wh"), 500.0),
        (energy_sample("1.5", "kWh"), 500.0),
        (energy_sample("1.0005", "kWh"), 0.5),
        (energy_sample("1000"), 0.0),
        ({"value": "1750.5", "measurand": ENERGY_REGISTER, "unit": "Wh"}, 750.5),
    ],
)
def test_meter_values_energy_is_register_minus_meter_start(
    csms: Csms, sampled: dict[str, Any], energy: float
) -> None:
    tx = started(csms, 1, meter_start=1000)
    events = csms.meter_values(CP, 1, [sampled], transaction_id=tx)
    assert kinds(events) == [ev.MeterSampled]
    session = csms.state.sessions[tx]
    assert session.energy_wh == pytest.approx(energy)
    assert session.last_register_wh == pytest.approx(1000 + energy)
    assert session.samples == 1
    assert session.open


@pytest.mark.parametrize(
    ("sampled", "power"),
    [
        ([{"value": "7400", "measurand": POWER}], 7400.0),
        ([{"value": "7400", "measurand": POWER, "unit": "W"}], 7400.0),
        ([{"value": "7.4", "measurand": POWER, "unit": "kW"}], 7400.0),
        (
            [
                {"value": "3.7", "measurand": POWER, "unit": "kW", "phase": p}
                for p in ("L1", "L2", "L3")
            ],
            11_100.0,
        ),
        (
            [
                *({"value": "1000", "measurand": POWER, "phase": p} for p in ("L1", "L2", "L3")),
                {"value": "9000", "measurand": POWER},
            ],
            9000.0,
        ),
    ],
)
def test_meter_values_power(csms: Csms, sampled: list[dict[str, Any]], power: float) -> None:
    tx = started(csms, 1)
    csms.meter_values(CP, 1, sampled, transaction_id=tx)
    assert csms.state.sessions[tx].power_w == pytest.approx(power)
    assert csms.state.sessions[tx].energy_wh == 0.0


def test_meter_values_current_per_phase_and_soc(csms: Csms) -> None:
    tx = started(csms, 1)
    sampled = [
        {"value": "16", "measurand": "Current.Import", "phase": p, "unit": "A"}
        for p in ("L1", "L2", "L3")
    ]
    csms.meter_values(CP, 1, [*sampled, {"value": "42", "measurand": SOC}], transaction_id=tx)
    session = csms.state.sessions[tx]
    assert session.current_a == (("L1", 16.0), ("L2", 16.0), ("L3", 16.0))
    assert session.soc == 42.0
    assert session.samples == 4


def test_meter_values_latest_reading_wins(csms: Csms) -> None:
    tx = started(csms, 1, meter_start=0)
    meter_value = [
        {
            "timestamp": "2024-05-01T12:00:00Z",
            "sampledValue": [energy_sample("100"), {"value": "5000", "measurand": POWER}],
        },
        {
            "timestamp": "2024-05-01T12:01:00Z",
            "sampledValue": [energy_sample("200"), {"value": "6000", "measurand": POWER}],
        },
    ]
    csms.meter_values(CP, 1, transaction_id=tx, meter_value=meter_value)
    session = csms.state.sessions[tx]
    assert (session.energy_wh, session.power_w, session.samples) == (200.0, 6000.0, 4)


def test_a_charger_that_meters_energy_only_gets_power_from_its_register(csms: Csms) -> None:
    # StartTransaction at 11:59:58 with meterStart 0; the charger reports only its register.
    tx = started(csms, 1, meter_start=0)

    def register(timestamp: str, wh: str) -> None:
        csms.meter_values(CP, 1, transaction_id=tx,
                          meter_value=[{"timestamp": timestamp,
                                        "sampledValue": [energy_sample(wh)]}])

    register("2024-05-01T12:00:58Z", "183")  # 183 Wh in 60 s since the start: 10,980 W
    session = csms.state.sessions[tx]
    assert session.power_w == pytest.approx(10_980.0)
    assert session.power_from_energy
    register("2024-05-01T12:01:58Z", "366")  # the next minute: the same
    assert csms.state.sessions[tx].power_w == pytest.approx(10_980.0)
    register("2024-05-01T12:02:58Z", "366")  # full: nothing drawn
    assert csms.state.sessions[tx].power_w == 0.0
    register("2024-05-01T12:03:00Z", "370")  # 2 s later: too short to say, power kept
    assert csms.state.sessions[tx].power_w == 0.0
    # A charger that reports power after all: its measurement wins.
    csms.meter_values(CP, 1, transaction_id=tx, meter_value=[{
        "timestamp": "2024-05-01T12:04:00Z",
        "sampledValue": [energy_sample("400"), {"value": "1500", "measurand": POWER}]}])
    session = csms.state.sessions[tx]
    assert (session.power_w, session.power_from_energy) == (1500.0, False)


def test_meter_values_without_transaction_id_go_to_the_open_session(csms: Csms) -> None:
    tx = started(csms, 2, meter_start=1000)
    other = started(csms, 1, meter_start=0)
    events = csms.meter_values(CP, 2, [energy_sample("3000")])
    assert events[0].transaction_id == tx  # type: ignore[union-attr]
    assert csms.state.sessions[tx].energy_wh == 2000.0
    assert csms.state.sessions[other].energy_wh == 0.0
    assert csms.state.sessions[other].samples == 0


@pytest.mark.parametrize("connector_id", [0, 1])
def test_charger_level_meter_values_change_no_session(csms: Csms, connector_id: int) -> None:
    """Connector 0, or a connector without an open session: kept, but no session moves."""
    tx = started(csms, 2, meter_start=0)
    before = without_last_seen(csms.state)
    events = csms.meter_values(CP, connector_id, [energy_sample("5000")], at=LATER)
    assert kinds(events) == [ev.MeterSampled]
    (event,) = events
    assert isinstance(event, ev.MeterSampled)
    assert (event.connector_id, event.transaction_id) == (connector_id, None)
    assert [s.value for s in event.samples] == ["5000"]
    assert without_last_seen(csms.state) == before
    assert csms.state.sessions[tx].energy_wh == 0.0
    assert csms.state.chargers[CP].last_seen == LATER


def test_meter_values_on_another_charger_s_connector_do_not_reach_this_session(
    csms: Csms,
) -> None:
    tx = started(csms, 1, meter_start=0)
    (event,) = csms.meter_values(OTHER, 1, [energy_sample("5000")])
    assert event.transaction_id is None  # type: ignore[union-attr]
    assert csms.state.sessions[tx].energy_wh == 0.0


def test_unknown_measurands_are_kept_in_the_event(csms: Csms) -> None:
    tx = started(csms, 1)
    sampled = [
        {"value": "230.1", "measurand": "Voltage", "phase": "L1-N"},
        {"value": "31", "measurand": "Temperature", "unit": "Celsius", "location": "Body"},
        {"value": "50", "measurand": "Frequency"},
    ]
    (event,) = csms.meter_values(CP, 1, sampled, transaction_id=tx)
    assert isinstance(event, ev.MeterSampled)
    assert [(s.measurand, s.value, s.unit) for s in event.samples] == [
        ("Voltage", "230.1", "V"),
        ("Temperature", "31", "Celsius"),
        ("Frequency", "50", "Hertz"),
    ]
    session = csms.state.sessions[tx]
    assert session.samples == 3
    assert (session.energy_wh, session.power_w, session.current_a, session.soc) == (
        0.0,
        None,
        None,
        None,
    )


def test_register_backwards_is_an_anomaly_and_energy_stays(csms: Csms) -> None:
    tx = started(csms, 1, meter_start=1000)
    csms.meter_values(CP, 1, [energy_sample("5000")], transaction_id=tx)
    csms.meter_values(CP, 1, [energy_sample("4000")], transaction_id=tx, at=LATER)
    session = csms.state.sessions[tx]
    assert session.energy_wh == 4000.0
    assert session.last_register_wh == 5000.0
    assert session.samples == 2
    assert csms.state.anomalies == [
        Anomaly(LATER, CP, "register_backwards", "register 4000 Wh after 5000 Wh", tx)
    ]
    # Back on track: energy follows the register again.
    csms.meter_values(CP, 1, [energy_sample("6000")], transaction_id=tx)
    assert csms.state.sessions[tx].energy_wh == 5000.0
    assert len(csms.state.anomalies) == 1


def test_register_below_meter_start_is_backwards(csms: Csms) -> None:
    tx = started(csms, 1, meter_start=1000)
    csms.meter_values(CP, 1, [energy_sample("900")], transaction_id=tx)
    assert csms.state.sessions[tx].energy_wh == 0.0
    assert [a.kind for a in csms.state.anomalies] == ["register_backwards"]


def test_meter_values_for_an_unknown_transaction(csms: Csms) -> None:
    tx = started(csms, 1)
    before = without_last_seen(csms.state)
    events = csms.meter_values(CP, 1, [energy_sample("5000")], transaction_id=77, at=LATER)
    assert events[0].transaction_id == 77  # type: ignore[union-attr]
    after = without_last_seen(csms.state)
    assert after.pop("anomalies") == [
        Anomaly(
            LATER,
            CP,
            "unknown_transaction",
            "MeterValues for transaction 77, unknown or another charger's: kept at charger level",
            77,
        )
    ]
    before.pop("anomalies")
    assert after == before
    assert 77 not in csms.state.sessions
    assert csms.state.sessions[tx].energy_wh == 0.0


def test_late_meter_values_are_kept_and_a_closed_session_s_figures_stay_final(
    csms: Csms,
) -> None:
    tx = started(csms, 1, meter_start=1000)
    csms.meter_values(CP, 1, [energy_sample("2000")], transaction_id=tx)
    csms.stop(CP, tx, 3000)
    final = csms.state.sessions[tx]
    events = csms.meter_values(
        CP, 1, [energy_sample("9000"), {"value": "11000", "measurand": "Power.Active.Import",
                                        "unit": "W"}, {"value": "90", "measurand": "SoC"}],
        transaction_id=tx, at=LATER,
    )
    assert csms.state.sessions[tx] == final  # energy, power, SoC, samples count
    (sampled,) = [e for e in events if isinstance(e, ev.MeterSampled)]
    assert sampled.late and sampled.transaction_id == tx and len(sampled.samples) == 3
    assert csms.state.anomalies[-1].kind == "late_meter_values"
    assert csms.state.anomalies[-1].transaction_id == tx


# -- StopTransaction ------------------------------------------------------------------------


def test_stop_closes_the_session(csms: Csms) -> None:
    tx = started(csms, 1, meter_start=1000)
    csms.meter_values(CP, 1, [energy_sample("2000")], transaction_id=tx)
    events = csms.stop(
        CP,
        tx,
        4500,
        at=LATER,
        timestamp="2024-05-01T12:04:59Z",
        reason="EVDisconnected",
        idTag="TAG1",
    )
    assert kinds(events) == [ev.SessionStopped]
    session = csms.state.sessions[tx]
    assert not session.open
    assert (session.meter_stop, session.energy_wh, session.stop_reason) == (
        4500,
        3500.0,
        "EVDisconnected",
    )
    assert (session.stop_timestamp, session.stopped_at, session.stop_id_tag) == (
        "2024-05-01T12:04:59Z",
        LATER,
        "TAG1",
    )
    assert csms.state.open_sessions == {}
    assert csms.state.anomalies == []


def test_an_omitted_stop_reason_is_local(csms: Csms) -> None:
    """OCPP 1.6: the reason "MAY only be omitted when the Reason is Local"."""
    tx = started(csms, 1)
    csms.stop(CP, tx, 1000)
    session = csms.state.sessions[tx]
    assert session.stop_reason == "Local"
    assert session.stop_id_tag is None
    assert session.energy_wh == 0.0


def test_stop_energy_is_meter_stop_minus_meter_start_whatever_the_samples(csms: Csms) -> None:
    tx = started(csms, 1, meter_start=1000)
    csms.meter_values(CP, 1, [energy_sample("9000")], transaction_id=tx)
    csms.stop(CP, tx, 5000)
    assert csms.state.sessions[tx].energy_wh == 4000.0


def test_stop_below_start_is_an_anomaly(csms: Csms) -> None:
    tx = started(csms, 1, meter_start=1000)
    csms.stop(CP, tx, 900)
    assert csms.state.sessions[tx].energy_wh == -100.0
    assert [(a.kind, a.transaction_id) for a in csms.state.anomalies] == [("stop_below_start", tx)]


def test_stop_applies_transaction_data(csms: Csms) -> None:
    tx = started(csms, 1, meter_start=0)
    transaction_data = [
        {
            "timestamp": "2024-05-01T12:01:00Z",
            "sampledValue": [energy_sample("1.2", "kWh"), {"value": "64", "measurand": SOC}],
        },
        {
            "timestamp": "2024-05-01T12:02:00Z",
            "sampledValue": [{"value": "7000", "measurand": POWER}],
        },
    ]
    events = csms.stop(CP, tx, 2500, transactionData=transaction_data)
    assert kinds(events) == [ev.MeterSampled, ev.SessionStopped]
    sampled = events[0]
    assert isinstance(sampled, ev.MeterSampled)
    assert (sampled.connector_id, sampled.transaction_id, len(sampled.samples)) == (1, tx, 3)
    session = csms.state.sessions[tx]
    assert (session.soc, session.power_w, session.samples) == (64.0, 7000.0, 3)
    assert session.energy_wh == 2500.0  # meterStop decides
    assert session.last_register_wh == 2500.0


def test_stop_of_an_unknown_transaction(csms: Csms) -> None:
    tx = started(csms, 1)
    before = without_last_seen(csms.state)
    events = csms.stop(CP, 41, 5000, at=LATER, reason="PowerLoss")
    assert events == [ev.UnknownTransactionStopped(CP, LATER, 41, 5000, TIMESTAMP, "PowerLoss")]
    assert csms.state.anomalies == [
        Anomaly(
            LATER,
            CP,
            "unknown_transaction",
            "StopTransaction for unknown transaction 41 (meterStop 5000, reason PowerLoss)",
            41,
            key=f"stop:41:5000:{TIMESTAMP}",
        )
    ]
    assert csms.state.next_transaction_id == 42
    assert csms.state.sessions == before["sessions"]
    assert csms.state.sessions[tx].open
    # The next session does not reuse an id a charger believes in.
    assert started(csms, 2) == 42


def test_stop_of_an_unknown_transaction_below_the_counter_keeps_the_counter(csms: Csms) -> None:
    csms.state.next_transaction_id = 100
    csms.stop(CP, 3, 5000)
    assert csms.state.next_transaction_id == 100
    assert [a.kind for a in csms.state.anomalies] == ["unknown_transaction"]


def test_repeated_stop_changes_nothing(csms: Csms) -> None:
    tx = started(csms, 1, meter_start=1000)
    csms.stop(CP, tx, 3000, reason="Local")
    before = without_last_seen(csms.state)
    events = csms.stop(CP, tx, 3000, at=LATER, reason="Local")
    assert kinds(events) == [ev.ChargerSeen]
    assert without_last_seen(csms.state) == before
    # Even a different meterStop does not reopen or re-close it.
    csms.stop(
        CP,
        tx,
        9999,
        at=LATER,
        transactionData=[{"timestamp": TIMESTAMP, "sampledValue": [energy_sample("9999")]}],
    )
    assert without_last_seen(csms.state) == before


def test_the_stop_of_a_superseded_session_completes_its_record(csms: Csms) -> None:
    # The charger's StopTransaction of the old session comes after the new one started
    # (out of order, or delivered late): the CSMS guessed the end, the charger knows it.
    old = started(csms, 1, meter_start=0)
    new = started(csms, 1, meter_start=100)
    assert kinds(csms.stop(CP, old, 100, at=LATER)) == [ev.SessionStopped]
    closed = csms.state.sessions[old]
    assert (closed.open, closed.meter_stop, closed.energy_wh) == (False, 100, 100.0)
    assert closed.stop_reason != "Superseded"
    assert csms.state.open_sessions == {(CP, 1): new}
    assert csms.state.anomalies[-1] == Anomaly(
        LATER, CP, "late_stop", "StopTransaction after the session was closed as Superseded",
        old)
    # Once complete, a repeat changes nothing.
    before = without_last_seen(csms.state)
    assert kinds(csms.stop(CP, old, 100)) == [ev.ChargerSeen]
    assert without_last_seen(csms.state) == before


def test_a_connector_available_closes_the_session_its_charger_lost(csms: Csms) -> None:
    # The charger rebooted and forgot its transaction: it reports the connector
    # Available, and no StopTransaction will ever come.
    tx = started(csms, 1, meter_start=0)
    csms.boot(CP, at=LATER)
    events = csms.status(CP, 1, "Available", at=LATER, timestamp="2024-05-01T12:30:00Z")
    assert kinds(events) == [ev.ConnectorStatusChanged, ev.SessionOrphaned]
    closed = csms.state.sessions[tx]
    assert (closed.open, closed.stop_reason, closed.meter_stop) == (False, "Orphaned", None)
    assert csms.state.open_sessions == {}
    anomaly = csms.state.anomalies[-1]
    assert (anomaly.kind, anomaly.transaction_id) == ("orphaned", tx)
    assert "connector 1 reported Available at 2024-05-01T12:30:00" in anomaly.detail
    assert "after a BootNotification" in anomaly.detail
    # If the charger did keep it after all, its StopTransaction completes the record.
    assert kinds(csms.stop(CP, tx, 500, at=LATER)) == [ev.SessionStopped]
    assert csms.state.sessions[tx].energy_wh == 500.0
    assert csms.state.anomalies[-1].kind == "late_stop"


def test_available_without_a_reboot_or_after_the_first_status_since_it_is_no_proof(
    csms: Csms,
) -> None:
    # Without a reboot: the charger may send Available while its StopTransaction still
    # waits in its queue. The session stays open.
    tx = started(csms, 1, meter_start=0)
    assert kinds(csms.status(CP, 1, "Available", at=LATER)) == [ev.ConnectorStatusChanged]
    assert csms.state.open_sessions == {(CP, 1): tx}
    # After a reboot that kept the transaction, the charger reports it as it is first;
    # an Available later is again no proof.
    later = LATER + datetime.timedelta(minutes=1)
    csms.boot(CP, at=later)
    assert kinds(csms.status(CP, 1, "Charging", at=later)) == [ev.ConnectorStatusChanged]
    assert kinds(csms.status(CP, 1, "Available", at=later)) == [ev.ConnectorStatusChanged]
    assert csms.state.open_sessions == {(CP, 1): tx}
    assert csms.state.anomalies == []


def test_a_status_older_than_the_session_says_nothing_about_it(csms: Csms) -> None:
    # A StatusNotification stamped before the session started, delivered after a reboot:
    # the Available it reports was before the transaction.
    tx = started(csms, 1, meter_start=0)
    csms.boot(CP, at=LATER)
    events = csms.status(CP, 1, "Available", at=LATER, timestamp="2020-01-01T00:00:00Z")
    assert kinds(events) == [ev.ConnectorStatusChanged]
    assert csms.state.open_sessions == {(CP, 1): tx}
    # Other statuses are no evidence either: Finishing still waits for its StopTransaction.
    for status in ("Preparing", "Charging", "SuspendedEV", "Finishing", "Unavailable"):
        assert kinds(csms.status(CP, 1, status, at=LATER)) == [ev.ConnectorStatusChanged]
    assert csms.state.open_sessions == {(CP, 1): tx}


def test_stop_then_new_start_on_the_same_connector(csms: Csms) -> None:
    first = started(csms, 1, meter_start=0)
    csms.stop(CP, first, 100)
    second = started(csms, 1, meter_start=100, timestamp="2024-05-01T12:10:00Z")
    assert csms.state.open_sessions == {(CP, 1): second}
    assert csms.state.anomalies == []


# -- Authorize, DataTransfer, other actions -------------------------------------------------


def test_authorize_is_recorded(csms: Csms) -> None:
    events = csms.exchange(CP, "Authorize", {"idTag": "ABC"}, {"idTagInfo": {"status": "Blocked"}})
    assert events == [ev.IdTagAuthorized(CP, AT, "ABC", "Blocked")]
    assert csms.state.chargers[CP].last_seen == AT


@pytest.mark.parametrize("status", ["Accepted", "Rejected", "UnknownMessageId", "UnknownVendorId"])
def test_data_transfer_is_recorded(csms: Csms, status: str) -> None:
    csms.boot(CP)
    before = without_last_seen(csms.state)
    request = {"vendorId": "com.acme", "messageId": "hello", "data": "{}"}
    events = csms.exchange(CP, "DataTransfer", request, {"status": status}, LATER)
    assert events == [ev.DataTransferReceived(CP, LATER, "com.acme", "hello", status)]
    assert without_last_seen(csms.state) == before
    assert csms.state.chargers[CP].last_seen == LATER


def test_data_transfer_without_message_id(csms: Csms) -> None:
    events = csms.exchange(CP, "DataTransfer", {"vendorId": "v"}, {"status": "Accepted"})
    assert events == [ev.DataTransferReceived(CP, AT, "v", None, "Accepted")]


def test_every_action_a_charger_sends_is_modelled() -> None:
    # The security extension's notifications included: nothing a charger sends is only
    # a "last seen".
    sent_by_chargers = (set(ACTIONS) - set(CSMS_ACTIONS)) | {"DataTransfer"}  # both ways
    assert sent_by_chargers == set(PROJECTORS)


# -- connections ----------------------------------------------------------------------------


def test_connect_and_disconnect(csms: Csms) -> None:
    csms.connect(CP, remote="10.0.0.7:1234")
    charger = csms.state.chargers[CP]
    assert (charger.connected, charger.remote, charger.last_seen) == (True, "10.0.0.7:1234", AT)
    csms.disconnect(CP, at=LATER, reason="closed by peer")
    charger = csms.state.chargers[CP]
    assert (charger.connected, charger.disconnect_reason, charger.last_seen) == (
        False,
        "closed by peer",
        LATER,
    )
    assert charger.remote == "10.0.0.7:1234"
    csms.connect(CP, at=LATER, remote="10.0.0.8:1")
    charger = csms.state.chargers[CP]
    assert (charger.connected, charger.remote, charger.disconnect_reason) == (
        True,
        "10.0.0.8:1",
        None,
    )
    assert [direction for _, direction, _, _ in csms.store.frames] == [
        "connect",
        "disconnect",
        "connect",
    ]


def test_a_replaced_connection_s_close_changes_nothing(csms: Csms) -> None:
    csms.connect(CP, remote="a")
    before = attrs.evolve(csms.state.chargers[CP])
    csms.disconnect(CP, at=LATER, reason="replaced", replaced=True)
    assert csms.state.chargers[CP] == before
    assert csms.state.chargers[CP].connected


def test_connection_events_apply_directly() -> None:
    state = replay([ev.ChargerConnected(CP, AT, "r"), ev.ChargerDisconnected(CP, LATER, "gone")])
    assert state.chargers[CP] == Charger(
        id=CP, connected=False, remote="r", disconnect_reason="gone", last_seen=LATER
    )


# -- the fold and the recorder --------------------------------------------------------------


def test_apply_refuses_what_is_not_an_event() -> None:
    with pytest.raises(TypeError, match="not a domain event"):
        apply(DomainState(), "StartTransaction")  # type: ignore[arg-type]


def test_replaying_the_recorded_events_rebuilds_the_state(csms: Csms) -> None:
    events: list[ev.Event] = []
    events += csms.boot(CP)
    events += csms.status(CP, 1, "Preparing")
    events += csms.start(CP, 1, meter_start=10)
    tx = events[-1].transaction_id  # type: ignore[union-attr]
    events += csms.meter_values(CP, 1, [energy_sample("20")])
    events += csms.start(CP, 1, meter_start=20, timestamp="2024-05-01T12:01:00Z")
    events += csms.stop(CP, tx + 1, 40, reason="Local")
    events += csms.stop(CP, 99, 1)
    assert replay(events) == csms.state


def test_recorder_saves_the_touched_records(csms: Csms) -> None:
    tx = started(csms, 1, meter_start=0)
    changes = csms.store.changes[-1]
    assert [s.transaction_id for s in changes.sessions] == [tx]
    assert [c.id for c in changes.chargers] == [CP]
    assert changes.next_transaction_id == tx + 1
    csms.meter_values(CP, 1, [energy_sample("10"), {"value": "5", "measurand": SOC}])
    changes = csms.store.changes[-1]
    assert [(row.transaction_id, [sample.value for sample in row.samples])
            for row in changes.readings] == [(tx, ["10", "5"])]
    assert [s.energy_wh for s in changes.sessions] == [10.0]
    assert changes.next_transaction_id is None
    csms.stop(CP, 99, 1)
    changes = csms.store.changes[-1]
    assert [index for index, _ in changes.anomalies] == [0]
    assert changes.next_transaction_id == 100
    assert csms.state.take_dirty() == set()


# -- regressions: bugs found by these tests -----------------------------------------------


def test_a_charger_cannot_stop_another_charger_s_session(csms: Csms) -> None:
    tx = started(csms, 1, meter_start=0)
    csms.stop(OTHER, tx, 500)
    assert csms.state.sessions[tx].open
    assert csms.state.open_sessions == {(CP, 1): tx}


def test_a_charger_cannot_meter_another_charger_s_session(csms: Csms) -> None:
    tx = started(csms, 1, meter_start=0)
    csms.meter_values(OTHER, 1, [energy_sample("700")], transaction_id=tx)
    assert csms.state.sessions[tx].energy_wh == 0.0


def test_retransmitted_stop_of_an_unknown_transaction_changes_nothing(csms: Csms) -> None:
    csms.stop(CP, 41, 5000)
    before = without_last_seen(csms.state)
    csms.stop(CP, 41, 5000, at=LATER)
    assert without_last_seen(csms.state) == before


def test_a_retransmitted_meter_values_changes_nothing(csms: Csms) -> None:
    # Found by the stateful fuzzer: the samples were stored and counted twice.
    tx = started(csms, 1, meter_start=0)
    first = csms.meter_values(CP, 1, [energy_sample("700")], transaction_id=tx)
    assert any(isinstance(e, ev.MeterSampled) for e in first)
    before = without_last_seen(csms.state)
    again = csms.meter_values(CP, 1, [energy_sample("700")], transaction_id=tx, at=LATER)
    assert again == [ev.ChargerSeen(CP, LATER)]
    assert without_last_seen(csms.state) == before
    # The next, different reading is new again.
    later = csms.meter_values(CP, 1, [energy_sample("900")], transaction_id=tx, at=LATER)
    assert any(isinstance(e, ev.MeterSampled) for e in later)
    assert csms.state.sessions[tx].energy_wh == 900.0
