"""The simulator's timers, in one order: what falls due at the same instant is woken in
the order it was scheduled.

In a virtual-time run many timers fall due at exactly the same instant: fifty chargers
booted together send their Heartbeats together, a meter tick meets a scenario's unplug.
trio breaks ties between equal deadlines by the memory address of their cancel scopes,
which differs from run to run, and the order decides what the CSMS sees first. So every
sleep of the simulator (its chargers, its fleet, a scenario's) goes through one
:class:`Wheel`:

* **in real time** (against an external CSMS) it is ``trio.sleep_until``;
* **in virtual time** the sleeper waits on an event, and the clock driver
  (:func:`sim.simulator_runner.drive_virtual_clock`) wakes the due sleepers when the
  process is quiet, in the order they went to sleep: trio then runs them in an order
  that only its seeded scheduler decides, the same on every run.
"""

from __future__ import annotations

import heapq
import itertools
import math

import attrs
import trio


@attrs.define(eq=False)
class _Sleeper:
    woken: trio.Event = attrs.Factory(trio.Event)
    gone: bool = False


class Wheel:
    """The simulator's timers (see the module docstring).

    Args:
        virtual: wake sleepers only through :meth:`fire_due` (a virtual-time run whose
            clock driver calls it); otherwise each sleeps on trio's clock.
    """

    def __init__(self, *, virtual: bool = False) -> None:
        self.virtual = virtual
        self._heap: list[tuple[float, int, _Sleeper]] = []
        self._order = itertools.count()

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` (trio time)."""
        await self.sleep_until(trio.current_time() + max(0.0, seconds))

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until trio's clock reads ``deadline``."""
        if not self.virtual:
            await trio.sleep_until(deadline)
            return
        sleeper = _Sleeper()
        heapq.heappush(self._heap, (deadline, next(self._order), sleeper))
        try:
            await sleeper.woken.wait()
        finally:
            sleeper.gone = True  # cancelled, or woken: either way no longer waiting

    def _drop_gone(self) -> None:
        while self._heap and self._heap[0][2].gone:
            heapq.heappop(self._heap)

    def next_deadline(self) -> float:
        """When the earliest sleeper is due (inf: nobody sleeps)."""
        self._drop_gone()
        return self._heap[0][0] if self._heap else math.inf

    def fire_due(self) -> bool:
        """Wake every sleeper due now, in the order they slept; whether any was.

        They become runnable in that order, and trio runs one batch of runnable tasks in
        an order drawn from its (seeded) scheduler: the same order on every run, unlike
        the order of trio's own timers due together.
        """
        now = trio.current_time()
        woken = False
        while True:
            self._drop_gone()
            if not self._heap or self._heap[0][0] > now:
                return woken
            _, _, sleeper = heapq.heappop(self._heap)
            sleeper.woken.set()
            woken = True
