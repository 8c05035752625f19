"""The allocator: one power limit per EVSE from the open sessions and the site's limits.
Pure: no I/O, no clock.

Rules:

* Uncontrolled EVSEs (a charger that refused or did not answer our profile, or is
  offline) are fixed load at the most their charger may be enforcing (their maximum
  unless told otherwise): it comes off the site's and their group's budget first.
* Each EVSE's cap is its maximum; an EV measured drawing clearly less than it was given
  is capped at what it draws plus a guard band, so the rest goes to others while it can
  still ramp up by the guard band each tick.
* AC sessions never get a limit between 0 and the 6 A minimum (``min_w``): when the
  budget cannot give every session its minimum, sessions are admitted in a priority
  order that rotates with the tick, and the others get 0 (paused). Within one rotation
  interval (given the ``previous`` allocation) the sessions running stay running and
  those paused stay paused, whatever starts or stops, as far as the budget allows; a
  session that started meanwhile comes last. An EVSE rated below the minimum always
  gets 0.
* Admitted sessions first get their minimum; what remains is shared by water-filling in
  watts (max-min fair): equal demands get equal shares, and capacity an EVSE cannot use
  goes to the others. Groups are water-filled first, so no group exceeds its limit; then
  the site.
* Limits per phase (A) are weighted scopes: each EVSE's watts count, on each grid phase
  its EV draws from, at the current they make there (``Scope``). With any, the shares are
  filled progressively under every limit at once (the same max-min fair result).
* The result depends on the set of demands, not on their order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from attrs import frozen

#: (charger id, connector id)
EvseKey = tuple[str, int]

#: A limit and what one W of each EVSE's limit counts as against it: 1 for a limit in W;
#: for a current limit on one grid phase, the A per W it draws there (none: not there).
Scope = tuple[float, Mapping[EvseKey, float]]


@frozen
class Demand:
    """One EVSE with an open session.

    Attributes:
        key: (charger id, connector id).
        max_w: the most the EVSE may be given.
        min_w: the least a running EV accepts (6 A x phases x 230 V for AC; 0 for none).
        arrival: seconds since an epoch (only its order matters): earlier arrivals come
            first in the admission order at tick 0.
        group: the group (feeder) the charger is in, if any.
        measured_w: the draw last reported in MeterValues, if known.
        previous_w: the limit in force when ``measured_w`` was measured, if any.
        controlled: False when the CSMS cannot change the EVSE's limit now (its charger
            refused or did not answer our profile, or is offline).
        fixed_w: what an EVSE that is not controlled counts as (None: ``max_w``): the
            most its charger may be enforcing.
    """

    key: EvseKey
    max_w: float
    min_w: float = 0.0
    arrival: float = 0.0
    group: str | None = None
    measured_w: float | None = None
    previous_w: float | None = None
    controlled: bool = True
    fixed_w: float | None = None

    @property
    def fixed_load_w(self) -> float:
        """What the EVSE counts as when it is not controlled."""
        return self.max_w if self.fixed_w is None else self.fixed_w


def water_level(caps: Sequence[float], budget: float) -> float:
    """The level L with ``sum(min(c, L) for c in caps) == budget`` (inf if all fit)."""
    if budget <= 0:
        return 0.0
    ordered = sorted(caps)
    remaining = budget
    for i, cap in enumerate(ordered):
        share = remaining / (len(ordered) - i)
        if cap >= share:
            return share
        remaining -= cap
    return float("inf")


def cap_of(demand: Demand, guard_band_w: float) -> float:
    """How much ``demand`` can use this tick."""
    cap = demand.max_w
    # "Clearly less" is half a guard band below what it was given: an EV held at
    # measured + guard stays there (no oscillation), one that ramps up to within half a
    # guard band of its limit is uncapped again.
    if (demand.measured_w is not None and demand.previous_w is not None
            and demand.measured_w < demand.previous_w - guard_band_w / 2):
        cap = min(cap, demand.measured_w + guard_band_w)
    return max(cap, demand.min_w) if demand.min_w <= demand.max_w else demand.max_w


def _fill(caps: Mapping[EvseKey, float], groups: Mapping[EvseKey, str | None],
          budget: float, group_budgets: Mapping[str, float]) -> dict[EvseKey, float]:
    """Max-min fair shares of ``budget`` with per-group budgets (groups are disjoint)."""
    effective = dict(caps)
    members: dict[str, list[EvseKey]] = {}
    for key, group in groups.items():
        if group is not None and group in group_budgets:
            members.setdefault(group, []).append(key)
    for group, keys in members.items():
        level = water_level([caps[k] for k in keys], group_budgets[group])
        for k in keys:
            effective[k] = min(caps[k], level)
    level = water_level(list(effective.values()), budget)
    return {k: min(c, level) for k, c in effective.items()}


def allocate(
    demands: Iterable[Demand],
    site_limit_w: float | None,
    group_limits_w: Mapping[str, float] | None = None,
    *,
    tick: int = 0,
    guard_band_w: float = 1500.0,
    previous: Mapping[EvseKey, float] | None = None,
    phase_scopes: Sequence[Scope] = (),
) -> dict[EvseKey, float]:
    """One limit in W per controlled EVSE (0 = paused).

    Args:
        demands: the EVSEs with open sessions on available connectors.
        site_limit_w: the grid connection's limit (None: unlimited).
        group_limits_w: limits of groups of chargers.
        tick: the rotation's counter; rotates who is paused.
        guard_band_w: headroom left to an EV that draws less than it was given.
        previous: the allocation made earlier in the same rotation interval (None: a new
            interval): who ran keeps running, who was paused stays paused.
        phase_scopes: current limits per grid phase, weighted (see :data:`Scope`).
    """
    group_limits = dict(group_limits_w or {})
    all_demands = sorted(demands, key=lambda d: (d.arrival, d.key))
    budget = float("inf") if site_limit_w is None else site_limit_w
    group_budget = dict(group_limits)
    controlled = []
    for d in all_demands:
        if d.controlled:
            controlled.append(d)
            continue
        budget -= d.fixed_load_w
        if d.group in group_budget:
            group_budget[d.group] -= d.fixed_load_w
    budget = max(budget, 0.0)
    group_budget = {g: max(b, 0.0) for g, b in group_budget.items()}
    # Weighted scopes: their room once the fixed load is counted, in key order (exact and
    # the same whatever the order of the demands).
    weighted = [
        (max(limit - math.fsum(members.get(d.key, 0.0) * d.fixed_load_w
                               for d in all_demands if not d.controlled), 0.0), members)
        for limit, members in phase_scopes
    ]

    # An EVSE rated below its session's minimum cannot be given a limit the EV accepts
    # (anything in 0 < limit < min_w is one it refuses): it gets 0 and takes no budget.
    chargeable = [d for d in controlled if d.min_w <= d.max_w]
    admitted = _admit(chargeable, budget, group_budget, tick, previous, weighted)
    result = {d.key: 0.0 for d in controlled}
    if not admitted:
        return result
    # Everyone admitted gets its minimum; the rest is water-filled on top.
    extra_caps = {d.key: max(cap_of(d, guard_band_w) - d.min_w, 0.0) for d in admitted}
    groups = {d.key: d.group for d in admitted}
    spent = sum(d.min_w for d in admitted)
    group_spent: dict[str, float] = {}
    for d in admitted:
        if d.group is not None:
            group_spent[d.group] = group_spent.get(d.group, 0.0) + d.min_w
    group_room = {g: b - group_spent.get(g, 0.0) for g, b in group_budget.items()}
    if weighted:
        constraints: list[Scope] = [(budget - spent, dict.fromkeys(extra_caps, 1.0))]
        for g, room in sorted(group_room.items()):
            constraints.append((room, {k: 1.0 for k, group in groups.items() if group == g}))
        for room, members in weighted:
            used = math.fsum(members.get(d.key, 0.0) * d.min_w for d in admitted)
            constraints.append((room - used, {k: w for k, w in members.items()
                                              if k in extra_caps and w > 0}))
        extra = _progressive(extra_caps, constraints)
    else:
        extra = _fill(extra_caps, groups, budget - spent, group_room)
    for d in admitted:
        result[d.key] = d.min_w + extra[d.key]
    return result


def _admit(demands: Sequence[Demand], budget: float, group_budget: Mapping[str, float],
           tick: int, previous: Mapping[EvseKey, float] | None = None,
           weighted: Sequence[Scope] = ()) -> list[Demand]:
    """The sessions that get at least their minimum, in a rotating order; within a
    rotation interval, those that ran first and those paused next."""
    if sum(d.min_w for d in demands) <= budget and all(
        sum(d.min_w for d in demands if d.group == g) <= b for g, b in group_budget.items()
    ) and all(
        math.fsum(members.get(d.key, 0.0) * d.min_w for d in demands) <= room
        for room, members in weighted
    ):
        return list(demands)
    n = len(demands)
    # Rotate by the number left out at tick 0, so the paused set moves on each tick.
    left_out = n - len(_greedy(demands, budget, group_budget, weighted))
    offset = (tick * max(left_out, 1)) % n if n else 0
    rotated = list(demands[offset:]) + list(demands[:offset])
    if previous is not None:
        # Sorting is stable: the rotated order holds within each rank.
        rotated.sort(key=lambda d: 0 if previous.get(d.key, 0.0) > 0 else
                     1 if d.key in previous else 2)
    return _greedy(rotated, budget, group_budget, weighted)


def _greedy(order: Sequence[Demand], budget: float,
            group_budget: Mapping[str, float], weighted: Sequence[Scope] = ()) -> list[Demand]:
    used = 0.0
    group_used: dict[str, float] = {}
    weighted_used = [0.0] * len(weighted)
    admitted = []
    for d in order:
        if used + d.min_w > budget:
            continue
        group = d.group
        if (group is not None and group in group_budget
                and group_used.get(group, 0.0) + d.min_w > group_budget[group]):
            continue
        loads = [members.get(d.key, 0.0) * d.min_w for _, members in weighted]
        if any(weighted_used[i] + load > weighted[i][0] + 1e-9
               for i, load in enumerate(loads) if load):
            continue
        for i, load in enumerate(loads):
            weighted_used[i] += load
        used += d.min_w
        if d.group is not None:
            group_used[d.group] = group_used.get(d.group, 0.0) + d.min_w
        admitted.append(d)
    return admitted



def _progressive(caps: Mapping[EvseKey, float],
                 constraints: Sequence[Scope]) -> dict[EvseKey, float]:
    """Max-min fair shares under weighted limits (progressive filling): every share rises
    from 0 at the same pace, and stops at its cap, or when a limit it weighs on is full.
    Keys are handled in sorted order: the result does not depend on any set's order."""
    result = dict.fromkeys(caps, 0.0)
    index: dict[EvseKey, list[tuple[int, float]]] = {k: [] for k in caps}
    weight = [0.0] * len(constraints)
    members_left = [0] * len(constraints)
    frozen = [0.0] * len(constraints)
    for i, (_, members) in enumerate(constraints):
        for key in sorted(members):
            w = members[key]
            if key in index and w > 0:
                index[key].append((i, w))
                weight[i] += w
                members_left[i] += 1
    active = set(caps)
    by_cap = sorted(caps, key=lambda k: (caps[k], k))
    pointer = 0
    level = 0.0

    def freeze(key: EvseKey, value: float) -> None:
        result[key] = value
        active.discard(key)
        for i, w in index[key]:
            frozen[i] += w * value
            weight[i] -= w
            members_left[i] -= 1

    while active:
        while by_cap[pointer] not in active:
            pointer += 1
        next_cap = caps[by_cap[pointer]]
        binding, bind_level = None, math.inf
        for i, (limit, _) in enumerate(constraints):
            if members_left[i] and weight[i] > 0:
                at = (limit - frozen[i]) / weight[i]
                if at < bind_level:
                    binding, bind_level = i, at
        if binding is None or next_cap <= bind_level:
            level = max(level, next_cap)
            freeze(by_cap[pointer], next_cap)
            continue
        level = max(level, bind_level)
        for key in sorted(k for k in constraints[binding][1] if k in active):
            freeze(key, min(max(level, 0.0), caps[key]))
    return result
