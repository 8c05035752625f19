"""Incidents: what happens to a charger at a given moment rather than how it behaves all
along (sim.behaviour): its network fails, it reboots. A scenario calls them
(``cp.go_offline``, ``cp.reboot``), ``python -m sim inject`` triggers them while a fleet
runs, and a config.yaml template schedules them for every charger made from it:

    incidents: [{kind: offline, at: 7200, for: 600}, {kind: reboot, at: 10800,
                 lose_transactions: true}]

``at`` is seconds after the charger started; ``every`` (optional) repeats it. Pure: the
charger runs them (SimChargePoint.run_incidents).
"""

from __future__ import annotations

from typing import Any

import attrs

from sim.behaviour import BehaviourError, kind_of, number

#: The incidents by name, with the settings each takes (``at`` and ``every`` all do).
KNOBS: dict[str, frozenset[str]] = {
    "offline": frozenset({"for", "stall"}),
    "reboot": frozenset({"lose_transactions"}),
}
KINDS = tuple(KNOBS)


@attrs.frozen
class Incident:
    """One scheduled incident.

    Attributes:
        kind: ``offline`` or ``reboot``.
        at_s: seconds after the charger started.
        every_s: repeat this often (None: once).
        for_s: offline: how long the network is down.
        stall: offline: TCP stays open, nothing read or written.
        lose_transactions: reboot: the charger forgets its open transactions.
    """

    kind: str
    at_s: float
    every_s: float | None = None
    for_s: float = 0.0
    stall: bool = False
    lose_transactions: bool = False


def incident_from_spec(spec: Any) -> Incident:
    """The incident a description names (see the module docstring).

    Raises:
        BehaviourError: what is wrong with it.
    """
    kind = kind_of(spec, KNOBS, "incident", frozenset({"at", "every"}))
    every = number(spec, "every", positive=True, unit="seconds") if "every" in spec else None
    for flag in ("stall", "lose_transactions"):
        if not isinstance(spec.get(flag, False), bool):
            raise BehaviourError(f"{kind}: {flag} must be true or false")
    at = number(spec, "at", unit="seconds")
    if kind == "offline":
        return Incident("offline", at, every,
                        for_s=number(spec, "for", positive=True, unit="seconds"),
                        stall=spec.get("stall", False))
    return Incident("reboot", at, every, lose_transactions=spec.get("lose_transactions", False))
