"""Sampled values (csms.domain.meter) and lenient timestamps (ocppj.timestamps)."""

from __future__ import annotations

import datetime
from typing import Any

import attrs
import pytest

from csms.domain.meter import (
    CURRENT,
    DEFAULT_MEASURAND,
    ENERGY_REGISTER,
    POWER,
    SOC,
    Reading,
    Sample,
    default_unit,
    power_from_energy,
    readings,
    samples_from,
)
from ocppj.timestamps import parse_timestamp

T1 = "2024-05-01T12:00:00Z"
T2 = "2024-05-01T12:01:00Z"
T3 = "2024-05-01T12:02:00Z"


def one(sampled: dict[str, Any], timestamp: str = T1) -> Sample:
    (sample,) = samples_from([{"timestamp": timestamp, "sampledValue": [sampled]}])
    return sample


def reading_of(*sampled: dict[str, Any]) -> Reading:
    """The reading of one meterValue at T1 (its time left out: see the test of it)."""
    (reading,) = readings(samples_from([{"timestamp": T1, "sampledValue": list(sampled)}]))
    assert reading.at == parse_timestamp(T1)
    return attrs.evolve(reading, at=None)


# -- samples_from: defaults, units, numbers -------------------------------------------------


def test_sample_without_measurand_or_unit_is_the_energy_register_in_wh() -> None:
    sample = one({"value": "1234"})
    assert sample.measurand == DEFAULT_MEASURAND == ENERGY_REGISTER
    assert sample.unit == "Wh"
    assert sample.number == 1234.0
    assert sample.timestamp == T1
    assert sample.value == "1234"
    assert (sample.phase, sample.context, sample.location, sample.format) == (None,) * 4


def test_sample_keeps_what_was_sent() -> None:
    sample = one(
        {
            "value": "12",
            "context": "Sample.Periodic",
            "format": "Raw",
            "measurand": "Current.Import",
            "phase": "L2",
            "location": "Outlet",
            "unit": "A",
        }
    )
    assert sample == Sample(
        timestamp=T1,
        value="12",
        measurand="Current.Import",
        unit="A",
        phase="L2",
        context="Sample.Periodic",
        location="Outlet",
        format="Raw",
        number=12.0,
    )


@pytest.mark.parametrize(
    ("measurand", "unit"),
    [
        ("Energy.Active.Import.Register", "Wh"),
        ("Energy.Active.Export.Interval", "Wh"),
        ("Energy.Reactive.Import.Register", "varh"),
        ("Power.Active.Import", "W"),
        ("Power.Reactive.Import", "var"),
        ("Power.Factor", ""),
        ("Current.Import", "A"),
        ("Current.Offered", "A"),
        ("Voltage", "V"),
        ("SoC", "Percent"),
        ("Temperature", "Celsius"),
        ("Frequency", "Hertz"),
        ("RPM", ""),
    ],
)
def test_default_unit_per_measurand(measurand: str, unit: str) -> None:
    assert default_unit(measurand) == unit
    assert one({"value": "1", "measurand": measurand}).unit == unit


@pytest.mark.parametrize(
    ("sampled", "number"),
    [
        ({"value": "1234.5"}, 1234.5),
        ({"value": "1234.5", "unit": "Wh"}, 1234.5),
        ({"value": "12.5", "unit": "kWh"}, 12_500.0),
        ({"value": "0.001", "unit": "kWh"}, 1.0),
        ({"value": " 7.2 ", "measurand": POWER, "unit": "kW"}, 7200.0),
        ({"value": "7200", "measurand": POWER, "unit": "W"}, 7200.0),
        ({"value": "7200", "measurand": POWER}, 7200.0),
        ({"value": "2", "measurand": "Energy.Reactive.Import.Register", "unit": "kvarh"}, 2000.0),
        ({"value": "16", "measurand": CURRENT}, 16.0),
        ({"value": "-3", "measurand": "Power.Active.Export", "unit": "kW"}, -3000.0),
        ({"value": "1e3"}, 1000.0),
        ({"value": "0"}, 0.0),
        ({"value": "21.5", "measurand": "Temperature", "unit": "Celsius"}, 21.5),
    ],
)
def test_numbers_in_base_units(sampled: dict[str, Any], number: float) -> None:
    assert one(sampled).number == pytest.approx(number)


