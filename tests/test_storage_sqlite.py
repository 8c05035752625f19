"""The SQLite store on its own: group commits, atomic batches, reads, a failed writer.

Real SQLite files in a temporary directory, real aiosqlite thread, real trio-asyncio
loop; the clock is the real one (the commit runs on a thread) and every wait is on the
store's own events under a watchdog.
"""

from __future__ import annotations

import datetime
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from csms.domain.meter import Sample
from csms.domain.model import Charger, Reservation
from csms.storage import codec
from csms.storage.base import Changes, MeterReadingRow, SampleRow
from csms.storage.migrations import MIGRATIONS
from csms.storage.sqlite import LAZY_COMMIT_S, open_sqlite_store

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


async def test_a_flush_takes_rows_queued_before_it_into_one_commit(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    # A handler's rows (the request frame, its state changes) are queued before its
    # answer's flush: they wait for it and share its commit (one fsync per CALL).
    with trio.fail_after(WATCHDOG):
        async with open_sqlite_store(str(tmp_path / "csms.db")) as store:
            for i in range(3):
                store.append_frame("CP_01", "in", f"row {i}", AT)
            await trio.testing.wait_all_tasks_blocked()
            assert store.statistics().commits == 0
            assert store.statistics().pending == 3
            assert not store.busy  # nothing is on the thread or waited for
            await store.flush()
            assert store.statistics().commits == 1
            assert store.statistics().rows_written == 3


async def test_rows_nobody_flushes_are_committed_at_the_lazy_deadline(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    # An answer to one of our CALLs is queued with no flush after it: it goes on its own
    # LAZY_COMMIT_S later (trio time), in a commit of its own.
    path = tmp_path / "csms.db"
    with trio.fail_after(WATCHDOG):
        async with open_sqlite_store(str(path)) as store:
            store.append_frame("CP_01", "in", "unanswered", AT)
            await trio.testing.wait_all_tasks_blocked()
            mock_clock.jump(LAZY_COMMIT_S * 0.9)
            await trio.testing.wait_all_tasks_blocked()
            assert store.statistics().commits == 0
            mock_clock.jump(LAZY_COMMIT_S * 0.2)
            await trio.testing.wait_all_tasks_blocked()  # the writer has taken the row
            assert store.statistics().pending == 0
            await store.flush()
            assert store.statistics().commits == 2  # the lazy batch, then the flush's own
    assert [frame for _, _, frame in _frames(path)] == ["unanswered"]


async def test_wait_idle_waits_for_a_lazy_batch_on_the_database_thread(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    # The virtual-clock driver of the simulator calls wait_idle whenever every task is
    # blocked. A lazy batch (no flush waiting) is work on the thread like any other: if
    # wait_idle returned during it, the driver would spin until the commit ended.
    path = tmp_path / "csms.db"
    with trio.fail_after(WATCHDOG):
        async with open_sqlite_store(str(path)) as store:
            # Another connection holds the write lock: the lazy commit waits on it.
            with closing(sqlite3.connect(path, isolation_level=None)) as other:
                other.execute("BEGIN IMMEDIATE")
                store.append_frame("CP_01", "in", "lazy", AT)
                await trio.testing.wait_all_tasks_blocked()
                mock_clock.jump(LAZY_COMMIT_S * 1.1)
                await trio.testing.wait_all_tasks_blocked()
                assert store.busy  # the batch is on the thread, waiting for the lock
                returned = trio.Event()

                async def waiter() -> None:
                    await store.wait_idle()
                    returned.set()

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(waiter)
                    await trio.testing.wait_all_tasks_blocked()
                    assert not returned.is_set()
                    other.execute("ROLLBACK")
                    await returned.wait()
            assert not store.busy
            assert store.statistics().commits == 1
    assert [frame for _, _, frame in _frames(path)] == ["lazy"]


async def test_a_read_sees_rows_queued_before_it(tmp_path: Path) -> None:
    with trio.fail_after(WATCHDOG):
        async with open_sqlite_store(str(tmp_path / "csms.db")) as store:
            store.append_frame("CP_01", "in", "queued, not flushed", AT)
            rows = await store.read_log("CP_01")
    assert [row.frame for row in rows] == ["queued, not flushed"]


async def test_a_version_4_file_is_migrated_keeping_its_log_and_sequence(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as db:  # a file as the previous CSMS left it
        for number, script in enumerate(MIGRATIONS[:4], start=1):
            db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
        db.executemany(
            "INSERT INTO message_log (charger_id, direction, at, frame) VALUES (?, ?, ?, ?)",
            [("CP_01", "in", AT.isoformat(), f"old {i}") for i in range(3)],
        )
        db.execute("DELETE FROM message_log WHERE frame = 'old 2'")  # seq 3 was used
        db.commit()
    with trio.fail_after(WATCHDOG):
        async with open_sqlite_store(str(path)) as store:
            store.append_frame("CP_01", "abandoned", '{"uniqueId":"x","action":"Reset"}', AT)
            await store.flush()
            rows = await store.read_log("CP_01")
    assert [(row.seq, row.direction, row.frame) for row in rows] == [
        (1, "in", "old 0"),
        (2, "in", "old 1"),
        (4, "abandoned", '{"uniqueId":"x","action":"Reset"}'),  # AUTOINCREMENT kept
    ]
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        # The index of version 5 went with migration 10 (the chain replaced it).
        indexes = {name for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'message_log'")}
        assert "message_log_by_charger" not in indexes


async def test_a_version_6_file_keys_its_reservations_by_charger(tmp_path: Path) -> None:
    """Migration 7: the reservations a file holds are kept, now keyed by charger and
    reservationId, so another charger's reservation 7 no longer replaces one."""
    path = tmp_path / "old.db"
    held = Reservation(7, "CP_01", 1, "T", None, "2024-05-01T13:00:00Z", "Accepted", AT)
    with closing(sqlite3.connect(path)) as db:
        for number, script in enumerate(MIGRATIONS[:6], start=1):
            db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
        db.execute("INSERT INTO reservations (reservation_id, charger_id, data) VALUES (?, ?, ?)",
                   (7, "CP_01", codec.dumps(held)))
        db.commit()
    other = Reservation(7, "CP_02", 2, "U", None, "2024-05-01T13:00:00Z", "Accepted", AT)
    with trio.fail_after(WATCHDOG):
        async with open_sqlite_store(str(path)) as store:
            assert (await store.load_state()).reservations == {("CP_01", 7): held}
            store.save(Changes(reservations=(other,)))
            await store.flush()
            state = await store.load_state()
    assert state.reservations == {("CP_01", 7): held, ("CP_02", 7): other}


def _sample(value: str, measurand: str = "Energy.Active.Import.Register",
            number: float | None = None, **fields: str) -> Sample:
    unit = "W" if measurand.startswith("Power") else "Wh"
    return Sample(fields.get("timestamp", "2026-01-05T08:00:00Z"), value, measurand, unit,
                  fields.get("phase"), fields.get("context"), fields.get("location"),
                  fields.get("format"), number)


async def test_samples_are_stored_one_row_per_meter_values_and_read_back_in_order(
    tmp_path: Path,
) -> None:
    """Every field of every sample comes back, in order; a measurand filter keeps the
    order; one row per MeterValues (migration 8)."""
    path = tmp_path / "csms.db"
    later = AT + datetime.timedelta(seconds=60)
    first = (
        SampleRow("CP_01", 1, 7, AT, _sample("1500", number=1500.0, context="Sample.Periodic")),
        SampleRow("CP_01", 1, 7, AT, _sample("7.4", "Power.Active.Import", 7400.0,
                                             phase="L1", location="Outlet")),
        SampleRow("CP_01", 1, 7, AT, _sample("garbage", format="SignedData")),
    )
    second = (
        SampleRow("CP_02", 2, None, AT, _sample("0", "Power.Active.Import", 0.0)),
        SampleRow("CP_01", 1, 7, later, _sample("2600", number=2600.0,
                                                timestamp="2026-01-05T08:01:00.5+01:00")),
    )
    with trio.fail_after(WATCHDOG):
        async with open_sqlite_store(str(path)) as store:
            store.save(Changes(readings=(
                MeterReadingRow("CP_01", 1, 7, AT, tuple(row.sample for row in first)),)))
            store.save(Changes(readings=(
                MeterReadingRow("CP_02", 2, None, AT, (second[0].sample,)),
                MeterReadingRow("CP_01", 1, 7, later, (second[1].sample,)))))
            await store.flush()
            assert await store.read_samples() == [*first, *second]
            assert await store.read_samples("Power.Active.Import") == [first[1], second[0]]
            assert await store.read_samples("Voltage") == []
    with closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT charger_id, transaction_id FROM meter_readings ORDER BY id")
        assert rows.fetchall() == [("CP_01", 7), ("CP_02", None), ("CP_01", 7)]


async def test_a_version_7_file_keeps_its_samples_in_order(tmp_path: Path) -> None:
    """Migration 8: each sampled-value row of before becomes a reading of one sample,
    every field and the order kept."""
    path = tmp_path / "old.db"
    rows = [
        ("CP_01", 1, 7, AT.isoformat(), "2026-01-05T08:00:00Z", "Energy.Active.Import.Register",
         None, "Wh", "1500", 1500.0, "Sample.Periodic", None, None),
        ("CP_01", 1, 7, AT.isoformat(), "2026-01-05T08:00:00Z", "Power.Active.Import",
         "L1", "W", "7.4", 7400.0, None, "Outlet", None),
        ("CP_02", 2, None, AT.isoformat(), "2026-01-05T08:00:00Z",
         "Energy.Active.Import.Register", None, "Wh", "garbage", None, None, None, "SignedData"),
    ]
    with closing(sqlite3.connect(path)) as db:
        for number, script in enumerate(MIGRATIONS[:7], start=1):
            db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
        db.executemany(
            "INSERT INTO meter_samples (charger_id, connector_id, transaction_id, received_at, "
            "timestamp, measurand, phase, unit, value, number, context, location, format) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        db.commit()
    with trio.fail_after(WATCHDOG):
        async with open_sqlite_store(str(path)) as store:
            samples = await store.read_samples()
    assert samples == [
        SampleRow(cp, connector, tx, AT, Sample(ts, value, measurand, unit, phase, context,
                                                location, fmt, number))
        for (cp, connector, tx, _, ts, measurand, phase, unit, value, number, context,
             location, fmt) in rows
    ]
    with closing(sqlite3.connect(path)) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    assert "meter_samples" not in tables


async def test_last_seen_lives_in_its_own_table_and_never_moves_back(tmp_path: Path) -> None:
    """Migration 9 copies the last-seen times the charger records hold; after it, a
    message's time goes to charger_seen alone, a later one wins, an earlier one is
    ignored, and load_state takes the later of the record's and the table's."""
    path = tmp_path / "old.db"
    old = Charger(id="CP_01", vendor="V", last_seen=AT)
    with closing(sqlite3.connect(path)) as db:
        for number, script in enumerate(MIGRATIONS[:8], start=1):
            db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
        db.execute("INSERT INTO chargers (id, data) VALUES (?, ?)", ("CP_01", codec.dumps(old)))
        db.commit()
    later = AT + datetime.timedelta(minutes=5)
    with trio.fail_after(WATCHDOG):
        async with open_sqlite_store(str(path)) as store:
            assert (await store.load_state()).chargers == {"CP_01": old}
            store.save(Changes(seen=(("CP_01", later),)))
            store.save(Changes(seen=(("CP_01", AT),)))  # queued later, but earlier
            await store.flush()
            assert (await store.load_state()).chargers["CP_01"].last_seen == later
            # The record upserted with a time later still: the later of the two counts.
            latest = attrs.evolve(old, last_seen=later + datetime.timedelta(seconds=1))
            store.save(Changes(chargers=(latest,)))
            await store.flush()
            assert (await store.load_state()).chargers["CP_01"] == latest
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT charger_id, at FROM charger_seen").fetchall() == [
            ("CP_01", later.isoformat())]
        (data,) = db.execute("SELECT data FROM chargers").fetchone()
    assert codec.loads(data, Charger) == latest


async def test_a_version_9_file_chains_each_chargers_rows(tmp_path: Path) -> None:
    """Migration 10: each charger's rows, already there and new, are a chain newest
    first; per-charger reads and the forgetting of an unsent CALL walk it, across the
    rows of before (a deleted one included) and after, and the index of before is gone."""
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as db:
        for number, script in enumerate(MIGRATIONS[:9], start=1):
            db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
        db.executemany(
            "INSERT INTO message_log (charger_id, direction, at, frame) VALUES (?, ?, ?, ?)",
            [("CP_01", "out", AT.isoformat(), '[2,"a","Reset",{}]'),
             ("CP_02", "in", AT.isoformat(), "two 1"),
             ("CP_01", "in", AT.isoformat(), "one 2"),
             ("CP_01", "in", AT.isoformat(), "one 3, deleted"),
             ("CP_02", "in", AT.isoformat(), "two 2")],
        )
        db.execute("DELETE FROM message_log WHERE frame = 'one 3, deleted'")
        db.commit()
    with trio.fail_after(WATCHDOG):
        async with open_sqlite_store(str(path)) as store:
            store.append_frame("CP_01", "in", "one 4", AT)
            store.append_frame("CP_03", "in", "three 1", AT)
            # The old CALL "a" never left: its frame is found through the old rows.
            store.forget_unsent("CP_01", "a", '{"uniqueId":"a","action":"Reset"}')
            await store.flush()
            one = [(row.seq, row.frame) for row in await store.read_log("CP_01")]
            newest = [row.frame for row in await store.read_messages("CP_01", limit=2)]
            two = [row.frame for row in await store.read_messages("CP_02", limit=10)]
            nobody = await store.read_messages("CP_09", limit=10)
    assert one == [(1, '{"uniqueId":"a","action":"Reset"}'), (3, "one 2"), (6, "one 4")]
    assert newest == ["one 4", "one 2"]
    assert two == ["two 2", "two 1"]
    assert nobody == []
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT * FROM log_heads ORDER BY charger_id").fetchall() == [
            ("CP_01", 6), ("CP_02", 5), ("CP_03", 7)]
        assert not db.execute("SELECT name FROM sqlite_master WHERE type = 'index' "
                              "AND tbl_name = 'message_log'").fetchall()


@given(st.lists(st.tuples(st.sampled_from(["CP_01", "CP_02", "CP_03"]), st.booleans()),
                max_size=30),
       st.integers(min_value=1, max_value=40))
@settings(max_examples=25, deadline=None)
def test_a_chargers_rows_are_what_filtering_the_whole_log_gives(
    rows: list[tuple[str, bool]], limit: int
) -> None:
    """Whatever the interleaving, and whether rows went in one commit or many, a
    charger's rows read through its chain are the whole log's rows of that charger, in
    order (read_log) and newest first up to the limit (read_messages)."""
    async def check(path: str) -> None:
        with trio.fail_after(WATCHDOG):
            await check_store(path)

    async def check_store(path: str) -> None:
        async with open_sqlite_store(path) as store:
            for i, (charger_id, commit) in enumerate(rows):
                store.append_frame(charger_id, "in", f"frame {i}", AT)
                if commit:
                    await store.flush()
            await store.flush()
            every = await store.read_log()
            for charger_id in ("CP_01", "CP_02", "CP_03"):
                mine = [row for row in every if row.charger_id == charger_id]
                assert await store.read_log(charger_id) == mine
                assert await store.read_messages(charger_id, limit) == mine[::-1][:limit]

    with tempfile.TemporaryDirectory() as tmp:
        trio.run(check, str(Path(tmp) / "csms.db"))
