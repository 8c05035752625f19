"""The smart-charging arithmetic both sides share (ocppj.charging): pure, no I/O.

A limit the CSMS rounds down must be the limit the simulator reports back, so both use one
``round_down_tenth`` and one voltage; the last test here checks exactly that, end to end.
"""

from __future__ import annotations

import datetime
import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from csms.smart.profiles import tx_profile
from ocppj.charging import (
    MIN_CURRENT_A,
    NOMINAL_VOLTAGE_V,
    amps_to_watts,
    min_power_w,
    round_down_tenth,
    watts_to_amps,
)
from ocppj.payloads import request_from_payload
from ocppj.schemas import validate_request
from sim.profiles import ProfileStore

PHASES = st.sampled_from([1, 2, 3])
#: Limits up to 100 MW: any site's, in W.
VALUES = st.floats(0, 1e8, allow_nan=False, allow_infinity=False)


def one_decimal(value: float) -> bool:
    """Whether ``value`` goes on the wire with at most one decimal (repr is what orjson and
    json write: the shortest string that reads back as the same float)."""
    exponent = Decimal(repr(value)).as_tuple().exponent
    assert isinstance(exponent, int)
    return exponent >= -1


def slack(value: float) -> float:
    """What rounding may overshoot by: the 1e-7 of a unit forgiven as float noise, plus
    the few ulps of ``value * 10`` itself."""
    return 1e-7 + 4 * math.ulp(value)


# -- the constants and conversions ---------------------------------------------------------


def test_the_constants() -> None:
    assert NOMINAL_VOLTAGE_V == 230.0
    assert MIN_CURRENT_A == 6.0
    assert min_power_w(1) == 1380.0
    assert min_power_w(3) == 4140.0
    assert min_power_w(1, voltage=240.0) == 1440.0


@pytest.mark.parametrize(
    ("amps", "phases", "voltage", "watts"),
    [
        (16.0, 3, NOMINAL_VOLTAGE_V, 11040.0),
        (32.0, 1, NOMINAL_VOLTAGE_V, 7360.0),
        (10.0, 3, NOMINAL_VOLTAGE_V, 6900.0),
        (32.0, 1, 240.0, 7680.0),
        (0.0, 3, NOMINAL_VOLTAGE_V, 0.0),
    ],
)
def test_amps_and_watts(amps: float, phases: int, voltage: float, watts: float) -> None:
    assert amps_to_watts(amps, phases, voltage) == watts
    assert watts_to_amps(watts, phases, voltage) == amps


def test_watts_to_amps_on_no_phases_is_an_error() -> None:
    with pytest.raises(ZeroDivisionError):
        watts_to_amps(1000.0, 0)


@given(VALUES, PHASES)
def test_amps_to_watts_and_back_is_the_same_to_float_noise(amps: float, phases: int) -> None:
    assert watts_to_amps(amps_to_watts(amps, phases), phases) == pytest.approx(amps, rel=1e-15)
    assert amps_to_watts(watts_to_amps(amps, phases), phases) == pytest.approx(amps, rel=1e-15)


@given(st.integers(0, 10**9), PHASES)
def test_a_tenth_through_either_round_trip_rounds_down_to_itself(tenths: int, phases: int) -> None:
    limit = tenths / 10
    amps_back = watts_to_amps(amps_to_watts(limit, phases), phases)
    watts_back = amps_to_watts(watts_to_amps(limit, phases), phases)
    assert round_down_tenth(amps_back) == limit
    assert round_down_tenth(watts_back) == limit


# -- round_down_tenth ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # Exact tenths that binary floats cannot hold, a hair above or below.
        (0.1 * 3, 0.3),  # 0.30000000000000004
        (0.7 - 0.4, 0.3),  # 0.29999999999999993: noise, not a smaller limit
        (1.1 * 3, 3.3),  # 3.3000000000000003
        (13.799999999, 13.8),  # 1e-8 tenths low: still means 13.8
        (9522.0 / 690.0, 13.8),  # 13.8 A x 3 x 230 = 9,522 W, back to amps
        (amps_to_watts(watts_to_amps(800001.6, 3), 3), 800001.6),  # 800001.5999999999 W
        # Really below a tenth: down, never up.
        (13.79, 13.7),
        (13.7999, 13.7),
        (4139.0 / 690.0, 5.9),  # 5.9985… A: a watt under the three-phase floor
        (22000.0 / 690.0, 31.8),  # 31.88… A
        (4.35, 4.3),  # 4.3499999999999996447…: rounds down either way
        (4166.67, 4166.6),
        # Whole numbers and zero.
        (16.0, 16.0),
        (0.0, 0.0),
        (-0.0, 0.0),
        # No limit is negative.
        (-0.1, 0.0),
        (-1e-12, 0.0),
        (-5000.0, 0.0),
        # Large values keep their tenths.
        (350_000.0, 350_000.0),
        (12_345_678.9, 12_345_678.9),
        (99_999_999.95, 99_999_999.9),
    ],
)
def test_round_down_tenth(value: float, expected: float) -> None:
    result = round_down_tenth(value)
    assert result == expected
    assert math.copysign(1.0, result) == 1.0  # never -0.0 on the wire
    assert one_decimal(result), repr(result)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_round_down_tenth_refuses_what_is_not_a_number(value: float) -> None:
    with pytest.raises(ValueError, match="cannot round"):
        round_down_tenth(value)


@given(VALUES)
def test_round_down_tenth_is_at_most_the_value_and_less_than_a_tenth_under(value: float) -> None:
    result = round_down_tenth(value)
    assert result <= value + slack(value)
    assert value - result < 0.1 + slack(value)
    # A whole number of tenths, written with at most one decimal.
    assert round(result * 10) / 10 == result
    assert one_decimal(result), repr(result)
    assert round_down_tenth(result) == result


@given(st.floats(-1e8, 0, allow_nan=False, allow_infinity=False))
def test_round_down_tenth_of_a_negative_is_zero(value: float) -> None:
    result = round_down_tenth(value)
    assert result == 0.0
    assert math.copysign(1.0, result) == 1.0


@given(VALUES, VALUES)
def test_round_down_tenth_is_monotonic(a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert round_down_tenth(low) <= round_down_tenth(high)


@given(st.integers(0, 10**9))
def test_an_ulp_under_a_tenth_is_that_tenth(tenths: int) -> None:
    limit = tenths / 10
    assert round_down_tenth(limit) == limit
    assert round_down_tenth(math.nextafter(limit, -math.inf)) == limit


# -- both sides agree ------------------------------------------------------------------------

T0 = datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.UTC)


@given(st.floats(0, 400_000, allow_nan=False, allow_infinity=False), st.sampled_from([1, 3]))
def test_the_simulator_reports_the_limit_the_csms_sent(watts: float, phases: int) -> None:
    # The CSMS turns an allocation into a TxProfile in A; the simulated charge point
    # installs it, converts to W with the same voltage, and GetCompositeSchedule in A
    # rounds back down with the same function: the very limit that was sent.
    payload = tx_profile(connector_id=1, transaction_id=7, watts=watts, unit="A", phases=phases)
    validate_request("SetChargingProfile", payload)
    request = request_from_payload("SetChargingProfile", payload)
    store = ProfileStore(number_of_connectors=1)
    accepted, reason = store.set(1, request.cs_charging_profiles, transaction_id=7, now=T0)
    assert accepted, reason
    schedule = store.composite_schedule(
        1, now=T0, duration=60, unit="A", transaction_start=T0, phases=phases
    )
    assert schedule is not None
    [sent] = payload["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"]
    [reported] = schedule["chargingSchedulePeriod"]
    assert reported == sent
