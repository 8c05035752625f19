"""What a scenario run looked like over time, as the chargers saw it: the site's metered
power, and per EVSE its power, the limit in force and what it was doing. Pure: the fleet
samples its chargers into a :class:`Timeline` (sim.simulator_runner), the report draws it
(sim.plots).

Samples are taken at fixed moments of the scenario clock (every meter interval, halfway
between meter ticks), so the same seed gives the same timeline.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Iterable

import attrs

from sim.evse import EvseState


class Activity(enum.StrEnum):
    """What an EVSE was doing at a sample, as a lane of the report shows it."""

    IDLE = "idle"  # no transaction, or one that has not started drawing yet
    CHARGING = "charging"
    PAUSED = "paused"  # SuspendedEVSE: the limit in force is below what the EV can take
    EV_PAUSED = "ev-paused"  # SuspendedEV: the EV takes nothing (full, or waiting)
    FAULTED = "faulted"
    UNAVAILABLE = "unavailable"
    OFFLINE = "offline"  # its charger had no working connection to the CSMS


_ACTIVITY = {
    EvseState.CHARGING: Activity.CHARGING,
    EvseState.SUSPENDED_EVSE: Activity.PAUSED,
    EvseState.SUSPENDED_EV: Activity.EV_PAUSED,
    EvseState.FAULTED: Activity.FAULTED,
    EvseState.UNAVAILABLE: Activity.UNAVAILABLE,
}


def activity(state: EvseState, *, online: bool) -> Activity:
    """What an EVSE in ``state`` is doing; offline wins over everything but a fault."""
    found = _ACTIVITY.get(state, Activity.IDLE)
    if not online and found is not Activity.FAULTED:
        return Activity.OFFLINE
    return found


@attrs.frozen
class EvseSample:
    """One EVSE at one sample.

    Attributes:
        name: ``CP_01 EVSE_1``.
        max_kw: its rating (the lane's scale).
        power_w: what it drew.
        limit_w: the limit in force from the profiles it accepted, while a transaction
            runs (None: no limit, or no transaction).
        activity: what it was doing.
    """

    name: str
    max_kw: float
    power_w: float
    limit_w: float | None
    activity: Activity


@attrs.define
class Lane:
    """One EVSE over the run; one entry per sample of the timeline."""

    name: str
    max_kw: float
    power_kw: list[float] = attrs.Factory(list)
    limit_kw: list[float | None] = attrs.Factory(list)
    activity: list[Activity] = attrs.Factory(list)


@attrs.define
class Timeline:
    """The run over time: sample moments, the site's metered power, one lane per EVSE."""

    times: list[datetime.datetime] = attrs.Factory(list)
    site_kw: list[float] = attrs.Factory(list)
    lanes: dict[str, Lane] = attrs.Factory(dict)
    #: Transactions running at each sample.
    open_sessions: list[int] = attrs.Factory(list)

    def record(self, at: datetime.datetime, evses: Iterable[EvseSample],
               open_sessions: int = 0) -> None:
        """Add the sample at ``at``. An EVSE seen for the first time gets a lane, idle
        before it existed.

        ``times`` grows last: a reader in another thread (the progress display) that sees
        ``n`` moments finds ``n`` entries in the other lists too.
        """
        before = len(self.times)
        total = 0.0
        for sample in evses:
            lane = self.lanes.get(sample.name)
            if lane is None:
                lane = self.lanes[sample.name] = Lane(
                    sample.name, sample.max_kw, [0.0] * before, [None] * before,
                    [Activity.IDLE] * before)
            lane.power_kw.append(sample.power_w / 1000)
            lane.limit_kw.append(None if sample.limit_w is None else sample.limit_w / 1000)
            lane.activity.append(sample.activity)
            total += sample.power_w
        for lane in self.lanes.values():  # an EVSE that was not sampled this time
            if len(lane.power_kw) == before:
                lane.power_kw.append(0.0)
                lane.limit_kw.append(None)
                lane.activity.append(Activity.IDLE)
        self.site_kw.append(total / 1000)
        self.open_sessions.append(open_sessions)
        self.times.append(at)

    def peak(self) -> tuple[float, datetime.datetime | None]:
        """The highest site power sampled (kW) and when (the first time, on a tie)."""
        if not self.site_kw:
            return 0.0, None
        index = max(range(len(self.site_kw)), key=lambda i: (self.site_kw[i], -i))
        return self.site_kw[index], self.times[index]
