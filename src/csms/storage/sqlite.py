"""The SQLite store: one writer task over a connection on its own thread (see sqlite_db).

One writer task takes
every queued row, writes them in one transaction (``executemany`` per statement) and
commits: durability costs one fsync per group, not per message. WAL mode; ``synchronous``
is FULL by default so that a commit survives power loss, not only a crash.
"""

from __future__ import annotations

import collections
import datetime
import functools
import logging
import operator
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import orjson
import trio

from csms.domain.meter import Sample
from csms.domain.model import (
    Anomaly,
    Charger,
    Evse,
    RemoteCommand,
    Reservation,
    SentProfile,
    Session,
)
from csms.domain.replace import replace
from csms.domain.state import DomainState, start_key
from csms.registry import Registration
from csms.storage import codec
from csms.storage.base import Changes, IdTagRow, LogRow, SampleRow, StoreStatistics
from csms.storage.migrations import MIGRATIONS
from csms.storage.sqlite_db import Database, open_database
from ocppj import frames

log = logging.getLogger("csms.storage")


# A row is linked to the charger's row before it (``prev``); the trigger of migration 10
# then makes it the charger's head in ``log_heads``.
_INSERT_FRAME = (
    "INSERT INTO message_log (charger_id, direction, at, frame, prev) VALUES (?1, ?2, ?3, ?4, "
    "(SELECT seq FROM log_heads WHERE charger_id = ?1))"
)
# The rows of charger ?1: the chain from its head, newest first. SQLite walks it a row at
# a time (each step finds one row, the only one in the recursive query's queue) and hands
# each on as it is found, so a query that stops early stops the walk.
_CHAIN_START = (
    "WITH RECURSIVE chain (seq, charger_id, direction, at, frame, prev) AS ("
    "SELECT seq, charger_id, direction, at, frame, prev FROM message_log "
    "WHERE seq = (SELECT seq FROM log_heads WHERE charger_id = ?1) "
    "UNION ALL SELECT m.seq, m.charger_id, m.direction, m.at, m.frame, m.prev "
    "FROM message_log AS m JOIN chain ON m.seq = chain.prev"
)
_CHAIN = _CHAIN_START + ") "
# The newest ?2 rows of charger ?1: a LIMIT in the recursive part bounds the walk (by
# SQLite's documented rule: it caps the rows ever added to the chain, the first included).
_CHAIN_NEWEST = _CHAIN_START + " LIMIT ?2) "
# A CALL of ours that never left: its logged frame is replaced by the summary of its
# abandoned row (action, size, hash): a payload nobody received is not kept. The frame is
# among the charger's last rows: the search walks its chain and stops at the first match.
_FORGET_UNSENT = (
    _CHAIN + "UPDATE message_log SET frame = ?2 WHERE seq = (SELECT seq FROM chain "
    "WHERE direction = 'out' AND substr(frame, 1, length(?3)) = ?3 LIMIT 1)"
)
_LOG_COLUMNS = "seq, charger_id, direction, at, frame"
_UPSERT_CHARGER = "INSERT OR REPLACE INTO chargers (id, data) VALUES (?, ?)"
# A charger's last-seen time, which every message moves, has a small table of its own:
# rewriting it inside the charger's JSON record dirtied a page of ``chargers`` per
# message (issue 17, point 4). Written as codec.dumps would (ISO 8601 in UTC), and never
# moved back: ISO strings of one offset sort as times. The charger's record keeps the
# time of its last upsert; load_state takes the later of the two.
_UPSERT_SEEN = (
    "INSERT INTO charger_seen (charger_id, at) VALUES (?2, ?1) ON CONFLICT (charger_id) "
    "DO UPDATE SET at = excluded.at WHERE excluded.at > charger_seen.at"
)
_UPSERT_EVSE = "INSERT OR REPLACE INTO evses (charger_id, connector_id, data) VALUES (?, ?, ?)"
_UPSERT_SESSION = (
    "INSERT OR REPLACE INTO sessions (transaction_id, charger_id, connector_id, open, data) "
    "VALUES (?, ?, ?, ?, ?)"
)
_UPSERT_ANOMALY = "INSERT OR REPLACE INTO anomalies (idx, data) VALUES (?, ?)"
# One row per MeterValues (per MeterSampled event): its samples, a JSON array of
# [timestamp, value, measurand, unit, phase, context, location, format, number] (the
# fields of Sample, in order), in the order received.
_INSERT_READING = (
    "INSERT INTO meter_readings (charger_id, connector_id, transaction_id, received_at, "
    "samples) VALUES (?, ?, ?, ?, ?)"
)
_UPSERT_PROFILE = (
    "INSERT OR REPLACE INTO charging_profiles (charger_id, connector_id, data) VALUES (?, ?, ?)"
)
_UPSERT_COUNTER = "INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)"
_DELETE_PROFILE = "DELETE FROM charging_profiles WHERE charger_id = ? AND connector_id = ?"
_UPSERT_RESERVATION = (
    "INSERT OR REPLACE INTO reservations (reservation_id, charger_id, data) VALUES (?, ?, ?)"
)
_UPSERT_METER_KEY = (
    "INSERT OR REPLACE INTO meter_keys (charger_id, connector_id, key) VALUES (?, ?, ?)"
)
_UPSERT_REMOTE_COMMAND = "INSERT OR REPLACE INTO remote_commands (idx, data) VALUES (?, ?)"
_UPSERT_ID_TAG = (
    "INSERT OR REPLACE INTO id_tags (id_tag, status, expiry_date, parent_id_tag, updated_at) "
    "VALUES (?, ?, ?, ?, ?)"
)
_DELETE_ID_TAG = "DELETE FROM id_tags WHERE id_tag = ?"
_UPSERT_REGISTRATION = "INSERT OR REPLACE INTO registrations (charger_id, data) VALUES (?, ?)"
_DELETE_REGISTRATION = "DELETE FROM registrations WHERE charger_id = ?"


