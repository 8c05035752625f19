"""The site model: grid-connection limit, groups (feeders), charger and EVSE ratings.

Loaded from the ``site:`` section of the CSMS configuration file, or from
``--site-limit-kw``. Validated at the edge by one cattrs converter; a bad field gets an
error naming it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import attrs
import cattrs
from attrs import frozen
from cattrs.v import format_exception

from ocppj.charging import NOMINAL_VOLTAGE_V, amps_to_watts, csl_items

#: The grid's phases, in rotation order.
GRID_PHASES = ("L1", "L2", "L3")


class SiteConfigError(Exception):
    """The site configuration is invalid; the message names the field."""


class _Invalid(ValueError):
    """A validator's complaint; its message names the field (cattrs reports only where)."""


def _non_negative(instance: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value < 0:
        raise _Invalid(f"{attribute.name} must be >= 0, got {value}")


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise _Invalid(f"{attribute.name} must be > 0, got {value}")


def _phases(instance: Any, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and value not in (1, 3):
        raise _Invalid(f"{attribute.name} must be 1 or 3, got {value}")


def _ratio(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0 <= value < 1:
        raise _Invalid(f"{attribute.name} must be >= 0 and < 1, got {value}")


def _measurands(instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not csl_items(value):
        raise _Invalid(f"{attribute.name} must name at least one measurand, got {value!r}")


def _grid_phase(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in GRID_PHASES:
        raise _Invalid(f"{attribute.name} must be L1, L2 or L3, got {value!r}")


def _unit(instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and value not in ("A", "W"):
        raise _Invalid(f"{attribute.name} must be A or W, got {value!r}")


@frozen
class EvseRating:
    """One EVSE's rating; None inherits from its charger."""

    max_power_kw: float | None = attrs.field(default=None, validator=_non_negative)
    phases: int | None = attrs.field(default=None, validator=_phases)
    unit: str | None = attrs.field(default=None, validator=_unit)


@frozen
class ChargerRating:
    """A charger's rating: each EVSE's maximum, its phases, and the rate unit to send its
    profiles in (None: the one the charger reports it takes, see
    :mod:`csms.smart.capabilities`)."""

    max_power_kw: float = attrs.field(default=22.0, validator=_positive)
    phases: int = attrs.field(default=3, validator=_phases)
    unit: str | None = attrs.field(default=None, validator=_unit)
    #: The highest stackLevel to use (None: the ChargeProfileMaxStackLevel it reports).
    max_stack_level: int | None = attrs.field(default=None, validator=_non_negative)
    evses: dict[int, EvseRating] = attrs.field(factory=dict)
    #: The grid phase its L1 is wired to. A single-phase charger draws there only; on
    #: three phases it is the rotation (L2: its L1, L2, L3 are the grid's L2, L3, L1),
    #: which places an EV that charges on one phase.
    grid_phase: str = attrs.field(default="L1", validator=_grid_phase)


@frozen
class Group:
    """Chargers behind one feeder, with their own limit."""

    chargers: tuple[str, ...]
    limit_kw: float | None = attrs.field(default=None, validator=_non_negative)
    limit_a_per_phase: float | None = attrs.field(default=None, validator=_non_negative)


@frozen
class SiteConfig:
    """The site: its limit (kW, or A per phase on three phases), chargers, groups, and the
    rebalancing tick."""

    limit_kw: float | None = attrs.field(default=None, validator=_non_negative)
    limit_a_per_phase: float | None = attrs.field(default=None, validator=_non_negative)
    default_charger: ChargerRating = attrs.field(factory=ChargerRating)
    chargers: dict[str, ChargerRating] = attrs.field(factory=dict)
    groups: dict[str, Group] = attrs.field(factory=dict)
    rebalance_interval_s: float = attrs.field(default=60.0, validator=_positive)
    #: How long a paused session waits before the pause rotates to others: pausing and
    #: resuming EVs every tick would wear contactors and annoy drivers.
    rotation_interval_s: float = attrs.field(default=900.0, validator=_positive)
    deadband_kw: float = attrs.field(default=0.5, validator=_non_negative)
    #: A change is not sent either when it is within this share of the limit: every
    #: arrival and departure moves every share a little, and chasing each would send
    #: every session dozens of profiles.
    deadband_ratio: float = attrs.field(default=0.2, validator=_ratio)
    #: A decrease the site's (or a group's) limit forces goes this share further below the
    #: session's new share, so that the next arrivals do not force another at once.
    forced_decrease_margin: float = attrs.field(default=0.1, validator=_ratio)
    #: The increases the deadband holds back go out after all (the largest first) when
    #: together they would leave more than this share of the site's (or a group's) limit
    #: unused: the deadband trades a little power for calm, never much.
    unused_ratio: float = attrs.field(default=0.05, validator=_ratio)
    #: Triggers that come together (fifteen sessions ending in the same second) get one
    #: rebalance this long after the first, not one each: step by step, every step could
    #: stay inside the deadband and the final shares would never be sent.
    settle_s: float = attrs.field(default=0.5, validator=_non_negative)
    guard_band_kw: float = attrs.field(default=1.5, validator=_non_negative)
    #: An EV that has drawn nothing for this long (full, or waiting), once its limit is
    #: down to its floor, counts at what it draws: its floor goes to the others until it
    #: draws again.
    idle_release_s: float = attrs.field(default=600.0, validator=_non_negative)
    #: The safety net installed on every charger at boot: a TxDefaultProfile giving each
    #: EVSE this much (A per phase) from its transaction's start until its TxProfile
    #: arrives, and whenever the CSMS cannot reach the charger. The 6 A minimum: every EV
    #: charges, none draws more than the least share it could be given. None: none sent.
    safe_limit_a_per_phase: float | None = attrs.field(default=6.0, validator=_non_negative)
    #: Install a ChargePointMaxProfile at boot capping the charger as a whole at the site
    #: limit (or its group's, if lower): no charger alone exceeds it, whatever profiles it
    #: kept or lost.
    charge_point_max_profile: bool = True
    #: Set at boot (ChangeConfiguration), where the charger reports otherwise: the
    #: measurands its MeterValues carry (comma-separated; the closed loop wants power or
    #: current, and the energy register), and how often (s). None: left as they are.
    meter_values_sampled_data: str | None = attrs.field(default=None, validator=_measurands)
    meter_value_sample_interval_s: int | None = attrs.field(default=None,
                                                            validator=_non_negative)

    def meter_settings(self) -> dict[str, str]:
        """The metering keys to set at boot, with their values."""
        settings = {}
        if self.meter_values_sampled_data is not None:
            settings["MeterValuesSampledData"] = ",".join(
                csl_items(self.meter_values_sampled_data))
        if self.meter_value_sample_interval_s is not None:
            settings["MeterValueSampleInterval"] = str(self.meter_value_sample_interval_s)
        return settings

    @property
    def limit_w(self) -> float | None:
        """The site limit in W (None: no limit, smart charging off)."""
        return _watts(self.limit_kw, self.limit_a_per_phase)

    def rating(self, charger_id: str, connector_id: int) -> tuple[float, int, str | None]:
        """(max W, phases, unit) of one EVSE; the unit is None unless configured."""
        charger = self.charger(charger_id)
        evse = charger.evses.get(connector_id, EvseRating())
        max_kw = evse.max_power_kw if evse.max_power_kw is not None else charger.max_power_kw
        phases = evse.phases if evse.phases is not None else charger.phases
        unit = evse.unit if evse.unit is not None else charger.unit
        return max_kw * 1000.0, phases, unit

    def phase_weights(self, charger_id: str, connector_id: int, unit: str,
                      drawn: tuple[int, ...] | None = None) -> dict[str, float]:
        """The current (A) one W of the EVSE's limit makes on each grid phase its EV draws
        from: on each of the EVSE's phases (``drawn``: the charger phases, 1 to 3, it was
        measured drawing on, if fewer), placed by the charger's wiring. A limit in A is
        per phase of the profile's (the EVSE's) phases, whatever the EV uses; one in W is
        the total, on the phases the EV draws from."""
        _, phases, _ = self.rating(charger_id, connector_id)
        used = tuple(n for n in drawn if n <= phases) if drawn else ()
        used = used or tuple(range(1, phases + 1))
        per_w = 1.0 / (NOMINAL_VOLTAGE_V * (phases if unit == "A" else len(used)))
        offset = GRID_PHASES.index(self.charger(charger_id).grid_phase)
        return {GRID_PHASES[(offset + n - 1) % 3]: per_w for n in used}

    def watt_limits(self) -> tuple[float | None, dict[str, float]]:
        """The site's and groups' limits given in kW, in W; those given in A per phase are
        limits on each phase (:meth:`phase_limits_a`), not on the total."""
        site = self.limit_kw * 1000.0 if self.limit_kw is not None else None
        groups = {name: group.limit_kw * 1000.0 for name, group in self.groups.items()
                  if group.limit_kw is not None}
        return site, groups

    def phase_limits_a(self) -> list[tuple[float, str | None]]:
        """The current limits per phase: (A, group), the site's with group None."""
        limits: list[tuple[float, str | None]] = []
        if self.limit_a_per_phase is not None and self.limit_kw is None:
            limits.append((self.limit_a_per_phase, None))
        for name, group in sorted(self.groups.items()):
            if group.limit_a_per_phase is not None and group.limit_kw is None:
                limits.append((group.limit_a_per_phase, name))
        return limits

    def charger(self, charger_id: str) -> ChargerRating:
        """The rating of a charger (the default one's, if it is not listed)."""
        return self.chargers.get(charger_id, self.default_charger)

    def cap_w(self, charger_id: str) -> float | None:
        """The most one charger may draw: the site limit, or its group's if lower."""
        limits = [self.limit_w]
        group = self.group_of(charger_id)
        if group is not None:
            limits.append(self.group_limits_w().get(group))
        known = [limit for limit in limits if limit is not None]
        return min(known) if known else None

    def group_of(self, charger_id: str) -> str | None:
        """The group a charger is in, if any."""
        return self._group_index.get(charger_id)

    @functools.cached_property
    def _group_index(self) -> dict[str, str]:
        # Asked once per EVSE and group on every tick: a scan of every group's chargers
        # made a tick with 1,000 chargers in groups take over 100 ms.
        index: dict[str, str] = {}
        for name, group in self.groups.items():
            for charger in group.chargers:
                index.setdefault(charger, name)
        return index

    def group_limits_w(self) -> dict[str, float]:
        """Each group's limit in W (groups without one are left out)."""
        limits = {}
        for name, group in self.groups.items():
            watts = _watts(group.limit_kw, group.limit_a_per_phase)
            if watts is not None:
                limits[name] = watts
        return limits


def _watts(kw: float | None, amps_per_phase: float | None) -> float | None:
    if kw is not None:
        return kw * 1000.0
    if amps_per_phase is not None:
        return amps_to_watts(amps_per_phase, 3)
    return None


_converter = cattrs.Converter(forbid_extra_keys=True)


# YAML gives typed scalars: take them as they are. cattrs' default coerces, and turned
# ``charge_point_max_profile: "no"`` into True, 1.5 into a stack level of 1 and .nan into
# a limit.
def _boolean(value: Any, _: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"expected true or false, got {value!r}")
    return value


def _integer(value: Any, _: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"expected an integer, got {value!r}")
    return value


def _number(value: Any, _: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Invalid(f"expected a finite number, got {value!r}")
    return float(value)


_converter.register_structure_hook(bool, _boolean)
_converter.register_structure_hook(int, _integer)
_converter.register_structure_hook(float, _number)


def _format_error(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, _Invalid):
        return str(exc)
    return format_exception(exc, type_)


def parse_site(data: Mapping[str, Any] | None, *, source: str = "site") -> SiteConfig:
    """Validate the ``site`` section.

    Raises:
        SiteConfigError: naming the field and what was expected.
    """
    try:
        site = _converter.structure(dict(data or {}), SiteConfig)
    except cattrs.BaseValidationError as exc:
        raise SiteConfigError("; ".join(
            cattrs.transform_error(exc, path=source, format_exception=_format_error)
        )) from None
    if site.limit_kw is not None and site.limit_a_per_phase is not None:
        raise SiteConfigError(f"{source}: give limit_kw or limit_a_per_phase, not both")
    seen: dict[str, str] = {}
    for name, group in site.groups.items():
        if group.limit_kw is not None and group.limit_a_per_phase is not None:
            # One is a total, the other a limit on each phase: say which.
            raise SiteConfigError(f"{source}.groups.{name}: give limit_kw or "
                                  "limit_a_per_phase, not both")
        for charger in group.chargers:
            if charger in seen:
                raise SiteConfigError(f"{source}.groups.{name}.chargers: {charger} is already "
                                      f"in group {seen[charger]}")
            seen[charger] = name
    return site
