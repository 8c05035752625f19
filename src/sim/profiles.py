"""The charging profiles installed on a simulated charge point, and the limit they give.

A pure core: no I/O and no clock. Every moment comes in as an aware UTC ``now`` argument,
so the simulator's shell, MockClock and hypothesis all drive it the same way.

Rules, as OCPP 1.6 edition 2 (section 3.13) states them and as this module settles what it
leaves open:

Installing (SetChargingProfile) is refused, and the store left untouched, when

* the connector is not 0..``number_of_connectors``;
* a ChargePointMaxProfile is not on connector 0, or a TxProfile is on connector 0;
* a TxProfile arrives while no transaction runs on its connector, or names another
  transaction; a transactionId on any other purpose is refused too (the spec allows it on
  TxProfile only);
* stackLevel is outside 0..``max_stack_level``, the rate unit is not allowed
  (``ChargingScheduleAllowedChargingRateUnit``), or there are not
  1..``max_periods`` periods;
* the first period does not start at 0, periods do not strictly increase, a limit is
  negative, numberPhases is outside 1..3, or duration is not positive;
* a Recurring profile has no recurrencyKind;
* a timestamp is unreadable, or validTo is not after validFrom;
* the store would then hold more than ``max_profiles`` profiles.

An accepted profile replaces every installed profile with the same chargingProfileId (on
any connector) and the one with the same purpose and stackLevel on the same connector.

Where a schedule starts (its anchor):

* Absolute: startSchedule; without one, validFrom; without that, the moment of ``set``.
* Recurring: startSchedule, repeating every 24 h (Daily) or 7 days (Weekly) from it;
  without one, midnight UTC (Daily) or Monday 00:00 UTC (Weekly) of the day/week that
  contains validFrom, or the moment of ``set`` — "restarts at the beginning of the next
  day / week" is what the enum's definition says. A duration longer than the recurrence
  is cut short by the next recurrence.
* Relative: the start of the connector's transaction (startSchedule is ignored); with no
  transaction running the profile is not in force.

A profile is in force at ``now`` when ``validFrom <= now < validTo`` (each bound only if
given), ``now`` is at or after its anchor, and ``now`` is within its duration (if given).
The period in force is the last one whose startPeriod is at or before the elapsed time,
so a period takes over exactly at its startPeriod.

The limit in force on a connector, in watts, is the minimum of

* the highest-stackLevel ChargePointMaxProfile in force, and
* the highest-stackLevel TxProfile in force on that connector while a transaction runs;
  when none is in force, the highest-stackLevel TxDefaultProfile in force on that
  connector or on connector 0 (at equal stackLevel the connector's own wins).

ChargePointMaxProfile caps the whole charge point; the simulator applies it to each
connector on its own (a single connector can never draw more than the whole), not as a
budget shared among connectors. Amperes become watts as
``limit * phases * voltage``, the phases being those current flows on (the caller's: a
single-phase EV on a three-phase charger draws the limit on one phase), and no more than
the period's numberPhases.
"""

from __future__ import annotations

import copy
import datetime
import itertools
from collections.abc import Iterable, Iterator
from typing import Any

import attrs
from ocpp.v16.datatypes import ChargingProfile
from ocpp.v16.enums import (
    ChargingProfileKindType,
    ChargingProfilePurposeType,
    ChargingRateUnitType,
    RecurrencyKind,
)

from ocppj.charging import NOMINAL_VOLTAGE_V, amps_to_watts, round_down_tenth, watts_to_amps
from ocppj.timestamps import parse_timestamp

__all__ = ["InstalledProfile", "ProfileStore", "to_watts"]

_CHARGE_POINT_MAX = ChargingProfilePurposeType.charge_point_max_profile.value
_TX_DEFAULT = ChargingProfilePurposeType.tx_default_profile.value
_TX = ChargingProfilePurposeType.tx_profile.value
_ABSOLUTE = ChargingProfileKindType.absolute.value
_RECURRING = ChargingProfileKindType.recurring.value
_RELATIVE = ChargingProfileKindType.relative.value
_AMPS = ChargingRateUnitType.amps.value
_WATTS = ChargingRateUnitType.watts.value

