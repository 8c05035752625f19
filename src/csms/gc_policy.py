"""The cyclic garbage collector in a long-running ``python -m csms`` process.

CPython collects its youngest generation every 700 net allocations of tracked objects,
and promotes what survives two such collections. A CSMS answering thousands of chargers
keeps every round trip's objects alive for a commit (milliseconds, an fsync), which is
dozens of young collections: they were promoted by the hundred thousand, and the full
collections this set off walked the whole heap. With 10,000 chargers connected that
heap holds about 2.9 million tracked objects, and each full collection took 1.8 s in
which no charger was answered (``benchmarks/fleet_scale.py``, docs/benchmarks.md).

:func:`tune_after_startup` is called by the serving process once its state is loaded:

* what start-up built (modules, the state loaded from the database) is moved to the
  permanent generation (:func:`gc.freeze`), which collections do not walk; frozen objects
  are still freed by reference counting when nothing refers to them any more;
* the youngest generation is collected every :data:`YOUNG_THRESHOLD` allocations, so a
  round trip's objects die young instead of being promoted.

Measured at 10,000 chargers (realistic load, 180 s): p99 latency 66 ms → 10 ms, and the
fleet's set-up 62 s → 33 s. Freezing the survivors again every 30 s was measured too and
did not pay: the young collection it needs first cost more (p99 57 ms) than it saved.

An embedding program (the simulator running a CSMS in its own process) owns its heap
and its collector: nothing here runs unless the process's entry point calls it.
"""

from __future__ import annotations

import gc

#: Allocations of tracked objects between two collections of the youngest generation
#: (CPython's default is 700).
YOUNG_THRESHOLD = 50_000


def tune_after_startup() -> None:
    """Freeze what start-up built; collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