@pytest.mark.parametrize(
    "sampled",
    [
        {"value": "3A0F22", "format": "SignedData"},
        {"value": "1234", "format": "SignedData"},
        {"value": "abc"},
        {"value": ""},
        {"value": "   "},
        {"value": "12,5"},
        {"value": "1.2.3"},
        {"value": "NaN"},
        {"value": "Infinity"},
        {"value": "-inf", "unit": "kWh"},
    ],
)
def test_signed_and_garbage_values_have_no_number(sampled: dict[str, Any]) -> None:
    sample = one(sampled)
    assert sample.number is None
    assert sample.value == sampled["value"]  # kept as sent


def test_raw_format_is_a_number() -> None:
    assert one({"value": "42", "format": "Raw"}).number == 42.0


def test_samples_flatten_every_meter_value_in_order() -> None:
    samples = samples_from(
        [
            {"timestamp": T1, "sampledValue": [{"value": "1"}, {"value": "2", "measurand": SOC}]},
            {"timestamp": T2, "sampledValue": [{"value": "3"}]},
            {"timestamp": T3, "sampledValue": []},
        ]
    )
    assert [(s.timestamp, s.value, s.measurand) for s in samples] == [
        (T1, "1", ENERGY_REGISTER),
        (T1, "2", SOC),
        (T2, "3", ENERGY_REGISTER),
    ]


# -- readings: what one timestamp says about a session --------------------------------------


def test_energy_register_reading() -> None:
    assert reading_of({"value": "15.5", "unit": "kWh"}) == Reading(register_wh=15_500.0)


@pytest.mark.parametrize("phases", [("L1", "L2", "L3"), ("L1-N", "L2-N", "L3-N")])
def test_power_per_phase_is_summed(phases: tuple[str, ...]) -> None:
    reading = reading_of(
        *({"value": "3.68", "measurand": POWER, "unit": "kW", "phase": p} for p in phases)
    )
    assert reading.power_w == pytest.approx(3 * 3680.0)


def test_power_of_the_neutral_is_not_a_load() -> None:
    reading = reading_of(
        {"value": "1000", "measurand": POWER, "phase": "L1"},
        {"value": "2000", "measurand": POWER, "phase": "L2"},
        {"value": "500", "measurand": POWER, "phase": "N"},
    )
    assert reading.power_w == 3000.0


@pytest.mark.parametrize("total_first", [True, False])
def test_power_total_without_phase_is_preferred(total_first: bool) -> None:
    per_phase = [{"value": "1000", "measurand": POWER, "phase": p} for p in ("L1", "L2", "L3")]
    total = {"value": "11", "measurand": POWER, "unit": "kW"}
    sampled = [total, *per_phase] if total_first else [*per_phase, total]
    assert reading_of(*sampled).power_w == 11_000.0


def test_current_per_phase() -> None:
    reading = reading_of(
        {"value": "16", "measurand": CURRENT, "phase": "L1", "unit": "A"},
        {"value": "15.5", "measurand": CURRENT, "phase": "L2", "unit": "A"},
        {"value": "0", "measurand": CURRENT, "phase": "L3", "unit": "A"},
    )
    assert reading.current_a == (("L1", 16.0), ("L2", 15.5), ("L3", 0.0))
    assert reading.power_w is None
    assert reading.register_wh is None


def test_current_without_phase() -> None:
    assert reading_of({"value": "32", "measurand": CURRENT}).current_a == (("", 32.0),)


def test_state_of_charge() -> None:
    reading = reading_of({"value": "55", "measurand": SOC, "unit": "Percent"})
    assert reading == Reading(soc=55.0)


def test_everything_at_once() -> None:
    reading = reading_of(
        {"value": "2.5", "unit": "kWh"},
        {"value": "7.4", "measurand": POWER, "unit": "kW"},
        {"value": "32", "measurand": CURRENT, "phase": "L1"},
        {"value": "80", "measurand": SOC},
        {"value": "230", "measurand": "Voltage", "phase": "L1-N"},
    )
    assert reading == Reading(
        register_wh=2500.0, power_w=pytest.approx(7400.0), current_a=(("L1", 32.0),), soc=80.0
    )


def test_values_without_number_say_nothing() -> None:
    reading = reading_of(
        {"value": "garbage"},
        {"value": "1234", "format": "SignedData"},
        {"value": "500", "measurand": POWER},
    )
    assert reading == Reading(power_w=500.0)
    assert readings(samples_from([{"timestamp": T1, "sampledValue": [{"value": "x"}]}])) == []