_SECOND = 1_000_000  # microseconds: schedules are computed in whole microseconds, exactly
_RECURRENCE_US = {
    RecurrencyKind.daily.value: 86_400 * _SECOND,
    RecurrencyKind.weekly.value: 7 * 86_400 * _SECOND,
}
_MAX_PHASES = 3


def to_watts(limit: float, unit: str, phases: int, voltage: float = NOMINAL_VOLTAGE_V) -> float:
    """A charging-rate limit in watts.

    Args:
        limit: the limit in ``unit``.
        unit: ``"W"`` or ``"A"`` (an ``ocpp.v16.enums.ChargingRateUnitType`` member will do).
        phases: the number of phases an amperes limit applies to, each.
        voltage: phase-to-neutral voltage.

    Raises:
        ValueError: ``unit`` is neither ``"A"`` nor ``"W"``.
    """
    if unit == _WATTS:
        return float(limit)
    if unit == _AMPS:
        return amps_to_watts(float(limit), phases, voltage)
    raise ValueError(f"unknown charging rate unit {unit!r}")


@attrs.frozen
class InstalledProfile:
    """A charging profile as installed: the connector it was set on and the profile itself.

    ``profile`` is the store's own copy of the ``ocpp.v16.datatypes.ChargingProfile``;
    treat it as read-only.
    """

    connector_id: int
    profile: ChargingProfile


@attrs.frozen
class _Period:
    start_us: int
    limit: float
    number_phases: int | None


