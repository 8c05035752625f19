"""The OCPP configuration keys of a simulated charge point (GetConfiguration /
ChangeConfiguration). Pure."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

from attrs import define, frozen


def _decimal(value: str) -> bool:
    # str.isdigit() alone also accepts "²" (int() raises) and non-ASCII digits.
    return value.isascii() and value.isdigit()


def _positive_int(value: str) -> bool:
    return _decimal(value) and int(value) >= 0


def _boolean(value: str) -> bool:
    return value.lower() in ("true", "false")


def _any(value: str) -> bool:
    return len(value) <= 500


def _authorization_key(value: str) -> bool:
    # The security whitepaper's AuthorizationKey: 16 to 40 bytes, printable.
    return 16 <= len(value) <= 40 and value.isascii() and value.isprintable()


@frozen
class Key:
    """One key: its value, whether it is read-only, what a new value must look like, and
    whether it is write-only (a secret GetConfiguration never returns)."""

    value: str
    readonly: bool = False
    valid: Callable[[str], bool] = _any
    secret: bool = False


@define
class Configuration:
    """The key set, as a real charge point of the Core and Smart Charging profiles has it."""

    keys: dict[str, Key]

    @classmethod
    def default(cls, *, connectors: int, heartbeat_interval: int, meter_interval: int,
                max_stack_level: int = 8, max_periods: int = 24,
                rate_units: str = "Current,Power",
                max_profiles: int = 20, authorization_key: str = "") -> Configuration:
        """The keys a simulated charge point starts with.

        The Key objects are shared by the chargers made alike (a Key is immutable: a
        change replaces it in the charger's own dict): 2 KiB less per charger.
        """
        return cls(dict(_default_keys(connectors, heartbeat_interval, meter_interval,
                                      max_stack_level, max_periods, rate_units, max_profiles,
                                      authorization_key)))

    def get(self, names: Iterable[str] | None) -> tuple[list[dict[str, object]], list[str]]:
        """GetConfiguration: (configurationKey entries, unknownKey names)."""
        readable = {n for n, key in self.keys.items() if not key.secret}
        wanted = list(names) if names else sorted(readable)
        known = [{"key": n, "readonly": self.keys[n].readonly, "value": self.keys[n].value}
                 for n in wanted if n in readable]
        return known, [n for n in wanted if n not in readable]

    def change(self, name: str, value: str) -> str:
        """ChangeConfiguration: Accepted, Rejected or NotSupported."""
        key = self.keys.get(name)
        if key is None:
            return "NotSupported"
        if key.readonly or not key.valid(value):
            return "Rejected"
        self.keys[name] = Key(value, key.readonly, key.valid, key.secret)
        return "Accepted"

    def int_value(self, name: str, default: int) -> int:
        """A numeric key's value."""
        key = self.keys.get(name)
        return int(key.value) if key is not None and _decimal(key.value) else default


@functools.lru_cache(maxsize=32)
def _default_keys(connectors: int, heartbeat_interval: int, meter_interval: int,
                  max_stack_level: int, max_periods: int, rate_units: str, max_profiles: int,
                  authorization_key: str) -> Mapping[str, Key]:
    """The default keys, built once for each set of arguments (read-only)."""
    sampled = "Energy.Active.Import.Register,Power.Active.Import,Current.Import,SoC"
    return MappingProxyType({
        "AuthorizationKey": Key(authorization_key, valid=_authorization_key, secret=True),
        "AuthorizeRemoteTxRequests": Key("false", valid=_boolean),
        "ClockAlignedDataInterval": Key("0", valid=_positive_int),
        "ConnectionTimeOut": Key("60", valid=_positive_int),
        "GetConfigurationMaxKeys": Key("50", readonly=True),
        "HeartbeatInterval": Key(str(heartbeat_interval), valid=_positive_int),
        "LocalAuthorizeOffline": Key("true", valid=_boolean),
        "LocalPreAuthorize": Key("false", valid=_boolean),
        "MeterValuesAlignedData": Key("Energy.Active.Import.Register"),
        "MeterValuesSampledData": Key(sampled),
        "MeterValueSampleInterval": Key(str(meter_interval), valid=_positive_int),
        "NumberOfConnectors": Key(str(connectors), readonly=True),
        "ResetRetries": Key("1", valid=_positive_int),
        "StopTransactionOnEVSideDisconnect": Key("true", valid=_boolean),
        "StopTransactionOnInvalidId": Key("true", valid=_boolean),
        "StopTxnAlignedData": Key(""),
        "StopTxnSampledData": Key("Energy.Active.Import.Register"),
        "SupportedFeatureProfiles": Key("Core,SmartCharging,RemoteTrigger", readonly=True),
        "TransactionMessageAttempts": Key("3", valid=_positive_int),
        "TransactionMessageRetryInterval": Key("30", valid=_positive_int),
        "UnlockConnectorOnEVSideDisconnect": Key("true", valid=_boolean),
        "ChargeProfileMaxStackLevel": Key(str(max_stack_level), readonly=True),
        "ChargingScheduleAllowedChargingRateUnit": Key(rate_units, readonly=True),
        "ChargingScheduleMaxPeriods": Key(str(max_periods), readonly=True),
        "MaxChargingProfilesInstalled": Key(str(max_profiles), readonly=True),
    })
