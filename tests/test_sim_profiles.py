"""Charging profiles on a charge point (sim.profiles): install, clear, limit, composite."""

from __future__ import annotations

import dataclasses
import datetime
import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ocpp.v16.enums import ChargingProfilePurposeType

from ocppj.payloads import request_from_payload
from ocppj.schemas import validate_request, validate_response
from sim.profiles import InstalledProfile, ProfileStore, to_watts

UTC = datetime.UTC
T0 = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)  # a Wednesday
CONNECTORS = 2


def at(seconds: float = 0, *, base: datetime.datetime = T0) -> datetime.datetime:
    return base + datetime.timedelta(seconds=seconds)


def stamp(moment: datetime.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def wire(
    profile_id: int = 1,
    *,
    stack: int = 0,
    purpose: str = "TxDefaultProfile",
    kind: str = "Absolute",
    unit: str = "W",
    periods: tuple[tuple[int, float] | tuple[int, float, int], ...] = ((0, 11000.0),),
    schedule: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A wire ``csChargingProfiles``; ``schedule`` adds chargingSchedule fields."""
    charging_periods = []
    for period in periods:
        item: dict[str, Any] = {"startPeriod": period[0], "limit": period[1]}
        if len(period) == 3:
            item["numberPhases"] = period[2]
        charging_periods.append(item)
    return {
        "chargingProfileId": profile_id,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": {
            "chargingRateUnit": unit,
            "chargingSchedulePeriod": charging_periods,
            **(schedule or {}),
        },
        **extra,
    }


def typed(profile: dict[str, Any], connector_id: int = 1) -> Any:
    """The typed ChargingProfile, through the schema and the project's converter."""
    payload = {"connectorId": connector_id, "csChargingProfiles": profile}
    validate_request("SetChargingProfile", payload)
    return request_from_payload("SetChargingProfile", payload).cs_charging_profiles


def install(
    store: ProfileStore,
    profile: dict[str, Any],
    connector_id: int = 1,
    *,
    transaction_id: int | None = None,
    now: datetime.datetime = T0,
) -> tuple[bool, str]:
    return store.set(
        connector_id, typed(profile, connector_id), transaction_id=transaction_id, now=now
    )


def accept(store: ProfileStore, profile: dict[str, Any], connector_id: int = 1, **kw: Any) -> None:
    accepted, reason = install(store, profile, connector_id, **kw)
    assert accepted, reason


def new_store(**kw: Any) -> ProfileStore:
    return ProfileStore(number_of_connectors=CONNECTORS, **kw)


def watts(
    store: ProfileStore,
    connector_id: int = 1,
    seconds: float = 0,
    *,
    transaction_start: datetime.datetime | None = None,
    phases: int = 3,
    now: datetime.datetime | None = None,
) -> float | None:
    return store.limit(
        connector_id,
        now=now if now is not None else at(seconds),
        transaction_start=transaction_start,
        phases=phases,
    )


def ids(store: ProfileStore) -> list[tuple[int, int]]:
    return [(p.connector_id, p.profile.charging_profile_id) for p in store.profiles()]


# -- SetChargingProfile: what is accepted and what is rejected ---------------------------------


def test_a_plain_profile_is_installed_as_sent() -> None:
    store = new_store()
    assert install(store, wire(7)) == (True, "installed")
    (installed,) = store.profiles()
    assert isinstance(installed, InstalledProfile)
    assert installed.connector_id == 1
    assert installed.profile == typed(wire(7))


def test_the_store_keeps_its_own_copy() -> None:
    store = new_store()
    profile = typed(wire(7))
    store.set(1, profile, transaction_id=None, now=T0)
    profile.charging_schedule.charging_schedule_period[0].limit = 1.0
    assert watts(store) == 11000.0


@pytest.mark.parametrize("connector_id", [-1, CONNECTORS + 1])
def test_a_connector_that_does_not_exist_is_rejected(connector_id: int) -> None:
    store = new_store()
    accepted, reason = install(store, wire(), connector_id)
    assert not accepted
    assert "does not exist" in reason
    assert store.profiles() == []


def test_charge_point_max_profile_only_on_connector_0() -> None:
    store = new_store()
    assert not install(store, wire(1, purpose="ChargePointMaxProfile"), 1)[0]
    assert install(store, wire(1, purpose="ChargePointMaxProfile"), 0)[0]


def test_tx_default_profile_on_connector_0_or_a_connector() -> None:
    store = new_store()
    assert install(store, wire(1), 0)[0]
    assert install(store, wire(2), 2)[0]


def test_tx_profile_needs_a_running_transaction_on_its_connector() -> None:
    store = new_store()
    tx = wire(1, purpose="TxProfile")
    accepted, reason = install(store, tx, 1, transaction_id=None)
    assert not accepted
    assert "no transaction" in reason
    assert not install(store, tx, 0, transaction_id=5)[0]
    assert install(store, tx, 1, transaction_id=5)[0]


def test_tx_profile_naming_a_transaction_must_name_the_running_one() -> None:
    store = new_store()
    assert not install(store, wire(1, purpose="TxProfile", transactionId=4), transaction_id=5)[0]
    assert install(store, wire(1, purpose="TxProfile", transactionId=5), transaction_id=5)[0]


def test_transaction_id_on_another_purpose_is_rejected() -> None:
    store = new_store()
    assert not install(store, wire(1, transactionId=5), transaction_id=5)[0]


@pytest.mark.parametrize(("stack", "accepted"), [(-1, False), (0, True), (3, True), (4, False)])
def test_stack_level_within_the_maximum(stack: int, accepted: bool) -> None:
    store = new_store(max_stack_level=3)
    assert install(store, wire(stack=stack))[0] is accepted


def test_a_rate_unit_the_charge_point_does_not_allow_is_rejected() -> None:
    store = new_store(allowed_units=frozenset({"W"}))
    assert not install(store, wire(unit="A", periods=((0, 16.0),)))[0]
    assert install(store, wire(unit="W"))[0]


@pytest.mark.parametrize(("count", "accepted"), [(0, False), (1, True), (3, True), (4, False)])
def test_number_of_periods(count: int, accepted: bool) -> None:
    store = new_store(max_periods=3)
    periods = tuple((60 * i, 1000.0) for i in range(count))
    assert install(store, wire(periods=periods))[0] is accepted


@pytest.mark.parametrize(
    ("periods", "why"),
    [
        (((10, 1000.0),), "first period"),
        (((0, 1000.0), (60, 2000.0), (60, 3000.0)), "strictly increase"),
        (((0, 1000.0), (60, 2000.0), (30, 3000.0)), "strictly increase"),
        (((0, -0.1),), "negative"),
        (((0, 16.0, 0),), "numberPhases"),
        (((0, 16.0, 4),), "numberPhases"),
    ],
)
def test_malformed_periods_are_rejected(periods: Any, why: str) -> None:
    store = new_store()
    accepted, reason = install(store, wire(periods=periods))
    assert not accepted
    assert why in reason


@pytest.mark.parametrize("duration", [0, -60])
def test_a_duration_that_is_not_positive_is_rejected(duration: int) -> None:
    assert not install(new_store(), wire(schedule={"duration": duration}))[0]


def test_recurring_needs_a_recurrency_kind() -> None:
    store = new_store()
    accepted, reason = install(store, wire(kind="Recurring"))
    assert not accepted
    assert "recurrencyKind" in reason
    assert install(store, wire(kind="Recurring", recurrencyKind="Daily"))[0]


def test_valid_to_must_be_after_valid_from() -> None:
    store = new_store()
    same = wire(validFrom=stamp(at(60)), validTo=stamp(at(60)))
    assert not install(store, same)[0]
    assert install(store, wire(validFrom=stamp(at(60)), validTo=stamp(at(61))))[0]


def test_too_many_profiles_are_rejected_but_a_replacement_is_not() -> None:
    store = new_store(max_profiles=2)
    accept(store, wire(1, stack=0))
    accept(store, wire(2, stack=1))
    accepted, reason = install(store, wire(3, stack=2))
    assert not accepted
    assert "more than 2" in reason
    accept(store, wire(2, stack=2))  # replaces profile 2
    accept(store, wire(9, stack=0))  # replaces profile 1: same purpose and stackLevel
    assert ids(store) == [(1, 2), (1, 9)]


def test_a_rejected_profile_changes_nothing() -> None:
    store = new_store()
    accept(store, wire(1, periods=((0, 5000.0),)))
    assert not install(store, wire(1, stack=99))[0]
    assert ids(store) == [(1, 1)]
    assert watts(store) == 5000.0


# -- replacement ------------------------------------------------------------------------------


def test_same_id_replaces_the_old_profile_on_any_connector() -> None:
    store = new_store()
    accept(store, wire(1, periods=((0, 5000.0),)), 1)
    accepted, reason = install(store, wire(1, stack=3, periods=((0, 7000.0),)), 2)
    assert accepted
    assert reason == "replaced profile 1"
    assert ids(store) == [(2, 1)]
    assert watts(store, 1) is None
    assert watts(store, 2) == 7000.0


def test_same_purpose_and_stack_level_on_the_same_connector_replaces() -> None:
    store = new_store()
    accept(store, wire(1, stack=2, periods=((0, 5000.0),)), 1)
    accept(store, wire(2, stack=2, periods=((0, 7000.0),)), 1)
    assert ids(store) == [(1, 2)]
    assert watts(store) == 7000.0


def test_same_stack_level_on_another_connector_or_purpose_stacks_next_to_it() -> None:
    store = new_store()
    accept(store, wire(1, stack=2), 1)
    accept(store, wire(2, stack=2), 2)
    accept(store, wire(3, stack=2), 0)
    accept(store, wire(4, stack=2, purpose="TxProfile"), 1, transaction_id=1)
    accept(store, wire(5, stack=2, purpose="ChargePointMaxProfile"), 0)
    assert sorted(ids(store)) == [(0, 3), (0, 5), (1, 1), (1, 4), (2, 2)]


def test_one_profile_can_replace_two() -> None:
    store = new_store()
    accept(store, wire(1, stack=0), 1)
    accept(store, wire(2, stack=1), 2)
    accepted, reason = install(store, wire(2, stack=0), 1)
    assert accepted
    assert reason == "replaced profile 1, profile 2"
    assert ids(store) == [(1, 2)]


# -- the limit in force: stacking -------------------------------------------------------------


def test_no_profile_no_limit() -> None:
    assert watts(new_store()) is None


def test_connector_specific_tx_default_beats_connector_0_at_equal_stack_level() -> None:
    store = new_store()
    accept(store, wire(1, stack=1, periods=((0, 9000.0),)), 0)
    accept(store, wire(2, stack=1, periods=((0, 4000.0),)), 1)
    assert watts(store, 1) == 4000.0
    assert watts(store, 2) == 9000.0  # connector 0's applies to every connector


def test_connector_0_tx_default_at_a_higher_stack_level_wins() -> None:
    store = new_store()
    accept(store, wire(1, stack=2, periods=((0, 9000.0),)), 0)
    accept(store, wire(2, stack=1, periods=((0, 4000.0),)), 1)
    assert watts(store, 1) == 9000.0


def test_the_highest_stack_level_wins_even_with_a_higher_limit() -> None:
    store = new_store()
    accept(store, wire(1, stack=0, periods=((0, 4000.0),)))
    accept(store, wire(2, stack=5, periods=((0, 9000.0),)))
    accept(store, wire(3, stack=3, periods=((0, 1000.0),)))
    assert watts(store) == 9000.0


def stacked_store() -> ProfileStore:
    """Connector 1 with two TxDefaultProfiles from T0, in amperes: stack 0 at 6, 8, 10 A
    from 0, 100, 200 s for 400 s, under stack 1 at 10, then 6 A from 100 s, for 150 s."""
    store = new_store()
    start = {"startSchedule": stamp(T0)}
    accept(
        store,
        wire(
            1, stack=0, unit="A", periods=((0, 6), (100, 8), (200, 10)),
            schedule={"duration": 400, **start},
        ),
    )  # fmt: skip
    accept(
        store,
        wire(
            2, stack=1, unit="A", periods=((0, 10), (100, 6)), schedule={"duration": 150, **start}
        ),
    )
    return store


def test_a_higher_stack_level_out_of_its_duration_gives_way() -> None:
    # The stacking case of the OCPP compliance tests (TC_072): stack 1 runs 150 s, then
    # stack 0 shows through.
    store = stacked_store()
    volts = 3 * 230.0
    assert [watts(store, 1, s) for s in (0, 99, 100, 149, 150, 199, 200, 399)] == [
        a * volts for a in (10, 10, 6, 6, 8, 8, 10, 10)
    ]
    assert watts(store, 1, 400) is None


def test_charge_point_max_caps_every_connector() -> None:
    store = new_store()
    accept(store, wire(1, purpose="ChargePointMaxProfile", periods=((0, 7000.0),)), 0)
    accept(store, wire(2, periods=((0, 11000.0),)), 1)
    accept(store, wire(3, periods=((0, 3000.0),)), 2)
    assert watts(store, 1) == 7000.0
    assert watts(store, 2) == 3000.0
    assert watts(store, 0) == 7000.0


def test_connector_0_sees_only_the_charge_point_max_profile() -> None:
    store = new_store()
    accept(store, wire(1, periods=((0, 3000.0),)), 0)
    assert watts(store, 0) is None
    accept(store, wire(2, purpose="ChargePointMaxProfile", periods=((0, 7000.0),)), 0)
    assert watts(store, 0) == 7000.0


def test_charge_point_max_alone_limits_a_connector_without_profiles() -> None:
    store = new_store()
    accept(store, wire(1, purpose="ChargePointMaxProfile", periods=((0, 7000.0),)), 0)
    assert watts(store, 2) == 7000.0


def test_the_highest_charge_point_max_profile_in_force_caps() -> None:
    store = new_store()
    accept(store, wire(1, stack=0, purpose="ChargePointMaxProfile", periods=((0, 5000.0),)), 0)
    accept(store, wire(2, stack=1, purpose="ChargePointMaxProfile", periods=((0, 8000.0),)), 0)
    accept(store, wire(3, periods=((0, 11000.0),)), 1)
    assert watts(store, 1) == 8000.0


def test_limit_of_a_connector_that_does_not_exist_raises() -> None:
    with pytest.raises(ValueError, match="does not exist"):
        watts(new_store(), CONNECTORS + 1)


def test_tx_profile_overrides_tx_default_while_the_transaction_runs() -> None:
    store = new_store()
    started = at(-600)
    accept(store, wire(1, stack=0, periods=((0, 11000.0),)), 0)
    accept(
        store, wire(2, stack=0, purpose="TxProfile", periods=((0, 2000.0),)), 1, transaction_id=8
    )
    assert watts(store, 1, transaction_start=started) == 2000.0
    assert watts(store, 2, transaction_start=started) == 11000.0
    # the TxProfile is only ever in force with a transaction
    assert watts(store, 1, transaction_start=None) == 11000.0
    store.transaction_ended(1)
    assert [p.profile.charging_profile_id for p in store.profiles()] == [1]
    assert watts(store, 1, transaction_start=started) == 11000.0


def test_tx_profile_wins_over_a_higher_tx_default() -> None:
    store = new_store()
    accept(store, wire(1, stack=8, periods=((0, 11000.0),)), 1)
    accept(
        store, wire(2, stack=0, purpose="TxProfile", periods=((0, 2000.0),)), 1, transaction_id=8
    )
    assert watts(store, 1, transaction_start=T0) == 2000.0


def test_tx_default_applies_when_the_tx_profile_is_past_its_duration() -> None:
    store = new_store()
    accept(store, wire(1, periods=((0, 11000.0),)), 1)
    tx = wire(
        2, purpose="TxProfile", kind="Relative", periods=((0, 2000.0),), schedule={"duration": 60}
    )
    accept(store, tx, 1, transaction_id=8)
    assert watts(store, 1, 59, transaction_start=T0) == 2000.0
    assert watts(store, 1, 60, transaction_start=T0) == 11000.0


def test_transaction_ended_leaves_other_connectors_alone() -> None:
    store = new_store()
    accept(store, wire(1, purpose="TxProfile"), 1, transaction_id=1)
    accept(store, wire(2, purpose="TxProfile"), 2, transaction_id=2)
    store.transaction_ended(1)
    assert ids(store) == [(2, 2)]


# -- amperes and watts --------------------------------------------------------------------------


def test_to_watts() -> None:
    assert to_watts(7000.0, "W", 3) == 7000.0
    assert to_watts(16, "A", 3) == 16 * 3 * 230.0
    assert to_watts(32, "A", 1, voltage=240.0) == 32 * 240.0
    with pytest.raises(ValueError, match="unit"):
        to_watts(1, "kW", 1)


def test_amperes_use_the_period_phases_else_the_callers() -> None:
    store = new_store()
    accept(store, wire(1, unit="A", periods=((0, 16.0), (60, 16.0, 1), (120, 10.0, 2))))
    assert watts(store, 1, 0, phases=3) == 16 * 3 * 230.0
    assert watts(store, 1, 0, phases=1) == 16 * 230.0
    assert watts(store, 1, 60, phases=3) == 16 * 230.0
    assert watts(store, 1, 120, phases=3) == 10 * 2 * 230.0


def test_amperes_and_watts_stack_in_watts() -> None:
    store = new_store()
    accept(store, wire(1, purpose="ChargePointMaxProfile", unit="A", periods=((0, 10.0),)), 0)
    accept(store, wire(2, periods=((0, 5000.0),)), 1)
    assert watts(store, 1, phases=3) == 5000.0
    assert watts(store, 1, phases=1) == 2300.0


def test_a_zero_limit_pauses() -> None:
    store = new_store()
    accept(store, wire(1, periods=((0, 0.0),)))
    assert watts(store) == 0.0


# -- when a profile is in force -------------------------------------------------------------------


def test_valid_from_is_inclusive_and_valid_to_exclusive() -> None:
    store = new_store()
    accept(
        store,
        wire(
            1,
            validFrom=stamp(at(60)),
            validTo=stamp(at(120)),
            schedule={"startSchedule": stamp(T0)},
        ),
    )
    assert [watts(store, 1, s) for s in (59.999999, 60, 119.999999, 120)] == [
        None,
        11000.0,
        11000.0,
        None,
    ]


def test_absolute_without_start_schedule_starts_at_valid_from() -> None:
    store = new_store()
    accept(store, wire(1, periods=((0, 1000.0), (60, 2000.0)), validFrom=stamp(at(600))))
    assert watts(store, 1, 599) is None
    assert watts(store, 1, 600) == 1000.0
    assert watts(store, 1, 660) == 2000.0


def test_absolute_without_start_schedule_or_valid_from_starts_when_set() -> None:
    store = new_store()
    accept(store, wire(1, periods=((0, 1000.0), (60, 2000.0))), now=at(30))
    assert watts(store, 1, 29) is None
    assert watts(store, 1, 89) == 1000.0
    assert watts(store, 1, 90) == 2000.0


def test_absolute_before_its_start_schedule_is_not_in_force() -> None:
    store = new_store()
    accept(store, wire(1, schedule={"startSchedule": stamp(at(60))}))
    assert watts(store, 1, 59) is None
    assert watts(store, 1, 60) == 11000.0


def test_a_period_takes_over_exactly_at_its_start_period() -> None:
    store = new_store()
    accept(
        store,
        wire(1, periods=((0, 1000.0), (300, 2000.0)), schedule={"startSchedule": stamp(T0)}),
    )
    assert watts(store, 1, 299.999999) == 1000.0
    assert watts(store, 1, 300) == 2000.0


def test_the_last_period_runs_until_the_duration_expires() -> None:
    store = new_store()
    accept(
        store,
        wire(
            1, periods=((0, 1000.0), (300, 2000.0)),
            schedule={"startSchedule": stamp(T0), "duration": 900},
        ),
    )  # fmt: skip
    assert watts(store, 1, 899.999999) == 2000.0
    assert watts(store, 1, 900) is None


def test_without_duration_the_last_period_runs_on() -> None:
    store = new_store()
    accept(store, wire(1, schedule={"startSchedule": stamp(T0)}))
    assert watts(store, 1, 86_400 * 365) == 11000.0


def test_relative_starts_with_the_transaction() -> None:
    store = new_store()
    relative = wire(
        1, kind="Relative", periods=((0, 1000.0), (60, 2000.0)), schedule={"duration": 120}
    )
    accept(store, relative)
    assert watts(store, 1, 0, transaction_start=None) is None
    started = at(1000)
    assert watts(store, 1, 999, transaction_start=started) is None
    assert watts(store, 1, 1000, transaction_start=started) == 1000.0
    assert watts(store, 1, 1060, transaction_start=started) == 2000.0
    assert watts(store, 1, 1120, transaction_start=started) is None


def test_relative_ignores_a_start_schedule() -> None:
    store = new_store()
    accept(store, wire(1, kind="Relative", schedule={"startSchedule": stamp(at(-3600))}))
    assert watts(store, 1, transaction_start=None) is None
    assert watts(store, 1, transaction_start=T0) == 11000.0


def test_absolute_ignores_the_transaction() -> None:
    store = new_store()
    accept(
        store, wire(1, periods=((0, 1000.0), (60, 2000.0)), schedule={"startSchedule": stamp(T0)})
    )
    assert watts(store, 1, 60, transaction_start=at(30)) == 2000.0


def test_recurring_daily_crosses_midnight() -> None:
    store = new_store()
    evening = datetime.datetime(2024, 5, 1, 22, 0, tzinfo=UTC)
    night = wire(
        1,
        kind="Recurring",
        recurrencyKind="Daily",
        periods=((0, 3000.0), (3 * 3600, 7000.0)),
        schedule={"startSchedule": stamp(evening), "duration": 8 * 3600},
    )
    accept(store, night)

    def on(day: int, hour: int, minute: int = 0, second: int = 0) -> float | None:
        moment = datetime.datetime(2024, 5, day, hour, minute, second, tzinfo=UTC)
        return watts(store, 1, now=moment)

    assert on(1, 21, 59, 59) is None  # before the first start
    assert on(1, 22) == 3000.0
    assert on(2, 0, 30) == 3000.0  # past midnight
    assert on(2, 1) == 7000.0
    assert on(2, 5, 59, 59) == 7000.0
    assert on(2, 6) is None  # the duration is over
    assert on(2, 21, 59, 59) is None
    assert on(2, 22) == 3000.0  # and again the next evening
    assert on(9, 2) == 7000.0  # a week later


def test_recurring_weekly_repeats_every_seven_days() -> None:
    store = new_store()
    weekly = wire(
        1,
        kind="Recurring",
        recurrencyKind="Weekly",
        schedule={"startSchedule": stamp(T0), "duration": 3600},
    )
    accept(store, weekly)
    assert watts(store, 1, 1800) == 11000.0
    assert watts(store, 1, 86_400) is None
    assert watts(store, 1, 7 * 86_400 + 1800) == 11000.0
    assert watts(store, 1, 7 * 86_400 + 3600) is None


def test_recurring_duration_longer_than_the_recurrence_is_cut_by_the_next_one() -> None:
    store = new_store()
    daily = wire(
        1,
        kind="Recurring",
        recurrencyKind="Daily",
        periods=((0, 1000.0), (20 * 3600, 2000.0)),
        schedule={"startSchedule": stamp(T0), "duration": 30 * 3600},
    )
    accept(store, daily)
    assert watts(store, 1, 23 * 3600) == 2000.0
    assert watts(store, 1, 25 * 3600) == 1000.0  # the next day has begun


def test_recurring_without_start_schedule_starts_at_midnight() -> None:
    store = new_store()
    accept(
        store,
        wire(
            1, kind="Recurring", recurrencyKind="Daily", periods=((0, 1000.0), (6 * 3600, 5000.0))
        ),
        now=T0,  # 12:00: the day began at midnight
    )
    assert watts(store, 1, 0) == 5000.0
    midnight = datetime.datetime(2024, 5, 2, tzinfo=UTC)
    assert watts(store, 1, now=midnight) == 1000.0
    assert watts(store, 1, now=midnight + datetime.timedelta(hours=6)) == 5000.0


def test_weekly_without_start_schedule_starts_on_monday() -> None:
    store = new_store()
    accept(
        store,
        wire(1, kind="Recurring", recurrencyKind="Weekly", schedule={"duration": 86_400}),
        now=T0,  # a Wednesday
    )
    monday = datetime.datetime(2024, 5, 6, tzinfo=UTC)
    assert watts(store, 1, 0) is None
    assert watts(store, 1, now=monday) == 11000.0
    assert watts(store, 1, now=monday + datetime.timedelta(days=1)) is None


def test_timestamps_with_offsets_or_without_are_read_as_utc() -> None:
    store = new_store()
    accept(store, wire(1, schedule={"startSchedule": "2024-05-01T14:00:00+02:00"}))
    accept(store, wire(2, stack=1, validFrom="2024-05-01T12:10:00"))
    assert watts(store, 1, 0) == 11000.0
    assert watts(store, 1, -1) is None


@pytest.mark.parametrize("text", ["yesterday", "", "   "])
def test_an_unreadable_timestamp_is_rejected_naming_its_field(text: str) -> None:
    # The schema check stops these on the wire; the store refuses them on its own too
    # (an empty string included: present, so not the same as absent).
    profile = typed(wire(1))
    schedule = dataclasses.replace(profile.charging_schedule, start_schedule=text)
    for bad, field in (
        (dataclasses.replace(profile, valid_from=text), "validFrom"),
        (dataclasses.replace(profile, valid_to=text), "validTo"),
        (dataclasses.replace(profile, charging_schedule=schedule), "startSchedule"),
    ):
        store = new_store()
        accepted, reason = store.set(1, bad, transaction_id=None, now=T0)
        assert not accepted
        assert reason == f"{field} {text!r} is not a timestamp"
        assert store.profiles() == []


# -- ClearChargingProfile ---------------------------------------------------------------------


def clear_store() -> ProfileStore:
    store = new_store()
    accept(store, wire(1, stack=0, purpose="ChargePointMaxProfile"), 0)
    accept(store, wire(2, stack=0), 0)
    accept(store, wire(3, stack=1), 1)
    accept(store, wire(4, stack=2), 2)
    accept(store, wire(5, stack=1, purpose="TxProfile"), 1, transaction_id=9)
    return store


def remaining(store: ProfileStore) -> list[int]:
    return sorted(p.profile.charging_profile_id for p in store.profiles())


def test_clear_by_id() -> None:
    store = clear_store()
    assert store.clear(profile_id=3)
    assert remaining(store) == [1, 2, 4, 5]


def test_clear_by_an_unknown_id_is_unknown() -> None:
    store = clear_store()
    assert not store.clear(profile_id=42)
    assert remaining(store) == [1, 2, 3, 4, 5]


def test_clear_by_id_ignores_the_other_criteria() -> None:
    store = clear_store()
    assert store.clear(profile_id=3, connector_id=2, purpose="TxProfile", stack_level=7)
    assert remaining(store) == [1, 2, 4, 5]


@pytest.mark.parametrize(
    ("criteria", "left"),
    [
        ({"connector_id": 1}, [1, 2, 4]),
        ({"connector_id": 0}, [3, 4, 5]),
        ({"purpose": "TxDefaultProfile"}, [1, 5]),
        ({"stack_level": 1}, [1, 2, 4]),
        ({"connector_id": 1, "stack_level": 1, "purpose": "TxProfile"}, [1, 2, 3, 4]),
        ({}, []),
    ],
)
def test_clear_by_criteria(criteria: dict[str, Any], left: list[int]) -> None:
    store = clear_store()
    assert store.clear(**criteria)
    assert remaining(store) == left


def test_clear_matching_nothing_is_unknown() -> None:
    store = clear_store()
    assert not store.clear(connector_id=2, purpose="TxProfile")
    assert not new_store().clear()
    assert remaining(store) == [1, 2, 3, 4, 5]


def test_clear_accepts_the_enum_member() -> None:
    store = clear_store()
    assert store.clear(purpose=ChargingProfilePurposeType.charge_point_max_profile)
    assert remaining(store) == [2, 3, 4, 5]


# -- GetCompositeSchedule -------------------------------------------------------------------------


def composite(store: ProfileStore, connector_id: int = 1, **kw: Any) -> dict[str, Any] | None:
    args: dict[str, Any] = {
        "now": T0,
        "duration": 3600,
        "unit": None,
        "transaction_start": None,
        "phases": 3,
    }
    args.update(kw)
    return store.composite_schedule(connector_id, **args)


def assert_valid_response(connector_id: int, schedule: dict[str, Any]) -> None:
    validate_response(
        "GetCompositeSchedule",
        {
            "status": "Accepted",
            "connectorId": connector_id,
            "scheduleStart": schedule["startSchedule"],
            "chargingSchedule": schedule,
        },
    )


def test_composite_of_stacked_profiles() -> None:
    store = stacked_store()
    schedule = composite(store, unit="A", duration=600)
    assert schedule == {
        "duration": 400,  # then nothing limits the connector
        "startSchedule": "2024-05-01T12:00:00Z",
        "chargingRateUnit": "A",
        "chargingSchedulePeriod": [
            {"startPeriod": 0, "limit": 10.0, "numberPhases": 3},
            {"startPeriod": 100, "limit": 6.0, "numberPhases": 3},
            {"startPeriod": 150, "limit": 8.0, "numberPhases": 3},
            {"startPeriod": 200, "limit": 10.0, "numberPhases": 3},
        ],
    }
    assert_valid_response(1, schedule)


def test_composite_defaults_to_watts_and_applies_charge_point_max() -> None:
    store = new_store()
    accept(store, wire(1, purpose="ChargePointMaxProfile", periods=((0, 9000.0),)), 0)
    accept(
        store,
        wire(
            2, unit="A", periods=((0, 16.0), (1800, 6.0, 1)), schedule={"startSchedule": stamp(T0)}
        ),
    )
    schedule = composite(store)
    assert schedule == {
        "duration": 3600,
        "startSchedule": "2024-05-01T12:00:00Z",
        "chargingRateUnit": "W",
        "chargingSchedulePeriod": [
            {"startPeriod": 0, "limit": 9000.0},
            {"startPeriod": 1800, "limit": 1380.0},
        ],
    }
    assert_valid_response(1, schedule)


def test_composite_of_connector_0_is_the_charge_point_max_profile() -> None:
    store = new_store()
    accept(store, wire(1, periods=((0, 3000.0),)), 0)
    assert composite(store, 0) is None
    accept(store, wire(2, purpose="ChargePointMaxProfile", periods=((0, 9000.0),)), 0)
    schedule = composite(store, 0)
    assert schedule is not None
    assert schedule["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 9000.0}]
    assert_valid_response(0, schedule)


def test_composite_is_none_when_nothing_limits() -> None:
    store = new_store()
    assert composite(store) is None
    accept(store, wire(1, schedule={"startSchedule": stamp(at(7200))}))
    assert composite(store, duration=3600) is None  # not yet in force within the window
    assert composite(store, CONNECTORS + 1) is None
    assert composite(store, duration=0) is None


def test_composite_starts_where_a_profile_first_limits() -> None:
    store = new_store()
    accept(
        store,
        wire(1, schedule={"startSchedule": stamp(at(600)), "duration": 1200}),
    )
    schedule = composite(store, duration=3600)
    assert schedule == {
        "duration": 1200,
        "startSchedule": "2024-05-01T12:10:00Z",
        "chargingRateUnit": "W",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000.0}],
    }


def test_composite_follows_the_transaction_for_relative_profiles() -> None:
    store = new_store()
    accept(store, wire(1, kind="Relative", periods=((0, 2000.0), (60, 4000.0))))
    assert composite(store) is None
    schedule = composite(store, transaction_start=at(-30))
    assert schedule is not None
    assert schedule["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 2000.0},
        {"startPeriod": 30, "limit": 4000.0},
    ]


def test_composite_rounds_down_to_one_decimal() -> None:
    store = new_store()
    accept(store, wire(1, periods=((0, 1000.0),)))
    schedule = composite(store, unit="A", phases=3)  # 1000 / 690 = 1.449… A
    assert schedule is not None
    assert schedule["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 1.4, "numberPhases": 3}
    ]
    assert_valid_response(1, schedule)


def test_composite_keeps_a_fractional_start() -> None:
    store = new_store()
    accept(
        store, wire(1, periods=((0, 1000.0), (60, 2000.0)), schedule={"startSchedule": stamp(T0)})
    )
    now = at(0.25)
    schedule = composite(store, now=now, duration=120)
    assert schedule is not None
    assert schedule["startSchedule"] == "2024-05-01T12:00:00.250Z"
    # the change at 59.75 s is reported at the next whole second
    assert schedule["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 1000.0},
        {"startPeriod": 60, "limit": 2000.0},
    ]
    assert_valid_response(1, schedule)


def test_composite_rejects_an_unknown_unit() -> None:
    with pytest.raises(ValueError, match="unit"):
        composite(new_store(), unit="kW")


def test_composite_of_a_recurring_profile_over_several_days() -> None:
    store = new_store()
    midnight = datetime.datetime(2024, 5, 1, tzinfo=UTC)
    accept(
        store,
        wire(
            1,
            kind="Recurring",
            recurrencyKind="Daily",
            periods=((0, 3000.0), (6 * 3600, 11000.0)),
            schedule={"startSchedule": stamp(midnight)},
        ),
    )
    schedule = composite(store, duration=2 * 86_400)
    assert schedule is not None
    assert [(p["startPeriod"], p["limit"]) for p in schedule["chargingSchedulePeriod"]] == [
        (0, 11000.0),
        (12 * 3600, 3000.0),
        (18 * 3600, 11000.0),
        (36 * 3600, 3000.0),
        (42 * 3600, 11000.0),
    ]
    assert_valid_response(1, schedule)


# -- properties ---------------------------------------------------------------------------------

# times spread over two days, and half of them within the same two hours, where they meet
offsets = st.integers(-86_400, 86_400) | st.integers(-3600, 3600)


@st.composite
def profiles(
    draw: st.DrawFn, purposes: tuple[str, ...] | None = None, *, busy: bool = False
) -> tuple[int, dict[str, Any]]:
    """``(connector, wire profile)``: valid by the schema, not always by the charge point.

    ``busy`` profiles have several periods close together, so a composite schedule of an
    hour or a day sees many changes.
    """
    purpose = draw(
        st.sampled_from(purposes or ("ChargePointMaxProfile", "TxDefaultProfile", "TxProfile"))
    )
    if purpose == "ChargePointMaxProfile":
        connector = 0
    elif purpose == "TxProfile":
        connector = draw(st.integers(1, CONNECTORS))
    else:
        connector = draw(st.integers(0, CONNECTORS))
    kind = draw(st.sampled_from(["Absolute", "Relative", "Recurring"]))
    unit = draw(st.sampled_from(["A", "W"]))
    top = 800 if unit == "A" else 300_000
    # mostly above 6 A or 1.4 kW, and one in ten a pause (0)
    limits = st.integers(0, 9).flatmap(
        lambda tenth: st.just(0) if tenth == 9 else st.integers(60 if unit == "A" else 14_000, top)
    )
    if busy:
        starts = draw(st.lists(st.integers(1, 3600), min_size=2, max_size=6, unique=True))
    else:
        starts = draw(st.lists(st.integers(1, 20_000), max_size=4, unique=True))
    periods = []
    for start in [0, *sorted(starts)]:
        period: dict[str, Any] = {"startPeriod": start, "limit": draw(limits) / 10}
        if unit == "A" and draw(st.booleans()):
            period["numberPhases"] = draw(st.integers(1, 3))
        periods.append(period)
    schedule: dict[str, Any] = {"chargingRateUnit": unit, "chargingSchedulePeriod": periods}
    if draw(st.booleans()):
        schedule["duration"] = draw(st.integers(1, 100_000))
    if kind != "Relative" and draw(st.booleans()):
        schedule["startSchedule"] = stamp(at(draw(offsets)))
    profile: dict[str, Any] = {
        "chargingProfileId": draw(st.integers(1, 12)),
        "stackLevel": draw(st.integers(0, 3)),
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": schedule,
    }
    if kind == "Recurring":
        profile["recurrencyKind"] = draw(st.sampled_from(["Daily", "Weekly"]))
    valid_from = draw(st.none() | offsets)
    if valid_from is not None:
        profile["validFrom"] = stamp(at(valid_from))
    if draw(st.booleans()):
        # after validFrom: a profile that can never be valid is refused (tested above)
        low = -86_400 if valid_from is None else valid_from + 1
        profile["validTo"] = stamp(at(draw(st.integers(low, low + 2 * 86_400))))
    return connector, profile


def stocked(
    installs: list[tuple[int, dict[str, Any]]], *, renumber: bool = False, **kw: Any
) -> ProfileStore:
    """A store with ``installs`` set in order; ``renumber`` gives each its own id."""
    store = new_store(**kw)
    for number, (connector, profile) in enumerate(installs, start=1):
        sent = {**profile, "chargingProfileId": number} if renumber else profile
        install(store, sent, connector, transaction_id=1 if connector else None)
    return store


transaction_starts = st.none() | offsets.map(at)
nows = st.builds(
    lambda s, us: at(s) + datetime.timedelta(microseconds=us),
    offsets,
    st.sampled_from([0, 0, 0, 250_000, 1]),
)


@given(
    installs=st.lists(profiles() | profiles(busy=True), min_size=2, max_size=8),
    connector=st.sampled_from([1, 1, 2, 0]),
    now=nows,
    duration=st.integers(1, 2 * 86_400),
    unit=st.sampled_from([None, "A", "W"]),
    transaction_start=transaction_starts,
    phases=st.integers(1, 3),
    data=st.data(),
)
def test_composite_is_valid_and_agrees_with_limit(
    installs: list[tuple[int, dict[str, Any]]],
    connector: int,
    now: datetime.datetime,
    duration: int,
    unit: str | None,
    transaction_start: datetime.datetime | None,
    phases: int,
    data: st.DataObject,
) -> None:
    store = stocked(installs, renumber=True)

    def limit_at(offset: int) -> float | None:
        return store.limit(
            connector,
            now=now + datetime.timedelta(seconds=offset),
            transaction_start=transaction_start,
            phases=phases,
        )

    schedule = store.composite_schedule(
        connector,
        now=now,
        duration=duration,
        unit=unit,
        transaction_start=transaction_start,
        phases=phases,
    )
    samples = data.draw(st.lists(st.integers(0, duration - 1), max_size=20))
    if schedule is None:
        assert all(limit_at(offset) is None for offset in samples)
        return
    assert_valid_response(connector, schedule)
    start = datetime.datetime.fromisoformat(schedule["startSchedule"])
    begin = round((start - now).total_seconds())
    assert start == now + datetime.timedelta(seconds=begin)
    end = begin + schedule["duration"]
    assert 0 <= begin < end <= duration
    periods = schedule["chargingSchedulePeriod"]
    assert periods[0]["startPeriod"] == 0
    starts = [p["startPeriod"] for p in periods]
    assert starts == sorted(set(starts))
    assert starts[-1] < schedule["duration"]
    assert all(a["limit"] != b["limit"] for a, b in itertools.pairwise(periods))
    resolution = 0.1 if schedule["chargingRateUnit"] == "W" else 0.1 * phases * 230.0
    if end < duration:
        assert limit_at(end) is None
    inside = [begin, end - 1, *(begin + p["startPeriod"] for p in periods)]
    for offset in [*samples, *inside]:
        actual = limit_at(offset)
        if offset < begin:
            assert actual is None
            continue
        if offset >= end:
            continue
        (period,) = [p for p in periods if p["startPeriod"] <= offset - begin][-1:]
        reported = to_watts(
            period["limit"], schedule["chargingRateUnit"], period.get("numberPhases", phases)
        )
        assert actual is not None
        # round_down_tenth forgives float noise: up to 1e-7 A per phase over, < 1e-4 W.
        assert reported <= actual + 1e-4
        assert actual - reported < resolution + 1e-6


@given(
    installs=st.lists(profiles(), max_size=8),
    now=nows,
    transaction_start=transaction_starts,
    phases=st.integers(1, 3),
)
def test_the_limit_is_never_negative(
    installs: list[tuple[int, dict[str, Any]]],
    now: datetime.datetime,
    transaction_start: datetime.datetime | None,
    phases: int,
) -> None:
    store = stocked(installs)
    for connector in range(CONNECTORS + 1):
        limit = store.limit(connector, now=now, transaction_start=transaction_start, phases=phases)
        assert limit is None or limit >= 0


@given(
    installs=st.lists(profiles(), max_size=8),
    cap=profiles(purposes=("ChargePointMaxProfile",)),
    now=nows,
    transaction_start=transaction_starts,
    phases=st.integers(1, 3),
)
def test_adding_a_charge_point_max_profile_never_raises_a_limit(
    installs: list[tuple[int, dict[str, Any]]],
    cap: tuple[int, dict[str, Any]],
    now: datetime.datetime,
    transaction_start: datetime.datetime | None,
    phases: int,
) -> None:
    # A new ChargePointMaxProfile *above* an installed one overrides it and may well raise
    # the cap (stack levels take precedence, not the lower limit), so the claim is about
    # one below every installed ChargePointMaxProfile: here at stack level 0, the others
    # above it, and with an id of its own.
    installs = [
        (connector, {**profile, "stackLevel": max(1, profile["stackLevel"])})
        if profile["chargingProfilePurpose"] == "ChargePointMaxProfile"
        else (connector, profile)
        for connector, profile in installs
    ]
    store = stocked(installs, max_profiles=100)
    before = [
        store.limit(c, now=now, transaction_start=transaction_start, phases=phases)
        for c in range(CONNECTORS + 1)
    ]
    _, profile = cap
    profile = {**profile, "chargingProfileId": 100, "stackLevel": 0}
    accepted, reason = install(store, profile, 0)
    assert accepted, reason
    after = [
        store.limit(c, now=now, transaction_start=transaction_start, phases=phases)
        for c in range(CONNECTORS + 1)
    ]
    for old, new in zip(before, after, strict=True):
        if old is not None:
            assert new is not None
            assert new <= old


@st.composite
def operations(draw: st.DrawFn) -> tuple[str, Any]:
    what = draw(st.sampled_from(["set", "set", "set", "clear", "ended"]))
    if what == "set":
        return what, draw(profiles())
    if what == "ended":
        return what, draw(st.integers(1, CONNECTORS))
    criteria = {
        "profile_id": draw(st.none() | st.integers(1, 12)),
        "connector_id": draw(st.none() | st.integers(0, CONNECTORS)),
        "purpose": draw(
            st.none() | st.sampled_from(["ChargePointMaxProfile", "TxDefaultProfile", "TxProfile"])
        ),
        "stack_level": draw(st.none() | st.integers(0, 3)),
    }
    return what, criteria


@given(ops=st.lists(operations(), max_size=30))
def test_the_store_stays_consistent(ops: list[tuple[str, Any]]) -> None:
    store = new_store(max_profiles=6)
    for what, argument in ops:
        before = store.profiles()
        if what == "set":
            connector, profile = argument
            accepted, _ = install(
                store, profile, connector, transaction_id=1 if connector else None
            )
            if accepted:
                assert (connector, profile["chargingProfileId"]) in ids(store)
            else:
                assert store.profiles() == before
        elif what == "clear":
            removed = store.clear(**argument)
            assert removed == (len(store.profiles()) < len(before))
        else:
            store.transaction_ended(argument)
            assert all(
                not (
                    p.connector_id == argument and p.profile.charging_profile_purpose == "TxProfile"
                )
                for p in store.profiles()
            )
        installed = store.profiles()
        assert len(installed) <= 6
        keys = [p.profile.charging_profile_id for p in installed]
        assert len(keys) == len(set(keys))
        slots = [
            (p.connector_id, p.profile.charging_profile_purpose, p.profile.stack_level)
            for p in installed
        ]
        assert len(slots) == len(set(slots))
        for p in installed:
            purpose = p.profile.charging_profile_purpose
            assert (purpose == "ChargePointMaxProfile") == (p.connector_id == 0) or (
                purpose == "TxDefaultProfile"
            )