#: SQLite's primary result codes of a disk that refuses for now: I/O error, full, busy,
#: locked, cannot open. Other errors (no such table, a corrupt file) are not retried.
_DISK_ERRORS = frozenset({
    sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED,
    sqlite3.SQLITE_CANTOPEN,
})


def disk_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the disk refusing a write for now (worth retrying)."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code is not None and code & 0xFF in _DISK_ERRORS
    return isinstance(exc, OSError)


#: Seconds before the first retry of a write the disk refused, and the longest wait.
RETRY_FIRST_S, RETRY_MAX_S = 0.5, 30.0
#: Seconds (trio time) that rows nobody flushes wait for a flush to take them along.
LAZY_COMMIT_S = 0.05


class SqliteStore:
    """A :class:`~csms.storage.base.Store` on one SQLite file; see :func:`open_sqlite_store`."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._queue: collections.deque[tuple[str, tuple[Any, ...]] | trio.Event] = (
            collections.deque()
        )
        #: Set when the writer has something to do: rows arrived in an empty queue, or a
        #: flush was asked for.
        self._wakeup = trio.Event()
        #: Set when a flush is asked for (cuts a lazy wait short).
        self._flush_wanted = trio.Event()
        self._waiters = 0
        self._idle = trio.Event()
        self._idle.set()
        self._in_flight = False
        self._reads = 0
        self._commits = 0
        self._rows = 0
        self._flushes = 0
        self._failed: BaseException | None = None
        #: Why the database cannot be written now (None: it can): a disk or I/O error
        #: the writer is retrying.
        self.unavailable: str | None = None

    # -- writing -------------------------------------------------------------------------

    def _put(self, statement: str, params: tuple[Any, ...]) -> None:
        # Rows alone do not start a batch: a handler's rows are followed by its answer's
        # flush, which takes them along in the same commit. Rows nobody flushes (an
        # answer to one of our CALLs, a connection event) go at most LAZY_COMMIT_S later.
        if not self._queue:
            self._wakeup.set()
        self._queue.append((statement, params))

    async def wait_idle(self) -> None:
        """Return once no flush or read waits for the database thread and nothing is on
        it. Rows queued without a flush may remain (see :attr:`busy`)."""
        await self._idle.wait()

    def _not_idle(self) -> None:
        # Invariant: while busy, idle is clear. A virtual-clock driver that found idle set
        # during a commit would return from wait_idle at once and spin until the commit
        # ended, taking the GIL from the database thread that does the commit.
        if self._idle.is_set():
            self._idle = trio.Event()

    def _idle_unless_busy(self) -> None:
        if not self.busy:
            self._idle.set()

    def append_frame(
        self, charger_id: str, direction: str, frame: str, at: datetime.datetime
    ) -> None:
        """Queue one message-log row."""
        self._put(_INSERT_FRAME, (charger_id, direction, at.isoformat(), frame))

    def forget_unsent(self, charger_id: str, unique_id: str, summary: str) -> None:
        """Queue the replacement of our logged CALL ``unique_id``, which never left, by
        ``summary`` (its abandoned row's text)."""
        self._put(_FORGET_UNSENT, (charger_id, summary, frames.encode_call_prefix(unique_id)))

    def save(self, changes: Changes) -> None:
        """Queue projection changes."""
        for charger in changes.chargers:
            self._put(_UPSERT_CHARGER, (charger.id, codec.dumps(charger)))
        for charger_id, seen in changes.seen:
            if seen is not None:
                self._put(_UPSERT_SEEN, (seen.isoformat(), charger_id))
        for evse in changes.evses:
            self._put(_UPSERT_EVSE, (evse.charger_id, evse.connector_id, codec.dumps(evse)))
        for session in changes.sessions:
            self._put(
                _UPSERT_SESSION,
                (
                    session.transaction_id,
                    session.charger_id,
                    session.connector_id,
                    int(session.open),
                    codec.dumps(session),
                ),
            )
        for idx, anomaly in changes.anomalies:
            self._put(_UPSERT_ANOMALY, (idx, codec.dumps(anomaly)))
        for reading in changes.readings:
            self._put(_INSERT_READING, (
                reading.charger_id, reading.connector_id, reading.transaction_id,
                reading.received_at.isoformat(),
                orjson.dumps([_sample_fields(sample) for sample in reading.samples]).decode(),
            ))
        for profile in changes.profiles:
            self._put(_UPSERT_PROFILE, (profile.charger_id, profile.connector_id,
                                        codec.dumps(profile)))
        if changes.next_transaction_id is not None:
            self._put(_UPSERT_COUNTER, ("next_transaction_id", changes.next_transaction_id))
        for charger_id, connector_id in changes.removed_profiles:
            self._put(_DELETE_PROFILE, (charger_id, connector_id))
        for reservation in changes.reservations:
            self._put(_UPSERT_RESERVATION, (reservation.reservation_id, reservation.charger_id,
                                            codec.dumps(reservation)))
        for (charger_id, connector_id), key in changes.meter_keys:
            self._put(_UPSERT_METER_KEY, (charger_id, connector_id, key))
        for idx, command in changes.remote_commands:
            self._put(_UPSERT_REMOTE_COMMAND, (idx, codec.dumps(command)))

    def put_id_tag(self, row: IdTagRow) -> None:
        """Queue an idTag's authorization data (insert or replace)."""
        self._put(_UPSERT_ID_TAG, (
            row.id_tag, row.status,
            row.expiry_date.isoformat() if row.expiry_date is not None else None,
            row.parent_id_tag,
            row.updated_at.isoformat() if row.updated_at is not None else None,
        ))

    def delete_id_tag(self, id_tag: str) -> None:
        """Queue the removal of an idTag's authorization data."""
        self._put(_DELETE_ID_TAG, (id_tag,))

    def put_registration(self, registration: Registration) -> None:
        """Queue a charger's registration (insert or replace)."""
        self._put(_UPSERT_REGISTRATION,
                  (registration.charge_point_id, codec.dumps(registration)))

    def delete_registration(self, charger_id: str) -> None:
        """Queue the removal of a charger's registration."""
        self._put(_DELETE_REGISTRATION, (charger_id,))

    async def flush(self) -> None:
        """Return once everything queued so far is committed.

        Raises:
            RuntimeError: the writer failed; nothing more can be made durable.
        """
        if self._failed is not None:
            raise RuntimeError("the SQLite writer has failed") from self._failed
        done = trio.Event()
        self._queue.append(done)
        self._waiters += 1
        self._not_idle()
        self._wakeup.set()
        self._flush_wanted.set()
        await done.wait()
        if self._failed is not None:
            raise RuntimeError("the SQLite writer has failed") from self._failed

    async def _writer(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup = trio.Event()
                while self._queue:
                    if not self._waiters:
                        # Rows nobody waits for yet: the next flush takes them along,
                        # or they go on their own after LAZY_COMMIT_S. One commit (one
                        # fsync) per answered CALL, not one for the request and one for
                        # the answer.
                        with trio.move_on_after(LAZY_COMMIT_S):
                            await self._flush_wanted.wait()
                    self._flush_wanted = trio.Event()
                    await self._write_until_stored()
                    # Idle as soon as no flush waits, also while lazy rows remain: a
                    # virtual clock waits for idle and must then advance to the lazy
                    # deadline.
                    self._idle_unless_busy()
        except Exception as exc:
            log.exception("the SQLite writer failed")
            self._failed = exc
            self._waiters = 0
            for item in self._queue:
                if isinstance(item, trio.Event):
                    item.set()
            self._idle.set()
            raise

    async def _write_until_stored(self) -> None:
        """Write what is queued; on a disk or I/O error, keep it queued, tell loudly, and
        try again (0.5 s, doubling to 30 s) until the disk takes it.

        Meanwhile every flush waits, so no answer leaves that is not stored (chargers
        time out and send again, as they would to a CSMS that is down); the process and
        every connection stay up. Other errors (a bug, a corrupt file) end the writer.
        """
        delay, failed_at, attempts = RETRY_FIRST_S, None, 0
        while True:
            try:
                # A batch, once taken off the queue, is written and committed even when
                # the store is being closed by cancellation: otherwise its rows would be
                # neither queued nor committed.
                with trio.CancelScope(shield=True):
                    await self._write_batch()
            except (sqlite3.OperationalError, OSError) as exc:
                if not disk_error(exc):
                    raise
                attempts += 1
                if failed_at is None:
                    failed_at = trio.current_time()
                self.unavailable = str(exc)
                if attempts == 1 or attempts % 10 == 0:
                    log.error("the database cannot be written (%s): nothing is acknowledged "
                              "until it can; retrying (attempt %d, %d rows waiting)",
                              exc, attempts, len(self._queue))
                await trio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            if failed_at is not None:
                log.warning("the database is written again after %.1f s and %d failed "
                            "attempts", trio.current_time() - failed_at, attempts)
                self.unavailable = None
            return

    async def _write_batch(self) -> None:
        """Write and commit everything queued as one transaction; on failure everything
        is queued again, in order, and the error raised."""
        items = list(self._queue)
        self._queue.clear()
        groups: dict[str, list[tuple[Any, ...]]] = {}
        waiters: list[trio.Event] = []
        rows = 0
        # Everything queued goes into one transaction: a handler's state changes and the
        # answer frame queued after them must never be split across two commits.
        for item in items:
            if isinstance(item, trio.Event):
                waiters.append(item)
            else:
                groups.setdefault(item[0], []).append(item[1])
                rows += 1
        if _FORGET_UNSENT in groups:
            groups[_FORGET_UNSENT] = groups.pop(_FORGET_UNSENT)  # after the frames inserted
        self._in_flight = True
        # A lazy batch starts with no flush waiting, so nothing has cleared idle yet.
        self._not_idle()
        try:
            await self._database.run(functools.partial(_write_groups, groups))
        except BaseException:
            self._queue.extendleft(reversed(items))
            raise
        finally:
            self._in_flight = False
        self._waiters -= len(waiters)
        self._commits += 1
        self._rows += rows
        self._flushes += len(waiters)
        for waiter in waiters:
            waiter.set()

    async def _drain(self) -> None:
        """Write everything queued, without the writer task (at close). Rows the disk
        still refuses are lost with the process; none of them was acknowledged."""
        try:
            while self._queue:
                await self._write_batch()
        except (sqlite3.OperationalError, OSError) as exc:
            if not disk_error(exc):
                raise
            log.error("closing with %d rows the database could not take (%s); none was "
                      "acknowledged", len(self._queue), exc)
        self._idle_unless_busy()

    def statistics(self) -> StoreStatistics:
        """A snapshot of the writer's counters."""
        return StoreStatistics(len(self._queue), self._in_flight, self._commits, self._rows,
                               self._flushes, self.unavailable)

    @property
    def busy(self) -> bool:
        """True while a write or a read is on the database thread, or a flush waits for
        one. Rows queued without a flush do not count: nothing works on them until the
        lazy-commit deadline, a trio timer (a virtual clock may advance to it)."""
        return self._in_flight or self._waiters > 0 or self._reads > 0

    # -- reading -------------------------------------------------------------------------

    async def _fetchall(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        # A read sees everything recorded before it: what is queued is committed first.
        if self._queue:
            await self.flush()
        # Reads count as work on the database thread too (see busy / wait_idle).
        self._reads += 1
        self._not_idle()
        try:
            rows = await self._database.run(functools.partial(_fetchall, sql, params))
        finally:
            self._reads -= 1
            self._idle_unless_busy()
        return rows

    async def load_state(self) -> DomainState:
        """The domain state as the projection tables hold it."""
        state = DomainState()
        for (data,) in await self._fetchall("SELECT data FROM chargers ORDER BY id"):
            charger = codec.loads(data, Charger)
            state.chargers[charger.id] = charger
        for charger_id, at in await self._fetchall("SELECT charger_id, at FROM charger_seen"):
            known = state.chargers.get(charger_id)
            seen = datetime.datetime.fromisoformat(at)
            if known is not None and (known.last_seen is None or seen > known.last_seen):
                state.chargers[charger_id] = replace(known, last_seen=seen)
        for (data,) in await self._fetchall(
            "SELECT data FROM evses ORDER BY charger_id, connector_id"
        ):
            evse = codec.loads(data, Evse)
            state.evses[(evse.charger_id, evse.connector_id)] = evse
        for (data,) in await self._fetchall("SELECT data FROM sessions ORDER BY transaction_id"):
            session = codec.loads(data, Session)
            state.sessions[session.transaction_id] = session
            if session.open:
                state.set_open(session)
            state.start_keys[
                start_key(
                    session.charger_id,
                    session.connector_id,
                    session.id_tag,
                    session.meter_start,
                    session.start_timestamp,
                )
            ] = session.transaction_id
        for (data,) in await self._fetchall("SELECT data FROM anomalies ORDER BY idx"):
            anomaly = codec.loads(data, Anomaly)
            state.anomalies.append(anomaly)
            if anomaly.key is not None:
                state.unknown_stops.add((anomaly.charger_id, anomaly.key))
        for (data,) in await self._fetchall(
            "SELECT data FROM charging_profiles ORDER BY charger_id, connector_id"
        ):
            profile = codec.loads(data, SentProfile)
            state.profiles[(profile.charger_id, profile.connector_id)] = profile
        for (data,) in await self._fetchall(
            "SELECT data FROM reservations ORDER BY charger_id, reservation_id"
        ):
            reservation = codec.loads(data, Reservation)
            state.reservations[(reservation.charger_id, reservation.reservation_id)] = (
                reservation)
        for charger_id, connector_id, key in await self._fetchall(
            "SELECT charger_id, connector_id, key FROM meter_keys"
        ):
            state.meter_keys[(charger_id, connector_id)] = key
        for (data,) in await self._fetchall("SELECT data FROM remote_commands ORDER BY idx"):
            state.remote_commands.append(codec.loads(data, RemoteCommand))
        for (value,) in await self._fetchall(
            "SELECT value FROM counters WHERE name = 'next_transaction_id'"
        ):
            state.next_transaction_id = int(value)
        return state

    async def read_log(self, charger_id: str | None = None) -> list[LogRow]:
        """The message log in order, optionally for one charger."""
        if charger_id is None:
            rows = await self._fetchall(f"SELECT {_LOG_COLUMNS} FROM message_log ORDER BY seq", ())
        else:
            rows = await self._fetchall(
                f"{_CHAIN}SELECT {_LOG_COLUMNS} FROM chain ORDER BY seq", (charger_id,))
        return [_log_row(*row) for row in rows]

    async def read_messages(
        self, charger_id: str | None = None, limit: int = 100
    ) -> list[LogRow]:
        """The newest ``limit`` rows of the message log, newest first."""
        if charger_id is None:
            rows = await self._fetchall(
                f"SELECT {_LOG_COLUMNS} FROM message_log ORDER BY seq DESC LIMIT ?", (limit,))
        else:
            rows = await self._fetchall(
                f"{_CHAIN_NEWEST}SELECT {_LOG_COLUMNS} FROM chain ORDER BY seq DESC",
                (charger_id, limit))
        return [_log_row(*row) for row in rows]

    async def read_id_tags(self) -> list[IdTagRow]:
        """Every idTag the operator set, by idTag."""
        rows = await self._fetchall(
            "SELECT id_tag, status, expiry_date, parent_id_tag, updated_at FROM id_tags "
            "ORDER BY id_tag"
        )
        return [
            IdTagRow(
                tag, status,
                datetime.datetime.fromisoformat(expiry) if expiry is not None else None,
                parent,
                datetime.datetime.fromisoformat(updated) if updated is not None else None,
            )
            for tag, status, expiry, parent, updated in rows
        ]

    async def read_registrations(self) -> list[Registration]:
        """Every registration, by charger id."""
        rows = await self._fetchall("SELECT data FROM registrations ORDER BY charger_id")
        return [codec.loads(data, Registration) for (data,) in rows]

    async def read_samples(self, measurand: str | None = None) -> list[SampleRow]:
        """Every stored sampled value (of one measurand, if given), in order."""
        rows = await self._fetchall(
            "SELECT charger_id, connector_id, transaction_id, received_at, samples "
            "FROM meter_readings ORDER BY id"
        )
        found = []
        for cp, connector, tx, received, samples in rows:
            at = datetime.datetime.fromisoformat(received)
            for fields in orjson.loads(samples):
                sample = Sample(*fields)
                if measurand is None or sample.measurand == measurand:
                    found.append(SampleRow(cp, connector, tx, at, sample))
        return found


#: The fields of a Sample, in order: what read_samples gives back to ``Sample(*fields)``.
_sample_fields = operator.attrgetter(*(a.name for a in attrs.fields(Sample)))


def _write_groups(
    groups: dict[str, list[tuple[Any, ...]]], conn: sqlite3.Connection
) -> None:
    """One transaction: every group's statement over its rows, then the commit."""
    try:
        for statement, params in groups.items():
            conn.executemany(statement, params)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


def _fetchall(sql: str, params: tuple[Any, ...], conn: sqlite3.Connection) -> list[Any]:
    cursor = conn.execute(sql, params)
    try:
        return cursor.fetchall()
    finally:
        cursor.close()


def _migrate(path: str, conn: sqlite3.Connection) -> None:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > len(MIGRATIONS):
        raise RuntimeError(f"{path}: schema version {version} is newer than this CSMS knows")
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        log.info("%s: migrating the schema to version %d", path, number)
        conn.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")


def _configure(synchronous: str, conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode = WAL").fetchall()
    conn.execute(f"PRAGMA synchronous = {synchronous}")


def _log_row(seq: int, charger_id: str, direction: str, at: str, frame: str) -> LogRow:
    try:
        moment = datetime.datetime.fromisoformat(at)
    except (TypeError, ValueError):
        raise ValueError(f"message_log row {seq} ({charger_id}, {direction}): its time "
                         f"{at!r} is not a date-time") from None
    return LogRow(seq, charger_id, direction, moment, frame)


@asynccontextmanager
async def open_sqlite_store(
    path: str, *, synchronous: str = "FULL", inline: bool = False
) -> AsyncIterator[SqliteStore]:
    """Open (creating and migrating as needed) the SQLite store at ``path``.

    ``inline`` runs SQLite on trio's thread (virtual-time runs only: see
    :mod:`csms.storage.sqlite_db`). Everything queued is committed before the file is
    closed, also when the context is left by cancellation.
    """
    async with open_database(path, inline=inline) as database:
        await database.run(functools.partial(_configure, synchronous))
        await database.run(functools.partial(_migrate, path))
        store = SqliteStore(database)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(store._writer)
                try:
                    yield store
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            # Whatever is still queued (a shutdown by cancellation included) is written
            # before the file is closed.
            with trio.CancelScope(shield=True), trio.move_on_after(30):
                await store._drain()
