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

__all__ = [
    "IDEAL",
    "Behaviour",
    "Behaviours",
    "IgnoreProfiles",
    "MeteredOnly",
    "ObeyFraction",
    "SlowAnswers",
]
