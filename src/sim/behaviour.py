"""How a simulated charger departs from the ideal: one small object per behaviour. Pure.

A charge point consults its behaviours at a few decision points, and nowhere else:

* **answer**: how long to wait before answering a CALL from the CSMS (``math.inf``: never);
* **apply a limit**: which limit the charger really enforces, given the one its charging
  profiles ask for;
* **meter**: which sampled values a MeterValues carries.

:class:`Behaviour` is the ideal charger: every decision point returns what it was given.
A new misbehaviour is one subclass that overrides the decision points it changes, and
:class:`Behaviours` chains several, in order, each seeing what the one before decided.
Time enters as an argument (``now``), never read here.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable
from typing import Any

import attrs


class Behaviour:
    """The ideal charger: answers at once, obeys every limit, meters everything."""

    def answer_delay(self, action: str) -> float:
        """Seconds to wait before answering the CSMS's ``action`` CALL; ``math.inf``: never."""
        return 0.0

    def limit_in_force(
        self, connector_id: int, limit_w: float | None, now: datetime.datetime
    ) -> float | None:
        """The limit the charger enforces on ``connector_id`` when its profiles ask for
        ``limit_w`` (None: no limit)."""
        return limit_w

    def sampled_values(
        self, connector_id: int, sampled: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """The sampled values a MeterValues of ``connector_id`` carries."""
        return sampled


@attrs.frozen
class IgnoreProfiles(Behaviour):
    """Accepts charging profiles and enforces none: the EV draws what it wants."""

    def limit_in_force(
        self, connector_id: int, limit_w: float | None, now: datetime.datetime
    ) -> float | None:
        return None


@attrs.frozen
class ObeyFraction(Behaviour):
    """Enforces ``limit x factor``: a charger whose control loop is off.

    ``factor`` above 1 overshoots (draws more than allowed), below 1 undershoots.
    """

    factor: float = 1.0

    def limit_in_force(
        self, connector_id: int, limit_w: float | None, now: datetime.datetime
    ) -> float | None:
        return None if limit_w is None else limit_w * self.factor


@attrs.define
class ObeyAfter(Behaviour):
    """Enforces a new limit only ``delay`` seconds after it was asked for (a slow control
    loop), the one before until then. It acts at the charger's next look at its limits
    after that (its next meter tick at the latest).

    The one behaviour with memory: per connector, the limit enforced and the one asked
    for since when. Time still enters as ``now``.
    """

    delay: float
    _enforced: dict[int, float | None] = attrs.field(factory=dict, init=False, eq=False,
                                                     repr=False)
    _asked: dict[int, tuple[float | None, datetime.datetime]] = attrs.field(
        factory=dict, init=False, eq=False, repr=False)

    def limit_in_force(
        self, connector_id: int, limit_w: float | None, now: datetime.datetime
    ) -> float | None:
        if connector_id not in self._enforced:
            self._enforced[connector_id] = limit_w
        asked = self._asked.get(connector_id)
        if asked is None or asked[0] != limit_w:
            asked = self._asked[connector_id] = (limit_w, now)
        if (now - asked[1]).total_seconds() >= self.delay:
            self._enforced[connector_id] = limit_w
        return self._enforced[connector_id]


@attrs.frozen
class MeteredOnly(Behaviour):
    """A meter that measures only ``measurands``: energy-only meters are common, and a
    CSMS that needs power must derive it from the register.

    Attributes:
        measurands: what its MeterValues can carry (e.g. only
            ``Energy.Active.Import.Register``).
    """

    measurands: frozenset[str]

    def sampled_values(
        self, connector_id: int, sampled: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        return [s for s in sampled if s.get("measurand") in self.measurands]


@attrs.frozen
class SlowAnswers(Behaviour):
    """Answers the CSMS's CALLs after ``delay`` seconds (``math.inf``: never).

    Attributes:
        delay: seconds before each answer.
        actions: the actions it is slow to answer; empty: all.
    """

    delay: float
    actions: frozenset[str] = frozenset()

    def answer_delay(self, action: str) -> float:
        if self.actions and action not in self.actions:
            return 0.0
        return self.delay


@attrs.frozen
class OnEvses(Behaviour):
    """``inner`` on the EVSEs numbered ``connectors`` only; the others are ideal. (How
    long answers take is the charger's, not an EVSE's: that decision is ``inner``'s.)"""

    inner: Behaviour
    connectors: frozenset[int]

    def answer_delay(self, action: str) -> float:
        return self.inner.answer_delay(action)

    def limit_in_force(
        self, connector_id: int, limit_w: float | None, now: datetime.datetime
    ) -> float | None:
        if connector_id not in self.connectors:
            return limit_w
        return self.inner.limit_in_force(connector_id, limit_w, now)

    def sampled_values(
        self, connector_id: int, sampled: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        if connector_id not in self.connectors:
            return sampled
        return self.inner.sampled_values(connector_id, sampled)


@attrs.frozen
class Behaviours(Behaviour):
    """Several behaviours, consulted in order; each decision point folds through them."""

    chain: tuple[Behaviour, ...] = ()

    @classmethod
    def of(cls, behaviours: Iterable[Behaviour]) -> Behaviours:
        """The chain of ``behaviours``."""
        return cls(tuple(behaviours))

    def answer_delay(self, action: str) -> float:
        return max((b.answer_delay(action) for b in self.chain), default=0.0)

    def limit_in_force(
        self, connector_id: int, limit_w: float | None, now: datetime.datetime
    ) -> float | None:
        for behaviour in self.chain:
            limit_w = behaviour.limit_in_force(connector_id, limit_w, now)
        return limit_w

    def sampled_values(
        self, connector_id: int, sampled: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        for behaviour in self.chain:
            sampled = behaviour.sampled_values(connector_id, sampled)
        return sampled


#: The ideal charger.
IDEAL = Behaviour()


class BehaviourError(ValueError):
    """A behaviour description that names no behaviour, or gives it a bad knob."""


#: The behaviours by the name config.yaml and ``python -m sim inject`` use, with the
#: settings each takes.
KNOBS: dict[str, frozenset[str]] = {
    "ignore-profiles": frozenset(),
    "obey-fraction": frozenset({"factor"}),
    "obey-after": frozenset({"delay"}),
    "slow-answers": frozenset({"delay", "actions"}),
    "metered-only": frozenset({"measurands"}),
}
KINDS = tuple(KNOBS)


def kind_of(spec: Any, knobs: dict[str, frozenset[str]], noun: str,
            common: frozenset[str] = frozenset()) -> str:
    """The kind a description (``{"kind": ..., settings}``) names, once it is a mapping of
    a known kind with only the settings ``knobs`` gives that kind, or ``common`` all.

    Raises:
        BehaviourError: what is wrong, naming the ``noun`` ("behaviour", "incident").
    """
    article = "an" if noun[0] in "aeiou" else "a"
    if not isinstance(spec, dict):
        raise BehaviourError(f"{article} {noun} is a mapping with a kind, got {spec!r}")
    kind = spec.get("kind")
    if kind not in knobs:
        raise BehaviourError(f"unknown {noun} {kind!r} (known: {', '.join(knobs)})")
    unknown = set(spec) - knobs[kind] - common - {"kind"}
    if unknown:
        raise BehaviourError(f"{kind}: unknown setting(s) {', '.join(sorted(unknown))}")
    return str(kind)


def number(spec: dict[str, Any], key: str, *, positive: bool = False, never: bool = False,
           unit: str = "a number") -> float:
    """Setting ``key`` of a description: a finite number >= 0 (> 0 if ``positive``; or
    ``"never"``, infinity, if ``never``).

    Raises:
        BehaviourError: naming the kind, the setting and what it must be.
    """
    value = spec.get(key)
    if never and value in ("never", "inf", math.inf):
        return math.inf
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
        (value > 0 if positive else value >= 0) and value < math.inf
    ):
        allowed = " or 'never'" if never else ""
        bound = "> 0" if positive else ">= 0"
        raise BehaviourError(f"{spec.get('kind')}: {key} must be {unit} {bound}{allowed}, "
                             f"got {value!r}")
    return float(value)


def _names(spec: dict[str, Any], key: str, *, required: bool) -> frozenset[str]:
    value = spec.get(key, [])
    if isinstance(value, str):
        value = [item.strip() for item in value.split(",") if item.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or (
        required and not value
    ):
        raise BehaviourError(f"{spec.get('kind')}: {key} must be a list of names, "
                             f"got {value!r}")
    return frozenset(value)


def behaviour_from_spec(spec: Any) -> Behaviour:
    """The behaviour a description names, as config.yaml and the control socket give it:
    ``{"kind": "ignore-profiles"}``, ``{"kind": "obey-fraction", "factor": 1.5}``,
    ``{"kind": "obey-after", "delay": 120}``,
    ``{"kind": "slow-answers", "delay": 45, "actions": ["SetChargingProfile"]}`` (delay
    ``"never"``: no answer), ``{"kind": "metered-only", "measurands": [...]}``; any but
    slow-answers takes ``"evses": [2]`` to misbehave on those EVSEs only.

    Raises:
        BehaviourError: what is wrong with it.
    """
    kind = kind_of(spec, KNOBS, "behaviour", frozenset({"evses"}))
    behaviour = _behaviour(kind, spec)
    if "evses" not in spec:
        return behaviour
    evses = spec["evses"]
    if kind == "slow-answers":
        raise BehaviourError("slow-answers: answers are the charger's, not an EVSE's "
                             "(no evses)")
    if isinstance(evses, int) and not isinstance(evses, bool):
        evses = [evses]
    if not isinstance(evses, list) or not evses or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in evses
    ):
        raise BehaviourError(f"{kind}: evses must be EVSE numbers (1, 2, ...), got {evses!r}")
    return OnEvses(behaviour, frozenset(evses))


def _behaviour(kind: str, spec: dict[str, Any]) -> Behaviour:
    if kind == "ignore-profiles":
        return IgnoreProfiles()
    if kind == "obey-fraction":
        return ObeyFraction(number(spec, "factor"))
    if kind == "obey-after":
        return ObeyAfter(number(spec, "delay"))
    if kind == "slow-answers":
        return SlowAnswers(number(spec, "delay", never=True),
                           _names(spec, "actions", required=False))
    return MeteredOnly(_names(spec, "measurands", required=True))


def combined(behaviours: Iterable[Behaviour]) -> Behaviour:
    """One behaviour doing what all of ``behaviours`` do (the ideal one if none)."""
    chain = [b for b in behaviours if b is not IDEAL]
    if not chain:
        return IDEAL
    return chain[0] if len(chain) == 1 else Behaviours.of(chain)

__all__ = [
    "IDEAL",
    "KINDS",
    "Behaviour",
    "BehaviourError",
    "Behaviours",
    "IgnoreProfiles",
    "MeteredOnly",
    "ObeyAfter",
    "ObeyFraction",
    "OnEvses",
    "SlowAnswers",
    "behaviour_from_spec",
    "combined",
]
