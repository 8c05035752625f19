"""The profile builder: an EVSE's allocation becomes an OCPP 1.6 TxProfile; the safety
nets installed at boot are a TxDefaultProfile and a ChargePointMaxProfile. Pure.

* one stable chargingProfileId and stackLevel per connector, so each new profile replaces
  the last one on the charger rather than piling up;
* a Relative profile: its single period starts at the transaction's start (startPeriod 0,
  a 1-minute boundary), so a charger whose clock is off still applies it at once;
* the limit in A (per phase, ``phases`` given) or W as the charger prefers, rounded *down*
  to one decimal so that it never allows more than the allocation.
"""

from __future__ import annotations

import datetime
from typing import Any

from attrs import frozen

from ocppj.charging import amps_to_watts, round_down_tenth, watts_to_amps
from ocppj.timestamps import format_timestamp

#: chargingProfileId = PROFILE_ID_BASE + connectorId
PROFILE_ID_BASE = 9100
#: Our TxProfiles' stack level.
STACK_LEVEL = 1
#: The chargingProfileIds of the safety nets installed on connector 0 at boot.
CHARGE_POINT_MAX_PROFILE_ID = 9000
TX_DEFAULT_PROFILE_ID = 9001
#: The safety nets' stack level (the lowest: anything of ours on top of them prevails).
SAFETY_STACK_LEVEL = 0


def profile_id(connector_id: int) -> int:
    """The chargingProfileId the CSMS uses on ``connector_id``."""
    return PROFILE_ID_BASE + connector_id


def limit_in_unit(watts: float, unit: str, phases: int) -> float:
    """``watts`` as a profile limit in ``unit`` (A per phase or W), rounded down to 0.1."""
    return round_down_tenth(watts_to_amps(watts, phases) if unit == "A" else watts)


def enforced_w(watts: float, unit: str, phases: int) -> float:
    """What a charger enforces when given ``watts`` in ``unit``: the limit as sent (rounded
    down, :func:`limit_in_unit`), in watts."""
    limit = limit_in_unit(watts, unit, phases)
    return amps_to_watts(limit, phases) if unit == "A" else limit


def _period(watts: float, unit: str, phases: int) -> dict[str, Any]:
    period: dict[str, Any] = {"startPeriod": 0, "limit": limit_in_unit(watts, unit, phases)}
    if unit == "A":
        period["numberPhases"] = phases
    return period


def other_unit(unit: str) -> str:
    """W for A, A for W."""
    return "W" if unit == "A" else "A"


def tx_default_profile(
    *,
    watts: float,
    unit: str,
    phases: int,
    connector_id: int = 0,
    profile_id: int = TX_DEFAULT_PROFILE_ID,
    stack_level: int = SAFETY_STACK_LEVEL,
) -> dict[str, Any]:
    """A TxDefaultProfile giving each transaction ``watts`` from its start (Relative).

    By default the safety net for every transaction on the charger: on connector 0, until
    a transaction's TxProfile arrives, and whenever the CSMS cannot reach the charger. On
    one connector (with its own id and stack level), a session's fallback limit.
    """
    return {
        "connectorId": connector_id,
        "csChargingProfiles": {
            "chargingProfileId": profile_id,
            "stackLevel": stack_level,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {
                "chargingRateUnit": unit,
                "chargingSchedulePeriod": [_period(watts, unit, phases)],
            },
        },
    }


def charge_point_max_profile(
    *, watts: float, unit: str, phases: int, now: datetime.datetime
) -> dict[str, Any]:
    """The cap of the charger as a whole: a ChargePointMaxProfile on connector 0, Absolute
    from a day before ``now`` without end, so a charger whose clock is behind ours (by up
    to a day) applies it at once."""
    start = (now - datetime.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return {
        "connectorId": 0,
        "csChargingProfiles": {
            "chargingProfileId": CHARGE_POINT_MAX_PROFILE_ID,
            "stackLevel": SAFETY_STACK_LEVEL,
            "chargingProfilePurpose": "ChargePointMaxProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {
                "startSchedule": format_timestamp(start),
                "chargingRateUnit": unit,
                "chargingSchedulePeriod": [_period(watts, unit, phases)],
            },
        },
    }


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
                "chargingSchedulePeriod": [_period(watts, unit, phases)],
            },
        },
    }


#: chargingProfileId of the per-connector TxDefaultProfile a session falls back on:
#: CONNECTOR_DEFAULT_ID_BASE + connectorId.
CONNECTOR_DEFAULT_ID_BASE = 9200


@frozen
class Form:
    """How a session's limit goes to its charger.

    Attributes:
        purpose: ``TxProfile``; or ``TxDefaultProfile`` on the session's connector, for a
            charger that refuses TxProfiles (it then holds for the connector's next
            session too, until cleared).
        unit: ``A`` or ``W``.
        stack_level: the profile's stackLevel.
    """

    purpose: str
    unit: str
    stack_level: int


def session_profile(
    form: Form, *, connector_id: int, transaction_id: int, watts: float, phases: int
) -> dict[str, Any]:
    """The SetChargingProfile payload giving ``watts`` to a session, in ``form``."""
    if form.purpose == "TxProfile":
        return tx_profile(
            connector_id=connector_id,
            transaction_id=transaction_id,
            watts=watts,
            unit=form.unit,
            phases=phases,
            stack_level=form.stack_level,
        )
    return tx_default_profile(
        watts=watts,
        unit=form.unit,
        phases=phases,
        connector_id=connector_id,
        profile_id=CONNECTOR_DEFAULT_ID_BASE + connector_id,
        stack_level=form.stack_level,
    )


def fallbacks(refused: Form, *, units: frozenset[str] | None, unit_fixed: bool) -> list[Form]:
    """What to try, in order, after a charger refused a session's profile in ``refused``.

    The other unit first, unless the configuration fixes the unit or the charger reported
    it does not take it (the refusal may be the unit: many chargers take only W, and not
    all of them say so); then a TxDefaultProfile on the connector (for chargers that
    refuse TxProfiles), in each unit still worth trying. Each is tried once per session.

    Args:
        refused: the form the charger refused.
        units: the units the charger reported it takes (None: not known).
        unit_fixed: the site configuration names the unit.
    """
    other = other_unit(refused.unit)
    try_other = not unit_fixed and (units is None or other in units)
    order: list[Form] = []
    if refused.purpose == "TxProfile":
        if try_other:
            order.append(Form("TxProfile", other, refused.stack_level))
        order.append(Form("TxDefaultProfile", refused.unit, refused.stack_level))
        if try_other:
            order.append(Form("TxDefaultProfile", other, refused.stack_level))
    elif try_other:
        order.append(Form("TxDefaultProfile", other, refused.stack_level))
    return order
