"""Sampled values: parsing, units, and the session metrics they give. Pure.

OCPP 1.6 defaults: a sampled value without ``measurand`` is
``Energy.Active.Import.Register``; without ``unit`` it is ``Wh`` for energy (and the
measurand's base unit otherwise); values are strings and may carry decimals.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable, Mapping
from typing import Any

from attrs import frozen

from ocppj.timestamps import parse_timestamp

DEFAULT_MEASURAND = "Energy.Active.Import.Register"
ENERGY_REGISTER = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
CURRENT = "Current.Import"
SOC = "SoC"

#: Multipliers to this project's base units: Wh, varh, W, var, VA, A, V, Percent.
_SCALE: Mapping[str, float] = {
    "Wh": 1.0,
    "kWh": 1000.0,
    "varh": 1.0,
    "kvarh": 1000.0,
    "W": 1.0,
    "kW": 1000.0,
    "var": 1.0,
    "kvar": 1000.0,
    "VA": 1.0,
    "kVA": 1000.0,
    "A": 1.0,
    "V": 1.0,
    "Percent": 1.0,
}

_DEFAULT_UNIT_BY_PREFIX = (
    ("Energy.Reactive", "varh"),
    ("Energy", "Wh"),
    ("Power.Reactive", "var"),
    ("Power.Factor", ""),
    ("Power", "W"),
    ("Current", "A"),
    ("Voltage", "V"),
    ("SoC", "Percent"),
    ("Temperature", "Celsius"),
    ("Frequency", "Hertz"),
)


def default_unit(measurand: str) -> str:
    """The unit a sampled value of ``measurand`` has when it names none."""
    for prefix, unit in _DEFAULT_UNIT_BY_PREFIX:
        if measurand.startswith(prefix):
            return unit
    return ""


@frozen
class Sample:
    """One sampled value, as received, with its number in base units when it has one.

    Attributes:
        timestamp: the meterValue's timestamp, as sent.
        value: the value string, as sent.
        measurand, unit: after OCPP defaults.
        phase, context, location, format: as sent (None when absent).
        number: ``value`` in base units (kWh → Wh, kW → W), None when not a plain number
            (signed data, garbage).
    """

    timestamp: str
    value: str
    measurand: str
    unit: str
    phase: str | None
    context: str | None
    location: str | None
    format: str | None
    number: float | None


def _number(value: str, unit: str, fmt: str | None) -> float | None:
    if fmt == "SignedData":
        return None
    try:
        # float() rounds a decimal string correctly, as float(Decimal(...)) would.
        number = float(value)
    except (ValueError, TypeError):
        return None
    if not math.isfinite(number):
        return None
    return number * _SCALE.get(unit, 1.0)


def samples_from(meter_values: Iterable[Mapping[str, Any]]) -> tuple[Sample, ...]:
    """Flatten the wire ``meterValue`` list (camelCase dicts) into samples."""
    # Every MeterValues a charger sends comes here: positional arguments and one bound
    # ``get`` per sampledValue (16.8 -> 8 us for six samples).
    samples = []
    for meter_value in meter_values:
        timestamp = str(meter_value.get("timestamp", ""))
        for sampled in meter_value.get("sampledValue", ()):
            get = sampled.get
            measurand = get("measurand") or DEFAULT_MEASURAND
            unit = get("unit") or default_unit(measurand)
            fmt = get("format")
            value = str(get("value", ""))
            # Sample's fields, in order: timestamp, value, measurand, unit, phase,
            # context, location, format, number.
            samples.append(Sample(timestamp, value, measurand, unit, get("phase"),
                                  get("context"), get("location"), fmt,
                                  _number(value, unit, fmt)))
    return tuple(samples)


@frozen
class Reading:
    """What one meterValue timestamp says about a session, in base units (None = not said).

    Attributes:
        register_wh: Energy.Active.Import.Register.
        power_w: Power.Active.Import, per-phase values summed when no total is given.
        current_a: Current.Import per phase (``""`` for a value without phase).
        soc: state of charge, percent.
    """

    register_wh: float | None = None
    power_w: float | None = None
    current_a: tuple[tuple[str, float], ...] | None = None
    soc: float | None = None
    #: The meterValue's timestamp (None: unreadable).
    at: datetime.datetime | None = None


#: A draw at or below this (W) is none: the EV is full, or waits.
IDLE_W = 100.0

#: A phase carrying less current than this (A) carries none.
PHASE_DRAW_A = 1.0


def phases_drawn(current_a: tuple[tuple[str, float], ...] | None) -> tuple[int, ...] | None:
    """The phases (1 to 3) an EV draws current on, from one reading's Current.Import per
    phase: those carrying at least 1 A, when the charger reported two phases or more and
    one of them carries current (None: unknown; a meter reporting one phase says nothing
    of the others)."""
    if not current_a:
        return None
    by_phase: dict[int, float] = {}
    for phase, amps in current_a:
        if len(phase) >= 2 and phase[0] == "L" and phase[1] in "123":  # L1, L1-N, ...
            n = int(phase[1])
            by_phase[n] = max(by_phase.get(n, 0.0), amps)
    drawn = tuple(sorted(n for n, amps in by_phase.items() if amps >= PHASE_DRAW_A))
    return drawn if len(by_phase) >= 2 and drawn else None

#: Register readings closer than this give no power: a Wh register over a few seconds
#: is mostly rounding.
POWER_FROM_ENERGY_MIN_S = 10.0
#: Nor readings further apart than this: an average over hours says little about now.
POWER_FROM_ENERGY_MAX_S = 3600.0


def power_from_energy(
    register_wh: float, at: datetime.datetime | None,
    before_wh: float | None, before_at: datetime.datetime | None,
) -> float | None:
    """The average power (W) between two readings of the energy register, for a charger
    that reports no power measurand; None when the interval says too little."""
    if at is None or before_at is None or before_wh is None or register_wh < before_wh:
        return None
    seconds = (at - before_at).total_seconds()
    if not POWER_FROM_ENERGY_MIN_S <= seconds <= POWER_FROM_ENERGY_MAX_S:
        return None
    return (register_wh - before_wh) * 3600.0 / seconds


def _total(values: list[tuple[str | None, float]]) -> float | None:
    if not values:
        return None
    totals = [v for phase, v in values if phase is None]
    if totals:
        return totals[-1]
    # Phase-to-neutral and plain phase values add up; N (neutral) is not a load.
    return sum(v for phase, v in values if phase != "N")


def readings(samples: Iterable[Sample]) -> list[Reading]:
    """One reading per distinct timestamp, in the order the timestamps first appear."""
    groups: dict[str, list[Sample]] = {}
    for sample in samples:
        if sample.location not in (None, "Outlet", "Cable", "EV") or sample.number is None:
            continue
        groups.setdefault(sample.timestamp, []).append(sample)
    result = []
    for timestamp, group in groups.items():
        energy = [(s.phase, s.number) for s in group if s.measurand == ENERGY_REGISTER]
        power = [(s.phase, s.number) for s in group if s.measurand == POWER]
        current = [(s.phase or "", s.number) for s in group if s.measurand == CURRENT]
        soc = [s.number for s in group if s.measurand == SOC]
        result.append(
            Reading(
                register_wh=_total([(p, n) for p, n in energy if n is not None]),
                power_w=_total([(p, n) for p, n in power if n is not None]),
                current_a=tuple((p, n) for p, n in current if n is not None) or None,
                soc=soc[-1] if soc else None,
                at=parse_timestamp(timestamp),
            )
        )
    return result
