"""Whether a charger keeps to the limit it accepted, judged from its meter readings. Pure:
no I/O, no clock.

A charger that accepted a profile and then draws clearly more (it ignores profiles,
applies them late, or overshoots) is *overdrawing*; doing so in two readings in a row
makes its session *non-compliant*: smart charging then counts it at what it draws, not at
its limit. The comparison is in the profile's unit: per-phase current against a limit in
A (power over the profile's phases when the meter reports no current), power against a
limit in W.
"""

from __future__ import annotations

from ocppj.charging import watts_to_amps

#: An EV may draw this much above its limit before it counts as overdrawing: meters and
#: chargers are not exact, and a limit in A allows more watts at a voltage above nominal.
OVERDRAW_FACTOR = 1.1
OVERDRAW_MARGIN_A = 1.0
OVERDRAW_MARGIN_W = 700.0
#: A charger takes up to this long to apply a profile it accepted: readings taken earlier
#: say nothing about whether it keeps to it.
APPLY_GRACE_S = 60.0
#: Readings in a row above the limit that make a session non-compliant.
NON_COMPLIANT_READINGS = 2


def measured_in_unit(
    unit: str,
    power_w: float | None,
    current_a: tuple[tuple[str, float], ...] | None,
    phases: int | None,
) -> float | None:
    """What the EV draws, in ``unit``: the highest phase current for A, else power."""
    if unit == "A":
        currents = [value for phase, value in current_a or () if phase != "N"]
        if currents:
            return max(currents)
        if power_w is not None:
            return watts_to_amps(power_w, phases or 3)
        return None
    return power_w


def overdraws(limit: float, unit: str, measured: float) -> bool:
    """Whether ``measured`` is clearly above ``limit`` (both in ``unit``)."""
    margin = OVERDRAW_MARGIN_A if unit == "A" else OVERDRAW_MARGIN_W
    return measured > limit * OVERDRAW_FACTOR + margin
