"""What a charger can take, read from the configuration keys it reported. Pure.

OCPP 1.6 (3.13.5) has a smart-charging charge point report, through GetConfiguration,
``ChargingScheduleAllowedChargingRateUnit`` (a comma-separated list of ``Current`` and
``Power``), ``ChargeProfileMaxStackLevel``, ``ChargingScheduleMaxPeriods`` and
``MaxChargingProfilesInstalled``. Chargers in the field spell the unit list in more ways
than the specification does (:func:`ocppj.charging.parse_units`).

The keys the CSMS asks for after every boot are :data:`CAPABILITY_KEYS`.
"""

from __future__ import annotations

from collections.abc import Mapping

from attrs import frozen

from ocppj.charging import csl_items, parse_units

#: Asked with GetConfiguration after a charger boots (or reconnects), when smart
#: charging is on: what profiles it takes, how many connectors, what it meters.
CAPABILITY_KEYS = (
    "ChargingScheduleAllowedChargingRateUnit",
    "ChargeProfileMaxStackLevel",
    "ChargingScheduleMaxPeriods",
    "MaxChargingProfilesInstalled",
    "NumberOfConnectors",
    "SupportedFeatureProfiles",
    "MeterValuesSampledData",
    "MeterValueSampleInterval",
)

def _lookup(configuration: Mapping[str, str], key: str) -> str | None:
    """``key``'s value; keys compared without case, as some chargers spell them."""
    value = configuration.get(key)
    if value is not None:
        return value
    folded = key.lower()
    for name, value in configuration.items():
        if name.lower() == folded:
            return value
    return None


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


@frozen
class Capabilities:
    """A charger's smart-charging capabilities; None where unknown.

    Attributes:
        units: the chargingRateUnits it takes.
        max_stack_level: the highest stackLevel it takes.
        max_periods: the most chargingSchedulePeriods in one schedule.
        smart_charging: whether SupportedFeatureProfiles lists SmartCharging.
    """

    units: frozenset[str] | None = None
    max_stack_level: int | None = None
    max_periods: int | None = None
    smart_charging: bool | None = None

    @classmethod
    def from_configuration(cls, configuration: Mapping[str, str]) -> Capabilities:
        """Read from the configuration keys a charger reported."""
        profiles = _lookup(configuration, "SupportedFeatureProfiles")
        return cls(
            units=parse_units(_lookup(configuration, "ChargingScheduleAllowedChargingRateUnit")),
            max_stack_level=_int(_lookup(configuration, "ChargeProfileMaxStackLevel")),
            max_periods=_int(_lookup(configuration, "ChargingScheduleMaxPeriods")),
            smart_charging=(
                None
                if profiles is None
                else "smartcharging" in csl_items(profiles.lower())
            ),
        )

    def unit(self, configured: str | None) -> str:
        """The unit to send in: the configuration file's if it names one; else A when the
        charger takes A (or has not said), W when it takes only W."""
        if configured is not None:
            return configured
        if self.units is not None and "A" not in self.units:
            return "W"
        return "A"

    def stack_level(self, wanted: int) -> int:
        """``wanted``, or the charger's highest stack level if that is lower."""
        if self.max_stack_level is None or self.max_stack_level < 0:
            return wanted
        return min(wanted, self.max_stack_level)
