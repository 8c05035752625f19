"""start-sim's steady load (sim.steady_load) and its shards (sim.shard): pure parts."""

from __future__ import annotations

import itertools
import random
import statistics
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.shard import ShardError, parse_shard, shard_numbers
from sim.steady_load import SteadyLoad


class _Charger:
    """What the schedule reads of a charger: its id and EVSE numbers."""

    def __init__(self, cp_id: str, evses: int) -> None:
        self.id = cp_id
        self.evses = {n: None for n in range(1, evses + 1)}


def _fleet(chargers: int, evses: int = 2) -> list[Any]:
    return [_Charger(f"CP_{n:02d}", evses) for n in range(1, chargers + 1)]


def test_half_the_evses_arrive_within_the_spread_the_others_after_a_pause() -> None:
    load = SteadyLoad(1800.0, random.Random(7))
    load.add(_fleet(1000), now=100.0, spread_s=60.0)
    first = load.pop_due(160.0)
    # 2,000 EVSEs, each a coin toss: about half arrive in the first minute; of the others
    # (a pause of mean 30 min) about 3 % are due by then too.
    assert 950 <= len(first) <= 1100
    assert all(slot.arrive for slot in first)  # every EVSE's first turn is an arrival
    assert load.next_due() > 160.0
    assert len({(slot.cp.id, slot.connector) for slot in first}) == len(first)


def test_turns_come_in_time_order_and_every_evse_stays_scheduled() -> None:
    load = SteadyLoad(60.0, random.Random(3))
    load.add(_fleet(5), now=0.0, spread_s=10.0)
    seen: list[tuple[str, int]] = []
    now = 0.0
    for _ in range(200):
        now = load.next_due()
        due = load.pop_due(now)
        assert due, "next_due names a moment at which something is due"
        seen += [(slot.cp.id, slot.connector) for slot in due]
    assert len(load) == 10  # each EVSE exactly once, always
    # Every EVSE got turns, and the gaps between an EVSE's turns average the mean.
    assert {key for key in seen} == {(f"CP_{n:02d}", c) for n in range(1, 6) for c in (1, 2)}
    assert now / (len(seen) / 10) == pytest.approx(60.0, rel=0.25)


def test_the_same_seed_gives_the_same_schedule() -> None:
    def schedule(seed: int) -> list[tuple[float, str, int]]:
        load = SteadyLoad(30.0, random.Random(seed))
        load.add(_fleet(20), now=0.0, spread_s=5.0)
        out = []
        for _ in range(100):
            when = load.next_due()
            out += [(when, slot.cp.id, slot.connector) for slot in load.pop_due(when)]
        return out

    assert schedule(1) == schedule(1)
    assert schedule(1) != schedule(2)


def test_the_pauses_are_exponential_of_the_mean() -> None:
    load = SteadyLoad(600.0, random.Random(11))
    load.add(_fleet(1), now=0.0, spread_s=0.0)
    times = []
    for _ in range(4000):
        when = load.next_due()
        times.append(when)
        load.pop_due(when)
    gaps = [b - a for a, b in itertools.pairwise(times) if b > a]
    # Two EVSEs interleave: each one's gaps are Exp(600 s), the merged ones Exp(300 s).
    assert statistics.mean(gaps) == pytest.approx(300.0, rel=0.1)


def test_a_mean_that_is_not_positive_is_refused() -> None:
    with pytest.raises(ValueError, match="mean_s must be positive"):
        SteadyLoad(0.0, random.Random(1))


@given(total=st.integers(1, 50_000), shards=st.integers(1, 64))
def test_shards_cover_the_fleet_once_in_near_equal_runs(total: int, shards: int) -> None:
    if shards > total:
        with pytest.raises(ShardError, match="leaves some empty"):
            shard_numbers(total, 1, shards)
        return
    runs = [shard_numbers(total, k, shards) for k in range(1, shards + 1)]
    numbers = [n for run in runs for n in run]
    assert numbers == list(range(1, total + 1))  # each once, in order, no gap
    sizes = {len(run) for run in runs}
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


@pytest.mark.parametrize(("text", "expected"), [("1/1", (1, 1)), ("2/4", (2, 4)),
                                                 (" 3 / 3 ", (3, 3))])
def test_a_shard_is_k_of_n(text: str, expected: tuple[int, int]) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize(("text", "said"), [
    ("0/4", "K must be between 1 and N, got 0/4"),
    ("5/4", "K must be between 1 and N, got 5/4"),
    ("2", "expected K/N such as 2/4, got '2'"),
    ("a/b", "expected K/N such as 2/4"),
])
def test_a_shard_that_names_none_is_refused(text: str, said: str) -> None:
    with pytest.raises(ShardError, match=said.replace("(", r"\(")):
        parse_shard(text)
