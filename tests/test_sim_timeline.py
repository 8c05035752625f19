"""The run's timeline (pure): lanes, activities, the peak."""

from __future__ import annotations

import datetime

from sim.evse import EvseState
from sim.timeline import Activity, EvseSample, Timeline, activity

T0 = datetime.datetime(2026, 1, 5, 5, 0, tzinfo=datetime.UTC)


def at(minute: int) -> datetime.datetime:
    return T0 + datetime.timedelta(minutes=minute)


def sample(name: str, watts: float, limit: float | None = None,
           doing: Activity = Activity.CHARGING) -> EvseSample:
    return EvseSample(name, 22.0, watts, limit, doing)


def test_an_evse_that_appears_later_is_idle_before_and_one_that_is_missing_after() -> None:
    timeline = Timeline()
    timeline.record(at(0), [sample("CP_01 EVSE_1", 11_000.0, 11_000.0)])
    timeline.record(at(1), [sample("CP_01 EVSE_1", 7_000.0, 7_000.0),
                            sample("CP_02 EVSE_1", 4_000.0)])
    timeline.record(at(2), [sample("CP_02 EVSE_1", 5_000.0)])
    first, second = timeline.lanes["CP_01 EVSE_1"], timeline.lanes["CP_02 EVSE_1"]
    assert first.power_kw == [11.0, 7.0, 0.0]
    assert first.limit_kw == [11.0, 7.0, None]
    assert first.activity == [Activity.CHARGING, Activity.CHARGING, Activity.IDLE]
    assert second.power_kw == [0.0, 4.0, 5.0]
    assert second.activity[0] is Activity.IDLE
    assert timeline.site_kw == [11.0, 11.0, 5.0]
    assert timeline.peak() == (11.0, at(0))  # the first of equal peaks


def test_offline_shows_over_every_activity_but_a_fault() -> None:
    assert activity(EvseState.CHARGING, online=True) is Activity.CHARGING
    assert activity(EvseState.CHARGING, online=False) is Activity.OFFLINE
    assert activity(EvseState.SUSPENDED_EVSE, online=True) is Activity.PAUSED
    assert activity(EvseState.SUSPENDED_EV, online=True) is Activity.EV_PAUSED
    assert activity(EvseState.FAULTED, online=False) is Activity.FAULTED
    assert activity(EvseState.PREPARING, online=True) is Activity.IDLE
    assert activity(EvseState.UNAVAILABLE, online=True) is Activity.UNAVAILABLE


def test_an_empty_timeline_has_no_peak() -> None:
    assert Timeline().peak() == (0.0, None)