@pytest.mark.parametrize("location", ["Inlet", "Body"])
def test_values_not_measured_at_the_outlet_are_left_out(location: str) -> None:
    reading = reading_of(
        {"value": "9999", "location": location},
        {"value": "100", "location": "Outlet"},
    )
    assert reading.register_wh == 100.0


def test_unknown_measurands_give_an_empty_reading() -> None:
    assert reading_of({"value": "230", "measurand": "Voltage"}) == Reading()


def test_several_timestamps_give_several_readings_in_order() -> None:
    samples = samples_from(
        [
            {"timestamp": T2, "sampledValue": [{"value": "2000"}]},
            {
                "timestamp": T1,
                "sampledValue": [{"value": "1000"}, {"value": "60", "measurand": SOC}],
            },
            {"timestamp": T3, "sampledValue": [{"value": "3", "unit": "kWh"}]},
        ]
    )
    assert readings(samples) == [
        Reading(register_wh=2000.0, at=parse_timestamp(T2)),
        Reading(register_wh=1000.0, soc=60.0, at=parse_timestamp(T1)),
        Reading(register_wh=3000.0, at=parse_timestamp(T3)),
    ]


def test_same_timestamp_in_two_meter_values_is_one_reading() -> None:
    samples = samples_from(
        [
            {"timestamp": T1, "sampledValue": [{"value": "1000"}]},
            {"timestamp": T1, "sampledValue": [{"value": "50", "measurand": SOC}]},
        ]
    )
    assert readings(samples) == [Reading(register_wh=1000.0, soc=50.0, at=parse_timestamp(T1))]


# -- parse_timestamp ------------------------------------------------------------------------

UTC = datetime.UTC


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2024-05-01T12:00:00Z", datetime.datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00+00:00", datetime.datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T13:00:00+01:00", datetime.datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T07:30:00-04:30", datetime.datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00", datetime.datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01 12:00:00Z", datetime.datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01 12:00:00", datetime.datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00.5Z", datetime.datetime(2024, 5, 1, 12, 0, 0, 500_000, tzinfo=UTC)),
        (
            "2024-05-01T12:00:00.123Z",
            datetime.datetime(2024, 5, 1, 12, 0, 0, 123_000, tzinfo=UTC),
        ),
        (
            "2024-05-01T12:00:00.123456+02:00",
            datetime.datetime(2024, 5, 1, 10, 0, 0, 123_456, tzinfo=UTC),
        ),
        (
            "2024-05-01T12:00:00.123456789Z",
            datetime.datetime(2024, 5, 1, 12, 0, 0, 123_456, tzinfo=UTC),
        ),
        (" 2024-05-01T12:00:00Z ", datetime.datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T00:30:00+01:00", datetime.datetime(2024, 4, 30, 23, 30, tzinfo=UTC)),
    ],
)
def test_parse_timestamp_lenient(text: str, moment: datetime.datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == moment
    assert parsed is not None
    assert parsed.utcoffset() == datetime.timedelta(0)
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [None, "", "   ", "yesterday", "2024-13-01T00:00:00Z", "2024-05-01T25:00:00Z", "12:00", "0"],
)
def test_parse_timestamp_unreadable_is_none(text: str | None) -> None:
    assert parse_timestamp(text) is None


# -- power from the energy register ------------------------------------------------------------


def test_power_from_energy_is_the_average_between_two_readings() -> None:
    at = parse_timestamp(T1)
    assert at is not None
    later = at + datetime.timedelta(seconds=60)
    # 183.3 Wh in 60 s: 11 kW.
    assert power_from_energy(1183.3, later, 1000.0, at) == pytest.approx(10_998.0)
    assert power_from_energy(1000.0, later, 1000.0, at) == 0.0  # a full EV: 0 W


@pytest.mark.parametrize("seconds", [0, 5, 9.9, 3601, -60])
def test_power_from_energy_needs_a_meaningful_interval(seconds: float) -> None:
    at = parse_timestamp(T1)
    assert at is not None
    later = at + datetime.timedelta(seconds=seconds)
    assert power_from_energy(1100.0, later, 1000.0, at) is None


def test_power_from_energy_needs_both_times_and_a_register_that_did_not_go_back() -> None:
    at = parse_timestamp(T1)
    assert at is not None
    later = at + datetime.timedelta(seconds=60)
    assert power_from_energy(1100.0, None, 1000.0, at) is None
    assert power_from_energy(1100.0, later, 1000.0, None) is None
    assert power_from_energy(1100.0, later, None, at) is None
    assert power_from_energy(900.0, later, 1000.0, at) is None
