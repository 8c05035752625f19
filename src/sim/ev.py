"""The EV and its battery, and how much power an EVSE delivers. Pure.

The power drawn is the least of the EV's acceptance at its state of charge (its maximum,
tapering linearly to zero between ``taper_from_soc`` and 100 %), the EVSE's maximum and
the charging-profile limit in force. Energy integrates power over the simulation clock.
"""

from __future__ import annotations

from attrs import evolve, frozen

from ocppj.charging import NOMINAL_VOLTAGE_V, watts_to_amps


@frozen
class Ev:
    """An EV: battery ``capacity_wh``, state of charge ``soc`` (0-100), ``max_power_w``,
    and the ``phases`` its on-board charger uses (a single-phase EV on a three-phase
    charger draws current on L1 only)."""

    capacity_wh: float
    soc: float
    max_power_w: float
    taper_from_soc: float = 80.0
    phases: int = 3

    def acceptance_w(self) -> float:
        """The most power the EV takes now."""
        if self.soc >= 100.0:
            return 0.0
        if self.soc <= self.taper_from_soc:
            return self.max_power_w
        remaining = (100.0 - self.soc) / (100.0 - self.taper_from_soc)
        # Never taper below a trickle the charger can deliver, until full.
        return max(self.max_power_w * remaining, min(self.max_power_w, 1000.0))

    @property
    def full(self) -> bool:
        """Whether the battery is full."""
        return self.soc >= 100.0

    def charged(self, energy_wh: float) -> Ev:
        """The EV after taking ``energy_wh``."""
        soc = min(100.0, self.soc + 100.0 * energy_wh / self.capacity_wh)
        return evolve(self, soc=soc)


def power_drawn(ev: Ev, evse_max_w: float, limit_w: float | None) -> float:
    """The power an EV draws: least of its acceptance, the EVSE maximum and the limit."""
    power = min(ev.acceptance_w(), evse_max_w)
    if limit_w is not None:
        power = min(power, max(limit_w, 0.0))
    return max(power, 0.0)


def step(ev: Ev, power_w: float, seconds: float) -> tuple[Ev, float]:
    """Charge ``ev`` at ``power_w`` for ``seconds``; returns the EV and the energy in Wh.

    The energy is capped by what the battery can still take.
    """
    room_wh = ev.capacity_wh * (100.0 - ev.soc) / 100.0
    energy = min(power_w * seconds / 3600.0, max(room_wh, 0.0))
    return ev.charged(energy), energy


def current_per_phase(power_w: float, phases: int, voltage: float = NOMINAL_VOLTAGE_V) -> float:
    """The current per phase for ``power_w`` on ``phases`` phases (0.0 on none)."""
    return watts_to_amps(power_w, phases, voltage) if phases else 0.0
