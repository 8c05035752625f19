"""The profile builder: an EVSE's allocation becomes an OCPP 1.6 TxProfile. Pure.

* one stable chargingProfileId and stackLevel per connector, so each new profile replaces
  the last one on the charger rather than piling up;
* a Relative profile: its single period starts at the transaction's start (startPeriod 0,
  a 1-minute boundary), so a charger whose clock is off still applies it at once;
* the limit in A (per phase, ``phases`` given) or W as the charger prefers, rounded *down*
  to one decimal so that it never allows more than the allocation.
"""

from __future__ import annotations

from typing import Any

from ocppj.charging import round_down_tenth, watts_to_amps

#: chargingProfileId = PROFILE_ID_BASE + connectorId
PROFILE_ID_BASE = 9100
#: Our TxProfiles' stack level.
STACK_LEVEL = 1


def profile_id(connector_id: int) -> int:
    """The chargingProfileId the CSMS uses on ``connector_id``."""
    return PROFILE_ID_BASE + connector_id


def limit_in_unit(watts: float, unit: str, phases: int) -> float:
    """``watts`` as a profile limit in ``unit`` (A per phase or W), rounded down to 0.1."""
    return round_down_tenth(watts_to_amps(watts, phases) if unit == "A" else watts)


def tx_profile(
    *,
    connector_id: int,
    transaction_id: int,
    watts: float,
    unit: str,
    phases: int,
    stack_level: int = STACK_LEVEL,
) -> dict[str, Any]:
    """The SetChargingProfile payload giving ``watts`` to the transaction on a connector
    (at ``stack_level``: lower for a charger whose ChargeProfileMaxStackLevel is 0)."""
    period: dict[str, Any] = {"startPeriod": 0, "limit": limit_in_unit(watts, unit, phases)}
    if unit == "A":
        period["numberPhases"] = phases
    return {
        "connectorId": connector_id,
        "csChargingProfiles": {
            "chargingProfileId": profile_id(connector_id),
            "transactionId": transaction_id,
            "stackLevel": stack_level,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {
                "chargingRateUnit": unit,
                "chargingSchedulePeriod": [period],
            },
        },
    }
