"""The in-force bookkeeping (csms.smart.in_force) against chargers that apply, refuse,
answer late, never answer and drop their connection, in any interleaving.

The model charger does what OCPP 1.6 lets a real one do with a SetChargingProfile: apply
it at any moment between receiving it and answering (or after its answer was given up:
a late answer), answer Accepted (having applied it), refuse it (not applied), or never
answer. The CSMS side is the service's loop: whatever limits the allocation asks for,
:func:`admit` lets some out, the ledger hears every send and every outcome. The property:
the limit each charger really enforces never exceeds the ledger's bound, and once the
bounds fit the site's and the group's limits, the limits really in force fit them at every
step after.
"""

from __future__ import annotations

import attrs
from hypothesis import example, given, settings
from hypothesis import strategies as st

from csms.smart.in_force import Ledger, Limit, admit

SITE_W = 30_000.0
GROUP_W = 12_000.0
KEYS = [("CP_01", 1), ("CP_01", 2), ("CP_02", 1), ("CP_03", 1)]
GROUP = frozenset(KEYS[:2])
SCOPES = [(SITE_W, dict.fromkeys(KEYS, 1.0)), (GROUP_W, dict.fromkeys(GROUP, 1.0))]
TX = 7


@attrs.define
class Charger:
    """One EVSE of a model charger: what it enforces, what it has received."""

    default: float
    enforced: float
    #: Received, not yet answered (at most one: OCPP-J's one outstanding CALL).
    received: float | None = None
    #: Whether it applied what it received (a charger that applied a profile accepts it).
    applied: bool = False
    #: Given up by the CSMS unanswered and not applied yet, with the number the ledger
    #: gave each as it went out: the charger may still apply them (in order), and answer
    #: them late, until a later one is accepted.
    late: list[tuple[float, int]] = attrs.Factory(list)
    #: The number of the one received.
    received_as: int = 0


def bounds(ledger: Ledger, chargers: dict[tuple[str, int], Charger]) -> dict:
    return {k: (ledger.find(k, TX) or Limit(TX)).bound(c.default) for k, c in chargers.items()}


def fits(loads: dict) -> bool:
    return all(sum(loads[k] for k in members) <= limit + 1e-6 for limit, members in SCOPES)