@attrs.frozen
class _Plan:
    """What the store computes with: an installed profile with its times resolved."""

    connector_id: int
    profile_id: int
    purpose: str
    stack_level: int
    unit: str
    periods: tuple[_Period, ...]
    valid_from: datetime.datetime | None
    valid_to: datetime.datetime | None
    #: where the schedule starts; None for Relative (the transaction's start)
    anchor: datetime.datetime | None
    recurrence_us: int | None
    duration_us: int | None

    def start(self, transaction_start: datetime.datetime | None) -> datetime.datetime | None:
        return self.anchor if self.anchor is not None else transaction_start

    def period_at(
        self, now: datetime.datetime, transaction_start: datetime.datetime | None
    ) -> _Period | None:
        """The period in force at ``now``, or None when the profile is not in force."""
        if self.valid_from is not None and now < self.valid_from:
            return None
        if self.valid_to is not None and now >= self.valid_to:
            return None
        start = self.start(transaction_start)
        if start is None:
            return None
        elapsed = _microseconds(now - start)
        if elapsed < 0:
            return None
        if self.recurrence_us is not None:
            elapsed %= self.recurrence_us
        if self.duration_us is not None and elapsed >= self.duration_us:
            return None
        in_force = self.periods[0]
        for period in self.periods[1:]:
            if period.start_us > elapsed:
                break
            in_force = period
        return in_force

    def boundaries(
        self,
        begin: datetime.datetime,
        end: datetime.datetime,
        transaction_start: datetime.datetime | None,
    ) -> Iterator[datetime.datetime]:
        """Every moment in ``[begin, end)`` at which this profile's limit may change.

        A superset is harmless: the composite schedule merges equal neighbours.
        """
        start = self.start(transaction_start)
        if start is None:
            return
        edges = [b for b in (self.valid_from, self.valid_to) if b is not None]
        offsets = [p.start_us for p in self.periods]
        if self.duration_us is not None:
            offsets.append(self.duration_us)
        if self.recurrence_us is None:
            edges.extend(start + _delta(offset) for offset in offsets)
        else:
            step = self.recurrence_us
            first = max(0, _microseconds(begin - start) // step)
            last = -(-_microseconds(end - start) // step)
            for k in range(first, last + 1):
                base = start + _delta(k * step)
                edges.extend(base + _delta(offset) for offset in offsets if offset < step)
        yield from (edge for edge in edges if begin <= edge < end)


class ProfileStore:
    """The charging profiles installed on one charge point, and the composite schedule they give.

    Args:
        number_of_connectors: connectors 1..n exist; 0 is the charge point as a whole.
        max_stack_level: the highest stackLevel accepted (``ChargeProfileMaxStackLevel``).
        allowed_units: the chargingRateUnits accepted
            (``ChargingScheduleAllowedChargingRateUnit``).
        max_periods: the most periods a schedule may have (``ChargingScheduleMaxPeriods``).
        max_profiles: the most profiles installed at once (``MaxChargingProfilesInstalled``).
        tx_profiles: False: every TxProfile is refused (a charger that takes only
            TxDefaultProfiles and ChargePointMaxProfiles).
    """

    def __init__(
        self,
        *,
        number_of_connectors: int,
        max_stack_level: int = 8,
        allowed_units: frozenset[str] = frozenset({"A", "W"}),
        max_periods: int = 24,
        max_profiles: int = 20,
        tx_profiles: bool = True,
    ) -> None:
        self._tx_profiles = tx_profiles
        self._number_of_connectors = number_of_connectors
        self._max_stack_level = max_stack_level
        self._allowed_units = frozenset(str(unit) for unit in allowed_units)
        self._max_periods = max_periods
        self._max_profiles = max_profiles
        # chargingProfileId -> (as installed, as computed with); insertion ordered
        self._installed: dict[int, tuple[InstalledProfile, _Plan]] = {}

    # -- SetChargingProfile ------------------------------------------------------------------

    def set(
        self,
        connector_id: int,
        profile: ChargingProfile,
        *,
        transaction_id: int | None,
        now: datetime.datetime,
    ) -> tuple[bool, str]:
        """Install a profile (SetChargingProfile), replacing the ones it supersedes.

        Args:
            connector_id: the connector the profile is set on (0: the charge point).
            profile: the typed ``csChargingProfiles``.
            transaction_id: the transaction running on that connector now, if any.
            now: the current moment; where an Absolute or Recurring schedule without
                startSchedule or validFrom starts.

        Returns:
            ``(True, what was done)`` for Accepted, ``(False, why)`` for Rejected.
        """
        problem = self._check(connector_id, profile, transaction_id)
        if problem:
            return False, problem
        try:
            plan = _plan(connector_id, profile, now)
        except ValueError as exc:
            return False, str(exc)
        if (
            plan.valid_from is not None
            and plan.valid_to is not None
            and plan.valid_to <= plan.valid_from
        ):
            return False, "validTo is not after validFrom"
        replaced = [
            profile_id
            for profile_id, (_, old) in self._installed.items()
            if profile_id == plan.profile_id
            or (
                old.connector_id == connector_id
                and old.purpose == plan.purpose
                and old.stack_level == plan.stack_level
            )
        ]
        if len(self._installed) - len(replaced) + 1 > self._max_profiles:
            return False, f"more than {self._max_profiles} profiles would be installed"
        for profile_id in replaced:
            del self._installed[profile_id]
        installed = InstalledProfile(connector_id=connector_id, profile=copy.deepcopy(profile))
        self._installed[plan.profile_id] = (installed, plan)
        if replaced:
            return True, "replaced " + ", ".join(f"profile {i}" for i in replaced)
        return True, "installed"

    def _check(
        self, connector_id: int, profile: ChargingProfile, transaction_id: int | None
    ) -> str | None:
        """Why ``profile`` may not be installed on ``connector_id``, or None."""
        purpose = str(profile.charging_profile_purpose)
        schedule = profile.charging_schedule
        periods = schedule.charging_schedule_period
        if not 0 <= connector_id <= self._number_of_connectors:
            return f"connector {connector_id} does not exist"
        if purpose == _CHARGE_POINT_MAX and connector_id != 0:
            return "ChargePointMaxProfile is only allowed on connector 0"
        if purpose == _TX:
            if not self._tx_profiles:
                return "TxProfiles are not supported"
            if connector_id == 0:
                return "TxProfile is not allowed on connector 0"
            if transaction_id is None:
                return f"no transaction runs on connector {connector_id}"
            if profile.transaction_id is not None and profile.transaction_id != transaction_id:
                return (
                    f"transaction {profile.transaction_id} is not the one on connector "
                    f"{connector_id} ({transaction_id})"
                )
        elif profile.transaction_id is not None:
            return "transactionId is only allowed on a TxProfile"
        if not 0 <= profile.stack_level <= self._max_stack_level:
            return f"stackLevel {profile.stack_level} is outside 0..{self._max_stack_level}"
        if str(schedule.charging_rate_unit) not in self._allowed_units:
            return f"chargingRateUnit {schedule.charging_rate_unit} is not allowed"
        if not 1 <= len(periods) <= self._max_periods:
            return f"{len(periods)} periods, outside 1..{self._max_periods}"
        if periods[0].start_period != 0:
            return "the first period does not start at 0"
        if any(b.start_period <= a.start_period for a, b in itertools.pairwise(periods)):
            return "startPeriod does not strictly increase"
        if any(p.limit < 0 for p in periods):
            return "a limit is negative"
        if any(
            p.number_phases is not None and not 1 <= p.number_phases <= _MAX_PHASES for p in periods
        ):
            return f"numberPhases outside 1..{_MAX_PHASES}"
        if schedule.duration is not None and schedule.duration <= 0:
            return "duration is not positive"
        if str(profile.charging_profile_kind) == _RECURRING and profile.recurrency_kind is None:
            return "a Recurring profile needs a recurrencyKind"
        return None

    # -- ClearChargingProfile, end of transaction ---------------------------------------------

    def clear(
        self,
        *,
        profile_id: int | None = None,
        connector_id: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
    ) -> bool:
        """Remove profiles (ClearChargingProfile).

        With ``profile_id``, that profile only, and the other criteria are ignored (the
        spec offers "a specific profile, or a selection"). Otherwise every profile matching
        all criteria given; connector 0 means the profiles set on connector 0, and no
        criteria at all clears everything.

        Returns:
            True (Accepted) when something was removed, False (Unknown) otherwise.
        """
        if profile_id is not None:
            return self._installed.pop(profile_id, None) is not None
        doomed = [
            pid
            for pid, (_, plan) in self._installed.items()
            if (connector_id is None or plan.connector_id == connector_id)
            and (purpose is None or plan.purpose == str(purpose))
            and (stack_level is None or plan.stack_level == stack_level)
        ]
        for pid in doomed:
            del self._installed[pid]
        return bool(doomed)

    def transaction_ended(self, connector_id: int) -> None:
        """Remove the connector's TxProfiles; its TxDefaultProfiles apply again."""
        for pid in [
            pid
            for pid, (_, plan) in self._installed.items()
            if plan.connector_id == connector_id and plan.purpose == _TX
        ]:
            del self._installed[pid]

    def profiles(self) -> list[InstalledProfile]:
        """The installed profiles, oldest first."""
        return [installed for installed, _ in self._installed.values()]

    # -- the limit in force ----------------------------------------------------------------------

    def limit(
        self,
        connector_id: int,
        *,
        now: datetime.datetime,
        transaction_start: datetime.datetime | None,
        phases: int,
        voltage: float = NOMINAL_VOLTAGE_V,
    ) -> float | None:
        """The limit in force on a connector, in watts, or None when no profile limits it.

        Args:
            connector_id: 1..n, or 0 for the charge point as a whole (ChargePointMaxProfile
                only).
            now: the moment asked about.
            transaction_start: when the transaction on that connector started; None when
                none runs (TxProfiles and Relative profiles are then not in force).
            phases: the phases current flows on (the EV's): an amperes limit applies to
                each, and to no more than its period's numberPhases.
            voltage: phase-to-neutral voltage.

        Raises:
            ValueError: the connector does not exist.
        """
        if not 0 <= connector_id <= self._number_of_connectors:
            raise ValueError(f"connector {connector_id} does not exist")
        return self._limit(connector_id, now, transaction_start, phases, voltage)

    def _limit(
        self,
        connector_id: int,
        now: datetime.datetime,
        transaction_start: datetime.datetime | None,
        phases: int,
        voltage: float,
    ) -> float | None:
        plans = [plan for _, plan in self._installed.values()]
        limits = [
            self._prevailing(
                (p for p in plans if p.purpose == _CHARGE_POINT_MAX),
                now,
                transaction_start,
                phases,
                voltage,
            )
        ]
        if connector_id != 0:
            tx = None
            if transaction_start is not None:
                tx = self._prevailing(
                    (p for p in plans if p.purpose == _TX and p.connector_id == connector_id),
                    now,
                    transaction_start,
                    phases,
                    voltage,
                )
            if tx is None:
                tx = self._prevailing(
                    (
                        p
                        for p in plans
                        if p.purpose == _TX_DEFAULT and p.connector_id in (0, connector_id)
                    ),
                    now,
                    transaction_start,
                    phases,
                    voltage,
                )
            limits.append(tx)
        present = [limit for limit in limits if limit is not None]
        return min(present) if present else None

    @staticmethod
    def _prevailing(
        plans: Iterable[_Plan],
        now: datetime.datetime,
        transaction_start: datetime.datetime | None,
        phases: int,
        voltage: float,
    ) -> float | None:
        """The watts of the highest-stackLevel plan in force (a connector's own beats 0)."""
        best: tuple[int, bool] | None = None
        best_watts: float | None = None
        for plan in plans:
            period = plan.period_at(now, transaction_start)
            if period is None:
                continue
            rank = (plan.stack_level, plan.connector_id != 0)
            if best is None or rank > best:
                best = rank
                # A limit in A is per phase: current flows on the EV's phases, at most
                # on the numberPhases the period allows.
                flowing = min(period.number_phases or phases, phases)
                watts = to_watts(period.limit, plan.unit, flowing, voltage)
                best_watts = max(0.0, watts)
        return best_watts

    # -- GetCompositeSchedule ---------------------------------------------------------------------

    def composite_schedule(
        self,
        connector_id: int,
        *,
        now: datetime.datetime,
        duration: int,
        unit: str | None,
        transaction_start: datetime.datetime | None,
        phases: int,
        voltage: float = NOMINAL_VOLTAGE_V,
    ) -> dict[str, Any] | None:
        """The composite schedule of a connector, as GetCompositeSchedule's ``chargingSchedule``.

        The composite limit (what :meth:`limit` gives) is sampled at ``now`` and at every
        moment of ``[now, now + duration)`` where some profile's limit may change, rounded
        up to whole seconds after ``now``; equal neighbours merge. Limits are rounded down to
        one decimal, so the schedule never allows more than the profiles do.

        A composite period needs a limit, and the charge point's own maximum is not this
        module's to know, so the schedule covers the first unbroken stretch of the window
        in which some profile limits the connector: it starts where that stretch starts
        (``startSchedule`` may be later than ``now``) and ends where the stretch ends.
        Answer GetCompositeSchedule with ``scheduleStart`` equal to ``startSchedule``.

        Args:
            connector_id: 1..n, or 0 for the ChargePointMaxProfile composite of the whole
                charge point.
            now: the start of the window.
            duration: the window's length in seconds.
            unit: ``"W"`` or ``"A"``; None means W, which every profile converts to without
                assuming anything more. In A, each period carries ``numberPhases = phases``
                and the limit per phase is ``watts / (phases * voltage)``.
            transaction_start: as for :meth:`limit`.
            phases: as for :meth:`limit`.
            voltage: as for :meth:`limit`.

        Returns:
            The wire ``chargingSchedule`` (camelCase), or None (answer Rejected) when the
            connector does not exist, the window is empty, or no profile limits the
            connector anywhere in it.

        Raises:
            ValueError: ``unit`` is neither A nor W.
        """
        unit = _WATTS if unit is None else str(unit)
        if unit not in (_AMPS, _WATTS):
            raise ValueError(f"unknown charging rate unit {unit!r}")
        if not 0 <= connector_id <= self._number_of_connectors or duration <= 0:
            return None
        end = now + datetime.timedelta(seconds=duration)
        offsets = {0}
        for _, plan in self._installed.values():
            if not _concerns(plan, connector_id):
                continue
            for moment in plan.boundaries(now, end, transaction_start):
                offsets.add(-(-_microseconds(moment - now) // _SECOND))
        samples = [
            (
                offset,
                self._limit(connector_id, _at(now, offset), transaction_start, phases, voltage),
            )
            for offset in sorted(o for o in offsets if o < duration)
        ]
        limited = [i for i, (_, watts) in enumerate(samples) if watts is not None]
        if not limited:
            return None
        first = limited[0]
        begin = samples[first][0]
        stop = duration
        periods: list[dict[str, Any]] = []
        for offset, watts in samples[first:]:
            if watts is None:
                stop = offset
                break
            value = watts if unit == _WATTS else watts_to_amps(watts, phases, voltage)
            period: dict[str, Any] = {
                "startPeriod": offset - begin,
                "limit": round_down_tenth(value),
            }
            if unit == _AMPS:
                period["numberPhases"] = phases
            if not periods or periods[-1]["limit"] != period["limit"]:
                periods.append(period)
        return {
            "duration": stop - begin,
            "startSchedule": _timestamp(_at(now, begin)),
            "chargingRateUnit": unit,
            "chargingSchedulePeriod": periods,
        }


def _concerns(plan: _Plan, connector_id: int) -> bool:
    """Whether ``plan`` can take part in the limit of ``connector_id``."""
    if plan.purpose == _CHARGE_POINT_MAX:
        return True
    if connector_id == 0:
        return False
    if plan.purpose == _TX:
        return plan.connector_id == connector_id
    return plan.connector_id in (0, connector_id)


def _plan(connector_id: int, profile: ChargingProfile, now: datetime.datetime) -> _Plan:
    """Resolve a checked profile's times.

    Raises:
        ValueError: a timestamp cannot be read.
    """
    schedule = profile.charging_schedule
    kind = str(profile.charging_profile_kind)
    valid_from = _parse_time(profile.valid_from, "validFrom")
    valid_to = _parse_time(profile.valid_to, "validTo")
    start_schedule = _parse_time(schedule.start_schedule, "startSchedule")
    recurrence_us: int | None = None
    anchor: datetime.datetime | None
    if kind == _RELATIVE:
        anchor = None
    elif start_schedule is not None:
        anchor = start_schedule
    else:
        anchor = valid_from or now
    if kind == _RECURRING:
        recurrence_us = _RECURRENCE_US[str(profile.recurrency_kind)]
        if start_schedule is None and anchor is not None:
            anchor = _start_of_recurrence(anchor, recurrence_us)
    return _Plan(
        connector_id=connector_id,
        profile_id=profile.charging_profile_id,
        purpose=str(profile.charging_profile_purpose),
        stack_level=profile.stack_level,
        unit=str(schedule.charging_rate_unit),
        periods=tuple(
            _Period(
                start_us=p.start_period * _SECOND,
                limit=float(p.limit),
                number_phases=p.number_phases,
            )
            for p in schedule.charging_schedule_period
        ),
        valid_from=valid_from,
        valid_to=valid_to,
        anchor=anchor,
        recurrence_us=recurrence_us,
        duration_us=None if schedule.duration is None else schedule.duration * _SECOND,
    )


def _start_of_recurrence(moment: datetime.datetime, recurrence_us: int) -> datetime.datetime:
    """Midnight UTC of ``moment``'s day, or of the Monday of its week."""
    midnight = moment.astimezone(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if recurrence_us == _RECURRENCE_US[RecurrencyKind.weekly.value]:
        return midnight - datetime.timedelta(days=midnight.weekday())
    return midnight


def _parse_time(value: str | None, field: str) -> datetime.datetime | None:
    """An aware UTC datetime from an OCPP timestamp (no offset is read as UTC).

    Raises:
        ValueError: the timestamp cannot be read.
    """
    if value is None:
        return None
    moment = parse_timestamp(value)
    if moment is None:
        # Present but unreadable (parse_timestamp also says None for ""): a bad profile.
        raise ValueError(f"{field} {value!r} is not a timestamp")
    return moment


def _timestamp(moment: datetime.datetime) -> str:
    """An OCPP timestamp: UTC with ``Z``, fractions only when there are some."""
    utc = moment.astimezone(datetime.UTC).replace(tzinfo=None)
    if utc.microsecond == 0:
        spec = "seconds"
    elif utc.microsecond % 1000 == 0:
        spec = "milliseconds"
    else:
        spec = "microseconds"
    return utc.isoformat(timespec=spec) + "Z"


def _microseconds(delta: datetime.timedelta) -> int:
    return delta // datetime.timedelta(microseconds=1)


def _delta(microseconds: int) -> datetime.timedelta:
    return datetime.timedelta(microseconds=microseconds)


def _at(now: datetime.datetime, seconds: int) -> datetime.datetime:
    return now + datetime.timedelta(seconds=seconds)
