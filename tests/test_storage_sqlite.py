"""The SQLite store on its own: group commits, atomic batches, reads, a failed writer.

Real SQLite files in a temporary directory, real aiosqlite thread, real trio-asyncio
loop; the clock is the real one (the commit runs on a thread) and every wait is on the
store's own events under a watchdog.
"""

from __future__ import annotations

import datetime
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
import trio

from csms.storage.sqlite import open_sqlite_store

AT = datetime.datetime(2026, 1, 5, 8, 0, tzinfo=datetime.UTC)
WATCHDOG = 20


def _frames(path: Path) -> list[tuple[str, str, str]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(
            "SELECT charger_id, direction, frame FROM message_log ORDER BY seq"
        ).fetchall()


async def test_rows_queued_before_a_flush_are_committed_in_order(tmp_path: Path) -> None:
    path = tmp_path / "csms.db"
    with trio.fail_after(WATCHDOG):
        async with open_sqlite_store(str(path)) as store:
            for i in range(50):
                store.append_frame("CP_01", "in", f'[2,"{i}","Heartbeat",{{}}]', AT)
            await store.flush()
            assert _frames(path) == [
                ("CP_01", "in", f'[2,"{i}","Heartbeat",{{}}]') for i in range(50)
            ]
            stats = store.statistics()
            assert stats.rows_written == 50
            assert not store.busy
            rows = await store.read_log("CP_01")
    assert [row.frame for row in rows] == [f'[2,"{i}","Heartbeat",{{}}]' for i in range(50)]


async def test_many_flushes_share_group_commits(tmp_path: Path) -> None:
    path = tmp_path / "csms.db"

    async def writer(store_flush: object, i: int) -> None:
        store.append_frame(f"CP_{i:02d}", "in", "[2,\"1\",\"Heartbeat\",{}]", AT)
        await store.flush()

    with trio.fail_after(WATCHDOG):
        async with open_sqlite_store(str(path)) as store:
            async with trio.open_nursery() as nursery:
                for i in range(100):
                    nursery.start_soon(writer, store.flush, i)
            stats = store.statistics()
    assert stats.rows_written == 100
    # 100 flushes queued in one scheduling round: far fewer commits than flushes.
    assert stats.commits < 10
    assert len(_frames(path)) == 100


async def test_a_failing_batch_commits_nothing_and_stops_the_store(tmp_path: Path) -> None:
    path = tmp_path / "csms.db"
    flushed: list[str] = []
    with trio.fail_after(WATCHDOG), pytest.raises(BaseExceptionGroup) as failure:
        async with open_sqlite_store(str(path)) as store:
            store.append_frame("CP_01", "in", "committed", AT)
            await store.flush()
            store.append_frame("CP_01", "in", "same batch as the bad row", AT)
            store._put("INSERT INTO no_such_table (x) VALUES (?)", (1,))
            try:
                await store.flush()
            except RuntimeError as exc:
                flushed.append(str(exc))
            await trio.sleep_forever()  # the failed writer ends the store
    # The writer's error ends the store (nothing more could be made durable) ...
    assert failure.group_contains(sqlite3.OperationalError, match="no_such_table")
    # ... a flush waiting on it is told so, if it ran before the cancellation ...
    assert flushed in ([], ["the SQLite writer has failed"])
    # ... and nothing of the failed batch is committed, not even the row queued before
    # the failing statement: a batch is one transaction.
    assert [frame for _, _, frame in _frames(path)] == ["committed"]
