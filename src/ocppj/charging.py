"""OCPP 1.6 smart-charging arithmetic, shared by the CSMS and the simulator. Pure.

Both sides convert a charging-rate limit between amperes per phase and watts with the same
nominal voltage, and both write chargingSchedulePeriod limits at the same resolution: if
each kept its own copy, a profile the CSMS builds could mean a different power on the
simulated charger that applies it.
"""

from __future__ import annotations

import math
import re

__all__ = [
    "MIN_CURRENT_A",
    "NOMINAL_VOLTAGE_V",
    "amps_to_watts",
    "csl_items",
    "min_power_w",
    "parse_units",
    "round_down_tenth",
    "watts_to_amps",
]

#: Phase-to-neutral voltage both sides convert amperes and watts with.
NOMINAL_VOLTAGE_V = 230.0

#: The least current per phase at which an AC EV charges (IEC 61851): a limit below it
#: pauses the EV rather than slowing it.
MIN_CURRENT_A = 6.0

#: Float noise forgiven when rounding down, in tenths (1e-7 of the limit's unit).
#: Arithmetic that means an exact tenth can land a few ulps below it (``0.7 - 0.4`` is
#: 0.29999999999999993), and rounding that down would take a whole 0.1 off. The noise
#: grows with the value: 800001.6 W to amps on three phases and back is 800001.5999999999,
#: ~2e-9 tenths low, which the CSMS's former 1e-9 did not forgive; 1e-6 still covers such
#: a round trip at 100 MW. What it can round *up* (at most 1e-7 A per phase: under 1e-4 W
#: on three phases) is far below anything a meter or an EV resolves.
_NOISE_TENTHS = 1e-6


def amps_to_watts(amps: float, phases: int, voltage: float = NOMINAL_VOLTAGE_V) -> float:
    """The power of ``amps`` on each of ``phases`` phases.

    Args:
        amps: current per phase, in A.
        phases: the number of phases carrying it.
        voltage: phase-to-neutral voltage.
    """
    return amps * phases * voltage


def watts_to_amps(watts: float, phases: int, voltage: float = NOMINAL_VOLTAGE_V) -> float:
    """The current per phase that carries ``watts`` over ``phases`` phases.

    Args:
        watts: the power, in W.
        phases: the number of phases sharing it; at least 1.
        voltage: phase-to-neutral voltage.

    Raises:
        ZeroDivisionError: ``phases`` or ``voltage`` is zero.
    """
    return watts / (phases * voltage)


def min_power_w(phases: int, voltage: float = NOMINAL_VOLTAGE_V) -> float:
    """The least power an AC EV charges at on ``phases`` phases (:data:`MIN_CURRENT_A` each)."""
    return amps_to_watts(MIN_CURRENT_A, phases, voltage)


def round_down_tenth(value: float) -> float:
    """``value`` rounded down to 0.1, the resolution of a chargingSchedulePeriod limit.

    Down, so that a limit never allows more than was meant; forgiving float noise, so that
    a value that means an exact tenth (13.799999999 for 13.8) keeps it. A negative value
    gives 0.0: no limit is below zero. The result is the float nearest a whole number of
    tenths, so it serialises with at most one decimal (13.8, not 13.799999999999999).

    Args:
        value: a finite number, in the limit's unit (A per phase or W).

    Raises:
        ValueError: ``value`` is NaN or infinite.
    """
    if not math.isfinite(value):
        raise ValueError(f"cannot round {value} to a limit")
    tenths = math.floor(max(value, 0.0) * 10 + _NOISE_TENTHS)
    # An int divided by 10 is correctly rounded: the float nearest tenths/10, whose repr
    # is the one-decimal string (no round(..., 1) needed).
    return tenths / 10


def csl_items(value: str) -> list[str]:
    """The items of a comma-separated configuration value (CSL), as chargers write them:
    commas, but also semicolons or spaces between items; empty items dropped."""
    return [item for item in re.split(r"[,;\s]+", value) if item]


_UNITS = {"current": "A", "a": "A", "amps": "A", "power": "W", "w": "W", "watts": "W"}


def parse_units(value: str | None) -> frozenset[str] | None:
    """The rate units (``A``, ``W``) a ChargingScheduleAllowedChargingRateUnit value
    allows; None when absent or when no part of it names a unit.

    The specification's values are ``Current`` and ``Power``, comma-separated; chargers in
    the field also send ``W``, other separators and other cases: what clearly names a unit
    is taken.
    """
    if value is None:
        return None
    units = {_UNITS[part] for part in csl_items(value.lower()) if part in _UNITS}
    return frozenset(units) or None
