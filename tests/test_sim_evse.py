"""The simulator's pure cores: the EVSE transition table (sim.evse), the EV and meter model
(sim.ev) and the OCPP configuration keys (sim.configuration). No network, no clock."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ocppj.charging import NOMINAL_VOLTAGE_V
from ocppj.schemas import validate_response
from sim.configuration import Configuration
from sim.ev import Ev, current_per_phase, power_drawn, step
from sim.evse import TRANSITIONS, Action, Evse, EvseState, IllegalTransition

NAME = "CP_07 EVSE_2"
CHARGING_STATES = (EvseState.CHARGING, EvseState.SUSPENDED_EV, EvseState.SUSPENDED_EVSE)

LEGAL = [
    (state, action, target)
    for state, row in TRANSITIONS.items()
    for action, target in row.items()
]
ILLEGAL = [
    (state, action)
    for state, action in itertools.product(EvseState, Action)
    if action not in TRANSITIONS[state]
]


# -- the transition table -----------------------------------------------------------------


def test_the_table_has_a_row_for_every_state_and_only_states_as_targets() -> None:
    assert set(TRANSITIONS) == set(EvseState)
    assert all(isinstance(target, EvseState) for _, _, target in LEGAL)
    # Both lists together are every (state, action) pair, each exactly once.
    assert len(LEGAL) + len(ILLEGAL) == len(EvseState) * len(Action)


@pytest.mark.parametrize(
    ("state", "action", "target"), LEGAL, ids=[f"{s}-{a}-{t}" for s, a, t in LEGAL]
)
def test_legal_transition(state: EvseState, action: Action, target: EvseState) -> None:
    evse = Evse(NAME, state)
    assert evse.can(action)
    after = evse.next(action)
    assert after == Evse(NAME, target)
    assert evse.state is state  # frozen: the old value is unchanged


@pytest.mark.parametrize(("state", "action"), ILLEGAL, ids=[f"{s}-{a}" for s, a in ILLEGAL])
def test_illegal_transition_names_the_evse_the_state_and_the_action(
    state: EvseState, action: Action
) -> None:
    evse = Evse(NAME, state)
    assert not evse.can(action)
    with pytest.raises(IllegalTransition) as caught:
        evse.next(action)
    message = str(caught.value)
    assert NAME in message
    assert state.value in message
    assert action.value in message
    assert (caught.value.evse, caught.value.state, caught.value.action) == (NAME, state, action)
    assert not isinstance(caught.value, KeyError)  # the table lookup does not leak


@pytest.mark.parametrize("state", [s for s in EvseState if s is not EvseState.FAULTED])
def test_fault_is_legal_from_every_state_but_faulted(state: EvseState) -> None:
    assert Evse(NAME, state).next(Action.FAULT).state is EvseState.FAULTED


def test_clear_fault_returns_to_available_and_only_from_faulted() -> None:
    assert Evse(NAME, EvseState.FAULTED).next(Action.CLEAR_FAULT).state is EvseState.AVAILABLE
    assert [s for s in EvseState if Evse(NAME, s).can(Action.CLEAR_FAULT)] == [EvseState.FAULTED]


@pytest.mark.parametrize("state", CHARGING_STATES)
def test_stop_leaves_the_cable_in_and_unplug_frees_the_evse(state: EvseState) -> None:
    evse = Evse(NAME, state)
    assert evse.transaction_possible
    finishing = evse.next(Action.STOP)
    assert finishing.state is EvseState.FINISHING
    assert not finishing.transaction_possible
    assert finishing.next(Action.UNPLUG).state is EvseState.AVAILABLE
    assert evse.next(Action.UNPLUG).state is EvseState.AVAILABLE


def test_a_whole_session_walks_the_table() -> None:
    evse = Evse(NAME)
    for action, expected in [
        (Action.PLUG_IN, EvseState.PREPARING),
        (Action.AUTHORIZE, EvseState.PREPARING),
        (Action.START, EvseState.CHARGING),
        (Action.SUSPEND_EVSE, EvseState.SUSPENDED_EVSE),
        (Action.RESUME, EvseState.CHARGING),
        (Action.SUSPEND_EV, EvseState.SUSPENDED_EV),
        (Action.STOP, EvseState.FINISHING),
        (Action.UNPLUG, EvseState.AVAILABLE),
    ]:
        evse = evse.next(action)
        assert evse.state is expected, action


def test_only_charging_states_allow_a_transaction() -> None:
    assert {s for s in EvseState if Evse(NAME, s).transaction_possible} == set(CHARGING_STATES)


# -- the EV model -------------------------------------------------------------------------


def ev(soc: float = 50.0, *, capacity_wh: float = 60_000, max_power_w: float = 11_000,
       taper_from_soc: float = 80.0) -> Ev:
    return Ev(capacity_wh=capacity_wh, soc=soc, max_power_w=max_power_w,
              taper_from_soc=taper_from_soc)


@pytest.mark.parametrize("soc", [0.0, 20.0, 79.9, 80.0])
def test_full_acceptance_up_to_the_taper(soc: float) -> None:
    assert ev(soc).acceptance_w() == 11_000


def test_acceptance_tapers_above_taper_from_soc() -> None:
    socs = [80.0, 82.0, 85.0, 90.0, 95.0, 99.0, 99.9]
    acceptance = [ev(soc).acceptance_w() for soc in socs]
    assert acceptance[0] == 11_000
    assert all(a > b for a, b in itertools.pairwise(acceptance[:4]))  # strictly, above 1 kW
    assert all(a >= b for a, b in itertools.pairwise(acceptance))
    assert ev(90.0).acceptance_w() == pytest.approx(5_500)  # linear: half-way, half power
    assert all(a >= 1_000 for a in acceptance)  # a trickle until full
    assert ev(100.0).acceptance_w() == 0.0
    assert ev(100.0).full and not ev(99.9).full


def test_a_small_ev_never_trickles_above_its_maximum() -> None:
    assert ev(99.0, max_power_w=600).acceptance_w() == 600


@pytest.mark.parametrize(
    ("soc", "evse_max", "limit", "expected"),
    [
        (50.0, 22_000, None, 11_000),  # the EV's acceptance
        (50.0, 7_400, None, 7_400),  # the EVSE's maximum
        (50.0, 22_000, 6_900, 6_900),  # the profile limit
        (50.0, 4_000, 6_900, 4_000),
        (90.0, 22_000, 8_000, 5_500),  # tapering EV below the limit
        (50.0, 22_000, 0.0, 0.0),  # limit 0: paused
        (50.0, 22_000, -100.0, 0.0),  # a negative limit is a pause, never negative power
        (100.0, 22_000, None, 0.0),  # full
    ],
)
def test_power_drawn_is_the_least_of_acceptance_evse_max_and_limit(
    soc: float, evse_max: float, limit: float | None, expected: float
) -> None:
    assert power_drawn(ev(soc), evse_max, limit) == pytest.approx(expected)


def test_energy_integrates_power_over_time() -> None:
    after, energy = step(ev(20.0), 11_000, 1800)
    assert energy == pytest.approx(5_500)
    assert after.soc == pytest.approx(20.0 + 100 * 5_500 / 60_000)
    same, nothing = step(ev(20.0), 11_000, 0)
    assert (nothing, same.soc) == (0.0, 20.0)


def test_a_step_never_exceeds_the_room_left_in_the_battery() -> None:
    nearly_full = ev(99.0)  # 600 Wh of room
    after, energy = step(nearly_full, 11_000, 3600)
    assert energy == pytest.approx(600)
    assert after.soc == pytest.approx(100.0)
    assert after.full
    again, more = step(after, 11_000, 3600)
    assert more == pytest.approx(0.0, abs=1e-9)
    assert again.soc == pytest.approx(100.0)


def test_current_per_phase() -> None:
    assert current_per_phase(6_900, 3) == pytest.approx(10.0)
    assert current_per_phase(7_360, 1) == pytest.approx(32.0)
    assert current_per_phase(1_000, 0) == 0.0
    assert NOMINAL_VOLTAGE_V == 230.0


_evs = st.builds(
    Ev,
    capacity_wh=st.floats(5_000, 200_000),
    soc=st.floats(0, 100),
    max_power_w=st.floats(500, 350_000),
    taper_from_soc=st.floats(0, 100),
)
_ticks = st.lists(
    st.tuples(
        st.floats(0, 400_000),  # EVSE maximum
        st.none() | st.floats(-1_000, 400_000),  # profile limit
        st.floats(0, 7_200),  # seconds
    ),
    max_size=40,
)


@given(_evs, _ticks)
def test_soc_and_register_never_decrease(car: Ev, ticks: list[tuple[float, float | None, float]]
                                         ) -> None:
    register = 0.0
    for evse_max, limit, seconds in ticks:
        power = power_drawn(car, evse_max, limit)
        assert 0.0 <= power <= min(evse_max, car.max_power_w) + 1e-9
        if limit is not None:
            assert power <= max(limit, 0.0)
        room = car.capacity_wh * (100.0 - car.soc) / 100.0
        after, energy = step(car, power, seconds)
        assert energy >= 0.0
        assert energy <= room + 1e-6
        assert energy <= power * seconds / 3600 + 1e-6
        assert after.soc >= car.soc
        assert after.soc <= 100.0
        assert math.isfinite(after.soc)
        register, before = register + energy, register
        assert register >= before
        car = after


# -- the configuration keys ---------------------------------------------------------------


def configuration() -> Configuration:
    return Configuration.default(connectors=2, heartbeat_interval=300, meter_interval=60)


def test_get_configuration_without_keys_gives_every_key_sorted() -> None:
    known, unknown = configuration().get(None)
    names = [str(entry["key"]) for entry in known]
    assert names == sorted(names)
    assert {"HeartbeatInterval", "MeterValueSampleInterval", "NumberOfConnectors",
            "ChargeProfileMaxStackLevel", "ChargingScheduleAllowedChargingRateUnit",
            "ChargingScheduleMaxPeriods", "MaxChargingProfilesInstalled",
            "MeterValuesSampledData", "TransactionMessageAttempts",
            "TransactionMessageRetryInterval"} <= set(names)
    assert unknown == []
    validate_response("GetConfiguration", {"configurationKey": known})


def test_get_configuration_known_and_unknown_keys() -> None:
    known, unknown = configuration().get(["NumberOfConnectors", "Nope", "HeartbeatInterval"])
    assert known == [
        {"key": "NumberOfConnectors", "readonly": True, "value": "2"},
        {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
    ]
    assert unknown == ["Nope"]
    validate_response("GetConfiguration", {"configurationKey": known, "unknownKey": unknown})


def test_change_configuration_accepted_changes_the_value() -> None:
    config = configuration()
    assert config.change("MeterValueSampleInterval", "30") == "Accepted"
    assert config.int_value("MeterValueSampleInterval", 60) == 30
    assert config.change("LocalAuthorizeOffline", "FALSE") == "Accepted"
    assert config.get(["LocalAuthorizeOffline"])[0][0]["value"] == "FALSE"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("NumberOfConnectors", "4"),  # read-only
        ("SupportedFeatureProfiles", "Core"),  # read-only
        ("ChargeProfileMaxStackLevel", "99"),  # read-only
        ("HeartbeatInterval", "soon"),  # not a number
        ("HeartbeatInterval", "-5"),
        ("HeartbeatInterval", "1.5"),
        ("HeartbeatInterval", ""),
        ("HeartbeatInterval", "\u00b2"),  # a digit to str.isdigit, not to int()
        ("MeterValueSampleInterval", "\u0663\u0660"),  # Arabic-Indic digits
        ("LocalAuthorizeOffline", "maybe"),  # not a boolean
    ],
)
def test_change_configuration_rejected_leaves_the_value(key: str, value: str) -> None:
    config = configuration()
    before = config.get([key])
    assert config.change(key, value) == "Rejected"
    assert config.get([key]) == before
    assert config.int_value("HeartbeatInterval", -1) == 300


def test_change_configuration_of_an_unknown_key_is_not_supported() -> None:
    config = configuration()
    assert config.change("Nope", "1") == "NotSupported"
    assert config.get(["Nope"]) == ([], ["Nope"])


def test_int_value_falls_back_to_the_default() -> None:
    config = configuration()
    assert config.int_value("Nope", 7) == 7
    assert config.int_value("MeterValuesSampledData", 7) == 7


@given(st.text(max_size=20))
def test_change_configuration_never_raises_and_only_stores_valid_numbers(value: str) -> None:
    config = configuration()
    status = config.change("HeartbeatInterval", value)
    assert status in ("Accepted", "Rejected")
    stored = config.int_value("HeartbeatInterval", -1)
    if status == "Accepted":
        assert stored == int(value)
    else:
        assert stored == 300
