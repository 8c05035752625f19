"""What each charger may have in force, and which new limits may go out now. Pure: no I/O,
no clock.

The CSMS cannot see a charger's limit; it sees what it sent and what the charger
answered. A charger applies the profiles it takes in the order they arrive, so for one
session the limit in force is, at any instant, one of:

* the last limit the charger **accepted** (or, before any, the session's *default*: the
  safety net's limit if the charger took it, else the EVSE's maximum);
* a limit sent and not yet answered (**in flight**): the charger may apply it before its
  answer leaves;
* a limit whose answer never came (the call timed out, the connection dropped): the
  charger may have applied it, and may answer late. It stays **uncertain** until the
  charger accepts a later limit, which replaces it on the charger.

A :class:`Limit`'s :meth:`~Limit.bound` is the highest of these: what the site's budget
counts for the session. :func:`admit` lets a new limit out only when it cannot break a
limit at any instant: a decrease always (its old value stays counted until the charger
confirms it), an increase only when every scope it is in still fits with it counted at
the new value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import attrs

from csms.smart.allocator import EvseKey, Scope

#: Rounding slack in watts when comparing a load with a limit.
EPSILON_W = 1e-6


@attrs.define
class Limit:
    """One session's limit, as far as the CSMS can tell what its charger enforces.

    Attributes:
        transaction_id: the session.
        accepted: the last limit (W) the charger accepted for the session, if any.
        accepted_samples: the session's sample count when it was accepted.
        under: the limit in force when the session's latest sample before that acceptance
            was measured (see :meth:`previous`).
        queued: handed to the charger's sender, not yet sent.
        in_flight: sent, its answer awaited.
        uncertain: the highest limit sent whose answer never came, since the last one
            accepted (0: none).
        sent: how many limits went out for the session (which one a late answer is to).
    """

    transaction_id: int
    accepted: float | None = None
    accepted_samples: int = 0
    under: float | None = None
    queued: float | None = None
    in_flight: float | None = None
    uncertain: float = 0.0
    sent: int = 0

    def bound(self, default_w: float) -> float:
        """The most the charger may be enforcing now (``default_w``: the session's limit
        before any accepted one)."""
        held = self.accepted if self.accepted is not None else default_w
        return max(held, self.uncertain, self.in_flight or 0.0, self.queued or 0.0)

    @property
    def settled(self) -> bool:
        """Whether the charger is known to enforce :attr:`accepted` and nothing else is
        on its way."""
        return (self.accepted is not None and self.queued is None and self.in_flight is None
                and self.uncertain <= self.accepted)

    def previous(self, samples: int) -> float | None:
        """The limit the session's latest reading (its ``samples``-th) was taken under:
        just after an increase the reading still shows the old, lower draw, which is no
        sign of tapering."""
        if self.accepted is None:
            return None
        return self.accepted if samples > self.accepted_samples else self.under


@attrs.define
class Ledger:
    """The :class:`Limit` of every open session, by (charger, connector)."""

    limits: dict[EvseKey, Limit] = attrs.Factory(dict)

    def get(self, key: EvseKey, transaction_id: int) -> Limit:
        """The session's limit (a fresh one for a new session on the connector)."""
        limit = self.limits.get(key)
        if limit is None or limit.transaction_id != transaction_id:
            limit = self.limits[key] = Limit(transaction_id)
        return limit

    def find(self, key: EvseKey, transaction_id: int) -> Limit | None:
        """The session's limit, if the ledger holds one."""
        limit = self.limits.get(key)
        return limit if limit is not None and limit.transaction_id == transaction_id else None

    def forget_ended(self, open_sessions: Mapping[EvseKey, int]) -> None:
        """Drop the limits of sessions no longer open."""
        for key in [k for k, v in self.limits.items() if open_sessions.get(k) != v.transaction_id]:
            del self.limits[key]

    def queue(self, key: EvseKey, transaction_id: int, watts: float) -> None:
        """A limit handed to the sender (it replaces one queued before and not sent)."""
        self.get(key, transaction_id).queued = watts

    def unqueue(self, key: EvseKey, transaction_id: int) -> None:
        """The queued limit will not be sent (the session ended, the connection closed)."""
        limit = self.find(key, transaction_id)
        if limit is not None:
            limit.queued = None

    def sending(self, key: EvseKey, transaction_id: int, watts: float) -> None:
        """A limit goes out now."""
        limit = self.get(key, transaction_id)
        limit.queued = None
        limit.in_flight = watts
        limit.sent += 1

    def accepted(self, key: EvseKey, transaction_id: int, watts: float, samples: int,
                 *, settles: bool = True) -> None:
        """The charger accepted ``watts``: it is in force. The same limit again changes
        nothing it enforces: readings taken under it still count. If it ``settles`` (the
        answer to the last limit sent), it replaces every limit sent before it."""
        limit = self.get(key, transaction_id)
        if limit.accepted is None or not math.isclose(limit.accepted, watts,
                                                      abs_tol=EPSILON_W):
            under = limit.previous(samples)
            limit.accepted, limit.accepted_samples, limit.under = watts, samples, under
        if settles:
            limit.in_flight = None
            limit.uncertain = 0.0

    def accepted_late(self, key: EvseKey, transaction_id: int, watts: float,
                      samples: int, sent: int) -> bool:
        """The charger accepted ``watts``, the ``sent``-th limit sent for the session,
        after its call was given up. If nothing went out since, it replaces every limit
        sent before it, as an answer in time does; else it is in force until those sent
        since are applied, and they stay counted as they were. Whether it was the last."""
        limit = self.find(key, transaction_id)
        if limit is None:
            return False
        last = limit.sent == sent and limit.in_flight is None and limit.queued is None
        self.accepted(key, transaction_id, watts, samples, settles=last)
        return last

    def unknown(self, key: EvseKey, transaction_id: int, up_to_w: float) -> None:
        """Someone else changed the charger's profiles: it may enforce anything up to
        ``up_to_w`` until it accepts a limit of ours again."""
        limit = self.get(key, transaction_id)
        limit.uncertain = max(limit.uncertain, up_to_w, limit.accepted or 0.0)
        limit.accepted = None

    def refused(self, key: EvseKey, transaction_id: int) -> None:
        """The charger refused the limit in flight: what was in force stays."""
        limit = self.find(key, transaction_id)
        if limit is not None:
            limit.in_flight = None

    def unanswered(self, key: EvseKey, transaction_id: int) -> None:
        """No answer to the limit in flight (timeout, connection lost): the charger may
        have applied it, and may still answer."""
        limit = self.find(key, transaction_id)
        if limit is not None and limit.in_flight is not None:
            limit.uncertain = max(limit.uncertain, limit.in_flight)
            limit.in_flight = None


