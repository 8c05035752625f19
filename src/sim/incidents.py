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

import math
from typing import Any

import attrs

from sim.behaviour import BehaviourError

KINDS = ("offline", "reboot")


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


def _seconds(spec: dict[str, Any], key: str, *, positive: bool) -> float:
    value = spec.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
        (value > 0 if positive else value >= 0) and value < math.inf
    ):
        bound = "> 0" if positive else ">= 0"
        raise BehaviourError(f"{spec.get('kind')}: {key} must be seconds {bound}, "
                             f"got {value!r}")
    return float(value)


def incident_from_spec(spec: Any) -> Incident:
    """The incident a description names (see the module docstring).

    Raises:
        BehaviourError: what is wrong with it.
    """
    if not isinstance(spec, dict):
        raise BehaviourError(f"an incident is a mapping with a kind, got {spec!r}")
    kind = spec.get("kind")
    knobs = {"offline": {"for", "stall"}, "reboot": {"lose_transactions"}}
    if kind not in knobs:
        raise BehaviourError(f"unknown incident {kind!r} (known: {', '.join(KINDS)})")
    unknown = set(spec) - knobs[kind] - {"kind", "at", "every"}
    if unknown:
        raise BehaviourError(f"{kind}: unknown setting(s) {', '.join(sorted(unknown))}")
    every = _seconds(spec, "every", positive=True) if "every" in spec else None
    for flag in ("stall", "lose_transactions"):
        if not isinstance(spec.get(flag, False), bool):
            raise BehaviourError(f"{kind}: {flag} must be true or false")
    if kind == "offline":
        return Incident("offline", _seconds(spec, "at", positive=False), every,
                        for_s=_seconds(spec, "for", positive=True),
                        stall=spec.get("stall", False))
    return Incident("reboot", _seconds(spec, "at", positive=False), every,
                    lose_transactions=spec.get("lose_transactions", False))
