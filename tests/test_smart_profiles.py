"""The profile builder (pure): an allocation in W becomes a SetChargingProfile TxProfile that
the ``ocpp`` package's 1.6 schema accepts and that never allows more than the allocation."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from csms.smart.profiles import PROFILE_ID_BASE, STACK_LEVEL, limit_in_unit, profile_id, tx_profile
from ocppj.schemas import validate_request

WATTS = st.floats(0, 400_000, allow_nan=False, allow_infinity=False)
#: (unit, phases) as a charger may prefer them.
RATES = st.sampled_from([("A", 1), ("A", 3), ("W", 1), ("W", 3)])


def period(payload: dict[str, Any]) -> dict[str, Any]:
    [first] = payload["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"]
    return first


def watts_of(limit: float, unit: str, phases: int) -> float:
    """What a limit allows, in W."""
    return limit * phases * 230.0 if unit == "A" else limit


def one_decimal(value: float) -> bool:
    # repr is the shortest string that reads back as the same float: what goes on the wire.
    exponent = Decimal(repr(value)).as_tuple().exponent
    assert isinstance(exponent, int)
    return exponent >= -1


@pytest.mark.parametrize(
    ("watts", "unit", "phases", "limit"),
    [
        (22_000.0, "A", 3, 31.8),  # 22,000 / 690 = 31.88… → 31.8 (down, never 31.9)
        (11_040.0, "A", 3, 16.0),  # 16 A x 3 x 230 exactly
        (4140.0, "A", 3, 6.0),  # the three-phase floor
        (4139.0, "A", 3, 5.9),  # a hair below it rounds down below 6 A
        (7360.0, "A", 1, 32.0),  # 32 A x 230
        (1380.0, "A", 1, 6.0),  # the single-phase floor
        (4166.67, "W", 3, 4166.6),
        (5000.0, "W", 1, 5000.0),
        (0.0, "A", 3, 0.0),  # paused
        (0.0, "W", 1, 0.0),
    ],
)
def test_limit_in_unit(watts: float, unit: str, phases: int, limit: float) -> None:
    assert limit_in_unit(watts, unit, phases) == limit


def test_the_txprofile_shape() -> None:
    payload = tx_profile(connector_id=2, transaction_id=41, watts=9000.0, unit="A", phases=3)
    assert payload == {
        "connectorId": 2,
        "csChargingProfiles": {
            "chargingProfileId": 9102,  # PROFILE_ID_BASE + connectorId
            "transactionId": 41,
            "stackLevel": 1,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                # 9,000 / (3 x 230) = 13.04… A → 13.0
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 13.0, "numberPhases": 3}],
            },
        },
    }
    validate_request("SetChargingProfile", payload)
    in_watts = tx_profile(connector_id=1, transaction_id=7, watts=9000.0, unit="W", phases=3)
    assert period(in_watts) == {"startPeriod": 0, "limit": 9000.0}  # no numberPhases in W


@given(WATTS, RATES, st.integers(1, 8), st.integers(1, 2**31 - 1))
def test_every_profile_is_schema_valid_and_within_the_allocation(
    watts: float, rate: tuple[str, int], connector_id: int, transaction_id: int
) -> None:
    unit, phases = rate
    payload = tx_profile(connector_id=connector_id, transaction_id=transaction_id, watts=watts,
                         unit=unit, phases=phases)
    validate_request("SetChargingProfile", payload)
    profile = payload["csChargingProfiles"]
    assert payload["connectorId"] == connector_id
    assert profile["transactionId"] == transaction_id
    assert profile["chargingProfilePurpose"] == "TxProfile"
    assert profile["chargingSchedule"]["chargingRateUnit"] == unit
    periods = profile["chargingSchedule"]["chargingSchedulePeriod"]
    assert all(p["startPeriod"] % 60 == 0 for p in periods)
    assert periods[0]["startPeriod"] == 0
    first = periods[0]
    assert first.get("numberPhases") == (phases if unit == "A" else None)
    limit = first["limit"]
    assert one_decimal(limit), limit
    allowed = watts_of(limit, unit, phases)
    # Rounded down: never above the allocation (round_down_tenth's guard against float
    # noise such as 62.99999… tenths can add at most 1e-6 tenth of a unit, 1e-7 A per
    # phase: < 1e-4 W) …
    assert allowed <= watts + 1e-4
    # … and less than one step (0.1 A on every phase, or 0.1 W) below it.
    step = watts_of(0.1, unit, phases)
    assert watts - allowed < step + 1e-6


@given(st.integers(1, 64), st.integers(1, 64), WATTS, WATTS, st.integers(1, 10**6))
def test_the_profile_id_and_stack_level_are_stable_per_connector(
    connector_a: int, connector_b: int, watts_a: float, watts_b: float, tx: int
) -> None:
    first = tx_profile(connector_id=connector_a, transaction_id=tx, watts=watts_a, unit="A",
                       phases=3)["csChargingProfiles"]
    again = tx_profile(connector_id=connector_a, transaction_id=tx + 1, watts=watts_b, unit="W",
                       phases=1)["csChargingProfiles"]
    other = tx_profile(connector_id=connector_b, transaction_id=tx, watts=watts_a, unit="A",
                       phases=3)["csChargingProfiles"]
    # The same connector: the same id and level, whatever the limit or transaction, so each
    # new profile replaces the last one on the charger.
    assert first["chargingProfileId"] == again["chargingProfileId"] == profile_id(connector_a)
    assert first["stackLevel"] == again["stackLevel"] == STACK_LEVEL
    # Another connector: another id.
    assert (other["chargingProfileId"] == first["chargingProfileId"]) == (
        connector_a == connector_b
    )
    assert profile_id(connector_a) == PROFILE_ID_BASE + connector_a