def admit(
    changes: Mapping[EvseKey, float],
    bounds: Mapping[EvseKey, float],
    scopes: Iterable[Scope],
) -> tuple[dict[EvseKey, float], dict[EvseKey, float]]:
    """Split new limits into those that may go out now and those held back.

    Every decrease goes out: its old value stays in ``bounds`` until the charger confirms
    it. An increase goes out when, counting every EVSE at its bound and the increases let
    out before it at their new value, each scope holding it stays within its limit.
    Smaller increases go first (more of them fit); ties in key order.

    Args:
        changes: the new limit (W) of each EVSE whose limit changes.
        bounds: the most each EVSE may be enforcing now (every EVSE of every scope).
        scopes: the site's and the groups' limits (W), and the current limits per phase
            (A), with their EVSEs' weights (:data:`~csms.smart.allocator.Scope`).

    Returns:
        (now, held).
    """
    scope_list: Sequence[Scope] = list(scopes)
    # fsum is exact, so the loads do not depend on the order of a set (string hashing).
    loads = [math.fsum(bounds.get(k, 0.0) * w for k, w in members.items())
             for _, members in scope_list]
    now: dict[EvseKey, float] = {}
    held: dict[EvseKey, float] = {}
    increases = []
    for key, watts in changes.items():
        bound = bounds.get(key, 0.0)
        if watts <= bound:
            now[key] = watts
        else:
            increases.append((watts - bound, key, watts))
    for step, key, watts in sorted(increases):
        touched = [(i, w) for i, (_, members) in enumerate(scope_list)
                   if (w := members.get(key, 0.0)) > 0]
        if all(loads[i] + step * w <= scope_list[i][0] + EPSILON_W * w for i, w in touched):
            for i, w in touched:
                loads[i] += step * w
            now[key] = watts
        else:
            held[key] = watts
    return now, held
