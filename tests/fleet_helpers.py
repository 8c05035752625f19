"""Helpers for the tests that run the real CSMS and a fleet of simulated charge points in one
trio process, over real loopback WebSockets, in virtual time.

Virtual time is a ``MockClock`` without autojump (the ``virtual_clock`` fixture of
``conftest.py``), driven by ``sim.simulator_runner.drive_virtual_clock``: it jumps only
when every task is blocked, nothing holds it (:meth:`VirtualSite.hold`) and the CSMS's
SQLite store has nothing on its thread. pytest-trio's ``autojump_clock`` would jump in the
middle of a commit. Waiting is ``trio.sleep`` in virtual time; nothing sleeps in real time.
"""

from __future__ import annotations

import contextlib
import datetime
import random
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import trio
import trio.testing

from csms.app import Csms
from csms.config import CsmsConfig
from csms.storage.base import LogRow, SampleRow
from csms.storage.sqlite import SqliteStore
from ocppj.schemas import validate_response
from sim.config import SimConfig
from sim.simulator_runner import VIRTUAL_EPOCH, Fleet, drive_virtual_clock

#: The fleet's configuration: the built-in defaults (AC-22 chargers, 22 kW per EVSE,
#: 3 phases, 60 s meter interval).
CONFIG = SimConfig()
#: A virtual-time watchdog per test by default: time only jumps while every task is
#: blocked, so a test that hangs on a deadline ends here instead of running forever.
WATCHDOG = 2 * 24 * 3600


class VirtualSite:
    """A CSMS (that can be stopped and restarted on its port and database) and a fleet,
    on one virtual clock."""

    def __init__(self, tmp_path: Path, clock: trio.testing.MockClock, **config: Any) -> None:
        self.db = tmp_path / "csms.db"
        self.clock = clock
        #: More CsmsConfig fields for every start of the CSMS (``site``, ``call_timeout``).
        self.config = config
        self.t0 = trio.current_time()
        self.port = 0
        self.csms: Csms | None = None
        self._holds = 0
        self._released = trio.Event()
        self._nursery: trio.Nursery
        self.fleet: Fleet

    def now(self) -> datetime.datetime:
        return VIRTUAL_EPOCH + datetime.timedelta(seconds=trio.current_time() - self.t0)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Keep virtual time still (while the CSMS reads its database on a thread)."""
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1
            if not self._holds:
                self._released.set()
                self._released = trio.Event()

    async def wait_idle(self) -> bool:
        """For drive_virtual_clock: False when time may jump now, else wait and say True."""
        if self._holds:
            await self._released.wait()
            return True
        store = self.csms.store if self.csms is not None else None
        if isinstance(store, SqliteStore) and store.busy:
            await store.wait_idle()
            return True
        return False

    async def start_csms(self, factory: Callable[..., Csms] = Csms) -> Csms:
        """Start a CSMS on the site's port (a free one the first time) and database."""
        csms = factory(
            CsmsConfig(port=self.port, db_path=str(self.db), synchronous="OFF",
                       heartbeat_interval=CONFIG.heartbeat_interval, **self.config),
            clock=self.now,
        )
        with self.hold():  # it loads its state on the database thread
            self.port = await self._nursery.start(csms.serve)
        self.csms = csms
        return csms

    async def stop_csms(self) -> None:
        """Shut the CSMS down (its connections close with 1001)."""
        csms = self.running_csms
        # Closing the database is thread work the store does not count as busy; the
        # closing handshakes need no timer (the chargers answer over loopback at once).
        with self.hold():
            await csms.shutdown()
        self.csms = None

    @property
    def running_csms(self) -> Csms:
        assert self.csms is not None
        return self.csms

    async def log(self) -> list[LogRow]:
        """Every row of the CSMS's message log, in order."""
        store = self.running_csms.store
        with self.hold():
            await store.flush()
            return await store.read_log()

    async def samples(self) -> list[SampleRow]:
        """Every sampled value the CSMS stored, in order."""
        store = self.running_csms.store
        with self.hold():
            await store.flush()
            return await store.read_samples()

    async def call(self, charger_id: str, action: str, payload: dict[str, Any]
                   ) -> dict[str, Any]:
        """A CALL from the CSMS to a connected charger; its schema-valid answer."""
        connection = self.running_csms.connections.get(charger_id)
        assert connection is not None and connection.session is not None, charger_id
        answer = await connection.session.call_payload(action, payload)
        validate_response(action, answer)
        return answer


@contextlib.asynccontextmanager
async def virtual_site(tmp_path: Path, clock: trio.testing.MockClock, *,
                       factory: Callable[..., Csms] = Csms, stop_fleet: bool = True,
                       watchdog: float = WATCHDOG, **config: Any) -> AsyncIterator[VirtualSite]:
    """A running :class:`VirtualSite`, its CSMS made by ``factory`` with ``config`` (more
    CsmsConfig fields), its fleet empty; ``clock`` driven until the block ends.

    On exit the fleet stops (unless not ``stop_fleet``: the chargers are just cancelled),
    then the CSMS shuts down. The whole block runs under ``fail_after(watchdog)``.
    """
    site = VirtualSite(tmp_path, clock, **config)
    async with trio.open_nursery() as driver:
        # The clock is driven outside the watchdog: when it fires, the cleanup it cancels
        # into (closing handshakes, shielded timeouts) still needs time to pass, and a test
        # that waits for what never comes must fail, not hang.
        driver.start_soon(drive_virtual_clock, clock, site.wait_idle)
        try:
            with trio.fail_after(watchdog):
                async with trio.open_nursery() as nursery:
                    site._nursery = nursery
                    await site.start_csms(factory)
                    async with trio.open_nursery() as fleet_nursery:
                        site.fleet = Fleet(site.url, CONFIG, clock=site.now,
                                           rng=random.Random(7), nursery=fleet_nursery)
                        yield site
                        if stop_fleet:
                            await site.fleet.stop()
                        fleet_nursery.cancel_scope.cancel()
                    if site.csms is not None:
                        await site.stop_csms()
                    nursery.cancel_scope.cancel()
        finally:
            driver.cancel_scope.cancel()


async def eventually(condition: Callable[[], bool], *, within: float = 600.0) -> None:
    """Let virtual time pass, a second at a time, until ``condition()`` holds."""
    with trio.fail_after(within):
        # Polling in virtual time is deterministic and cheap: the simulators' state has no
        # event to wait on.
        while not condition():  # noqa: ASYNC110
            await trio.sleep(1)
