"""Where the SQLite connection runs: on aiosqlite's worker thread, or inline on trio's.

This is the only module that imports aiosqlite or trio_asyncio.

* **Threaded** (the default, and production's): aiosqlite keeps the connection on its
  own thread, bridged into trio with trio-asyncio; a commit's fsync never blocks the
  connections' event loop.
* **Inline**: the connection runs on trio's own thread and blocks it for each batch. This
  is for virtual-time runs (the simulator's embedded CSMS) only: there, a worker thread's
  real-time timing decides which of several tasks woken at the same virtual instant runs
  first (a commit that ends a microsecond later lets another charger's frame through
  first), so a busy machine changes the run. Inline, nothing in the run depends on wall
  time. It costs nothing there: the temporary database runs with ``synchronous=OFF``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

import aiosqlite
import trio
import trio.lowlevel
import trio_asyncio

T = TypeVar("T")


class Database(Protocol):
    """One SQLite connection, used only through :meth:`run`."""

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(connection)``, on the connection's thread; its result."""
        ...


async def _aio(loop: Any, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    # The loop is passed explicitly: callers need not be tasks started inside it.
    result: T = await trio_asyncio.aio_as_trio(fn, loop=loop)(*args)
    return result


class _ThreadedDatabase:
    def __init__(self, loop: Any, db: aiosqlite.Connection) -> None:
        self._loop = loop
        self._db = db

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on aiosqlite's database thread, in one crossing.

        Every awaited aiosqlite call costs a trip trio -> asyncio -> thread -> asyncio ->
        trio (about 160 us of CPU); a batch of seven statements and its commit made eight
        of them. aiosqlite's public methods are each one ``Connection._execute(fn)``; this
        calls the same primitive once with a function that does the whole batch (aiosqlite
        has no public way to run a function on its thread). The sqlite3 connection is only
        ever touched on aiosqlite's own thread, as aiosqlite requires.
        """
        db = self._db

        def run() -> T:
            return fn(db._conn)

        result: T = await _aio(self._loop, db._execute, run)
        return result


class _InlineDatabase:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` here and now; then let other tasks run (the work is
        done either way, so the checkpoint never cancels it)."""
        result = fn(self._conn)
        await trio.lowlevel.cancel_shielded_checkpoint()
        return result


async def _connect(path: str) -> aiosqlite.Connection:
    return await aiosqlite.connect(path)


@asynccontextmanager
async def open_database(path: str, *, inline: bool = False) -> AsyncIterator[Database]:
    """Open the SQLite file at ``path``; close it when the context ends (cancellation
    included: the close is shielded)."""
    if inline:
        conn = sqlite3.connect(path)
        try:
            yield _InlineDatabase(conn)
        finally:
            conn.close()
        return
    async with trio_asyncio.open_loop() as loop:
        db = await _aio(loop, _connect, path)
        try:
            yield _ThreadedDatabase(loop, db)
        finally:
            with trio.CancelScope(shield=True):
                await _aio(loop, db.close)