steps = st.lists(
    st.one_of(
        st.tuples(st.just("allocate"),
                  st.lists(st.sampled_from([0.0, 1380.0, 4140.0, 6000.0, 9000.0, 11_000.0,
                                            22_000.0]), min_size=4, max_size=4)),
        st.tuples(st.sampled_from(["send", "apply", "accept", "refuse", "timeout", "drop",
                                   "apply-late", "accept-late"]), st.integers(0, 3)),
    ),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
# A late Accepted while a later limit is in flight: the later one may be applied yet.
@example([6000.0] * 4, [("allocate", [1380.0, 0.0, 0.0, 0.0]), ("send", 0), ("timeout", 0),
                        ("allocate", [4140.0, 0.0, 0.0, 0.0]), ("send", 0),
                        ("accept-late", 0), ("apply", 0)])
@given(st.lists(st.sampled_from([4140.0, 6000.0]), min_size=4, max_size=4), steps)
def test_what_a_charger_enforces_stays_within_the_bound_and_the_limits(
    defaults: list[float], program: list[tuple]
) -> None:
    chargers = {k: Charger(d, d) for k, d in zip(KEYS, defaults, strict=True)}
    ledger = Ledger()
    queued: dict[tuple[str, int], float] = {}
    for step in program:
        kind, arg = step
        if kind == "allocate":
            targets = dict(zip(KEYS, arg, strict=True))
            now, held = admit(targets, bounds(ledger, chargers), SCOPES)
            assert set(now) | set(held) == set(targets)
            for key, watts in now.items():
                queued[key] = watts
                ledger.queue(key, TX, watts)
        else:
            key = KEYS[arg]
            charger = chargers[key]
            if kind == "send" and key in queued and charger.received is None:
                watts = queued.pop(key)
                ledger.sending(key, TX, watts)
                charger.received, charger.applied = watts, False
                charger.received_as = ledger.limits[key].sent
            elif kind == "apply" and charger.received is not None:
                charger.enforced, charger.applied = charger.received, True
            elif kind == "accept" and charger.received is not None:
                charger.enforced = charger.received
                ledger.accepted(key, TX, charger.received, 0)
                charger.received = None
                charger.late.clear()  # processed in order: the earlier ones are behind it
            elif kind == "refuse" and charger.received is not None and not charger.applied:
                charger.received = None
                ledger.refused(key, TX)
            elif kind == "timeout" and charger.received is not None:
                charger.late.append((charger.received, charger.received_as))
                charger.received = None
                ledger.unanswered(key, TX)
            elif kind == "drop":
                # The connection drops: what was received may be applied or not; what was
                # queued is not sent.
                if charger.received is not None:
                    charger.late.append((charger.received, charger.received_as))
                    charger.received = None
                    ledger.unanswered(key, TX)
                if key in queued:
                    del queued[key]
                    ledger.unqueue(key, TX)
            elif kind == "apply-late" and charger.late:
                charger.enforced, _ = charger.late.pop(0)
            elif kind == "accept-late" and charger.late:
                # It applies the oldest it was given and answers Accepted, after the CSMS
                # gave it up (the CSMS reads late answers on any connection here: the
                # bookkeeping must hold either way).
                charger.enforced, number = charger.late.pop(0)
                ledger.accepted_late(key, TX, charger.enforced, 0, number)
        bound = bounds(ledger, chargers)
        for key, charger in chargers.items():
            assert charger.enforced <= bound[key] + 1e-6, (key, charger, ledger.limits.get(key))
        # The defaults fit (4 x 6,000 <= 30,000 and 2 x 6,000 <= 12,000), so the bounds
        # always do, and with them what is really in force.
        assert fits(bound), bound
        assert fits({k: c.enforced for k, c in chargers.items()})


def test_a_decrease_goes_out_at_once_and_the_increase_waits_for_its_confirmation() -> None:
    a, b = KEYS[2], KEYS[3]
    scopes = [(20_000.0, {a: 1.0, b: 1.0})]
    # a enforces 16 kW, b 4 kW: the site is full. Swap them.
    now, held = admit({a: 4000.0, b: 16_000.0}, {a: 16_000.0, b: 4000.0}, scopes)
    assert now == {a: 4000.0}
    assert held == {b: 16_000.0}
    ledger = Ledger()
    ledger.accepted(a, TX, 16_000.0, 0)
    ledger.sending(a, TX, 4000.0)
    assert ledger.find(a, TX).bound(22_000.0) == 16_000.0  # until confirmed
    ledger.accepted(a, TX, 4000.0, 0)
    assert ledger.find(a, TX).bound(22_000.0) == 4000.0
    now, held = admit({b: 16_000.0}, {a: 4000.0, b: 4000.0}, scopes)
    assert now == {b: 16_000.0} and held == {}


def test_an_unanswered_limit_counts_until_a_later_one_is_accepted() -> None:
    key = KEYS[0]
    ledger = Ledger()
    ledger.accepted(key, TX, 6000.0, 0)
    ledger.sending(key, TX, 11_000.0)
    ledger.unanswered(key, TX)  # it may have applied 11 kW
    assert ledger.find(key, TX).bound(22_000.0) == 11_000.0
    ledger.sending(key, TX, 5000.0)
    ledger.refused(key, TX)  # refusing 5 kW says nothing about the 11 kW
    assert ledger.find(key, TX).bound(22_000.0) == 11_000.0
    ledger.sending(key, TX, 5000.0)
    ledger.accepted(key, TX, 5000.0, 0)  # it replaced whatever came before
    assert ledger.find(key, TX).bound(22_000.0) == 5000.0
    assert ledger.find(key, TX).settled


def test_increases_are_let_out_smallest_first_within_every_scope() -> None:
    a, b, c = KEYS[0], KEYS[1], KEYS[2]
    scopes = [(20_000.0, dict.fromkeys((a, b, c), 1.0)), (10_000.0, dict.fromkeys((a, b), 1.0))]
    now, held = admit({a: 9000.0, b: 6000.0, c: 12_000.0},
                      {a: 4000.0, b: 4000.0, c: 4000.0}, scopes)
    # b's +2,000 fits the group (8,000 <= 10,000); then a's +5,000 would make 13,000 in the
    # group; c's +8,000 makes 4,000 + 6,000 + 12,000 = 22,000 > 20,000 on the site.
    assert now == {b: 6000.0}
    assert held == {a: 9000.0, c: 12_000.0}


def test_the_same_limit_accepted_again_keeps_the_readings_taken_under_it() -> None:
    key = KEYS[0]
    ledger = Ledger()
    ledger.sending(key, TX, 4_000.0)
    ledger.accepted(key, TX, 4_000.0, samples=3)
    # Sent again (a charger drawing more may have lost it): nothing it enforces changed,
    # so its 5th reading still shows what it draws under that limit.
    ledger.sending(key, TX, 4_000.0)
    ledger.accepted(key, TX, 4_000.0, samples=5)
    assert ledger.limits[key].accepted_samples == 3
    assert ledger.limits[key].previous(5) == 4_000.0
    # A new limit: the readings before it were taken under the old one.
    ledger.sending(key, TX, 3_000.0)
    ledger.accepted(key, TX, 3_000.0, samples=5)
    assert ledger.limits[key].accepted_samples == 5
    assert ledger.limits[key].previous(5) == 4_000.0
