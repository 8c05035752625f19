"""A steady load for a fleet that runs until stopped (``start-sim --sessions M``).

Every EVSE alternates between free and charging: free for an exponential time of mean
``M`` minutes, then an EV from the mix plugs in and starts a session, charges for an
exponential time of mean ``M``, and leaves. With equal means, half the EVSEs charge at
any moment. The fleet starts in that steady state: each EVSE is charging with
probability one half (its EV arrives within the first meter interval, or ``M`` if
shorter, so that the fleet does not plug in in lockstep), and exponential times have no
memory, so what remains of a visit or a pause is again exponential of mean ``M``.

One task drives the whole fleet from one heap of due moments (a task per EVSE would cost
more memory than the charger it drives); each arrival or departure then runs as a short
task of its own, for as long as its OCPP calls take.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
from collections.abc import Iterable

import attrs
import trio

from sim.charge_point import SimChargePoint
from sim.config import SimConfig
from sim.ev import Ev
from sim.evse import EvseState
from sim.wheel import Wheel

log = logging.getLogger("sim.steady_load")


@attrs.define(eq=False)
class _Slot:
    """One EVSE of the fleet and what happens to it next."""

    cp: SimChargePoint
    connector: int
    arrive: bool = True
    busy: bool = False


@attrs.define
class LoadCounts:
    """What the load did so far (for a log line when the fleet stops)."""

    arrivals: int = 0
    sessions: int = 0
    refused: int = 0
    skipped: int = 0


class SteadyLoad:
    """The schedule of arrivals and departures (pure: no I/O, no clock of its own).

    Args:
        mean_s: the mean of both the visits and the pauses between them, seconds.
        rng: drives every draw.
    """

    def __init__(self, mean_s: float, rng: random.Random) -> None:
        if mean_s <= 0:
            raise ValueError(f"mean_s must be positive, got {mean_s}")
        self.mean_s = mean_s
        self.rng = rng
        self._heap: list[tuple[float, int, _Slot]] = []
        self._order = itertools.count()

    def add(self, chargers: Iterable[SimChargePoint], now: float, spread_s: float) -> None:
        """Schedule the EVSEs of ``chargers`` in the steady state, from ``now``: half of
        them arrive within ``spread_s``, the others after a pause."""
        for cp in chargers:
            for connector in cp.evses:
                slot = _Slot(cp, connector)
                if self.rng.random() < 0.5:
                    self._push(now + self.rng.uniform(0, spread_s), slot)
                else:
                    self._push(now + self._draw(), slot)

    def __len__(self) -> int:
        """How many EVSEs the load drives (each is always scheduled once)."""
        return len(self._heap)

    def next_due(self) -> float:
        """When the next arrival or departure is due (``inf`` if none is scheduled)."""
        return self._heap[0][0] if self._heap else float("inf")

    def pop_due(self, now: float) -> list[_Slot]:
        """The slots due at ``now``, in the order they were scheduled; each is scheduled
        again, for its next turn, as it is handed out."""
        due = []
        while self._heap and self._heap[0][0] <= now:
            _, _, slot = heapq.heappop(self._heap)
            due.append(slot)
            self._push(now + self._draw(), slot)
        return due

    def _draw(self) -> float:
        return self.rng.expovariate(1 / self.mean_s)

    def _push(self, when: float, slot: _Slot) -> None:
        heapq.heappush(self._heap, (when, next(self._order), slot))


async def drive(load: SteadyLoad, config: SimConfig, wheel: Wheel,
                nursery: trio.Nursery, counts: LoadCounts) -> None:
    """Run ``load``'s arrivals and departures until cancelled."""
    while True:
        await wheel.sleep_until(load.next_due())
        for slot in load.pop_due(trio.current_time()):
            if slot.busy:
                counts.skipped += 1  # the last turn's calls are still going: skip this one
                continue
            arrive, slot.arrive = slot.arrive, not slot.arrive
            slot.busy = True
            ev = config.draw_ev(load.rng) if arrive else None
            nursery.start_soon(_turn, slot, ev, counts)


async def _turn(slot: _Slot, ev: Ev | None, counts: LoadCounts) -> None:
    cp, connector = slot.cp, slot.connector
    try:
        evse = cp.evse(connector)
        if ev is None:
            if evse.ev is not None:
                await cp.unplug(connector)
            return
        if evse.fsm.state is not EvseState.AVAILABLE or evse.ev is not None:
            counts.skipped += 1  # faulted, unavailable or still occupied: no EV this time
            return
        counts.arrivals += 1
        await cp.plug_in(connector, ev)
        if await cp.start_session(connector, f"{cp.id}-{connector}"):
            counts.sessions += 1
        else:
            counts.refused += 1
            if counts.refused == 1:
                log.warning("%s: the CSMS refused idTag %s-%d (start the CSMS with "
                            "--unknown-id-tags accept)", cp.id, cp.id, connector)
    finally:
        slot.busy = False
