"""Progress of a scenario run on a terminal: scenario time reached out of its length,
sessions open, site power. Drawn by tqdm on stderr, and only where someone watches: a
terminal, not CI (``CI`` set) and not a dumb one; a run shorter than :data:`DELAY_S`
shows nothing.

The display runs in its own thread and reads the fleet's timeline (append-only lists;
see :class:`sim.timeline.Timeline`). Nothing of it runs in the trio run: a progress task
there would add wake-ups to the scheduler and change the seeded order of everything else,
and with it the report.
"""

from __future__ import annotations

import datetime
import os
import shutil
import sys
import threading
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from tqdm import tqdm

if TYPE_CHECKING:
    from sim.simulator_runner import Fleet

#: Wall-clock seconds before the bar appears, and between refreshes.
DELAY_S = 2.0
REFRESH_S = 0.5


def wanted(stream: IO[str]) -> bool:
    """Whether progress belongs on ``stream``: a terminal, outside CI."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    return stream.isatty()


class Progress:
    """The progress display of one run (a context manager; does nothing when not
    ``enabled``). ``watch(fleet, start)`` once the fleet exists."""

    def __init__(self, name: str, length_s: float | None, *, enabled: bool,
                 stream: IO[str] | None = None) -> None:
        self._name = name
        self._length_s = length_s
        self._enabled = enabled
        self._stream = stream or sys.stderr
        self._fleet: Fleet | None = None
        self._start: datetime.datetime | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, fleet: Fleet, start: datetime.datetime) -> None:
        """Show the progress of ``fleet``, whose scenario began at ``start``."""
        self._fleet, self._start = fleet, start

    def __enter__(self) -> Progress:
        if self._enabled:
            self._thread = threading.Thread(target=self._show, name="sim-progress",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _show(self) -> None:
        if self._stop.wait(DELAY_S):
            return  # a short run: nothing to watch
        total = round(self._length_s) if self._length_s else None
        # The terminal's size, 80x24 where it reports none (a fresh pseudo-terminal says
        # 0x0, and tqdm hides a bar below a screen 0 lines high).
        size = shutil.get_terminal_size((80, 24))
        bar = tqdm(total=total, desc=self._name, unit="s", file=self._stream, leave=False,
                   ncols=size.columns, nrows=size.lines, mininterval=0,
                   bar_format="{desc} |{bar}| {percentage:3.0f}% [{elapsed}]"
                   if total else "{desc} [{elapsed}]")
        try:
            while True:
                self._update(bar, total)
                if self._stop.wait(REFRESH_S):
                    return
        finally:
            bar.close()

    def _update(self, bar: tqdm[Any], total: int | None) -> None:
        timeline = self._fleet.timeline if self._fleet is not None else None
        n = len(timeline.times) if timeline is not None else 0
        if timeline is None or n == 0 or self._start is None:
            return
        at = timeline.times[n - 1]
        reached = (at - self._start).total_seconds()
        if total:
            bar.n = min(round(reached), total)
        length = f"/{self._length_s / 3600:g}" if self._length_s else ""
        bar.set_description_str(
            f"{self._name} {at:%H:%M} ({reached / 3600:.1f}{length} h), "
            f"{timeline.open_sessions[n - 1]} sessions open, "
            f"site {timeline.site_kw[n - 1]:.1f} kW", refresh=False)
        bar.refresh()
