"""Versioned schema migrations of the SQLite store, applied in order at open.

The version lives in ``PRAGMA user_version``. A migration is never edited once released;
a change is a new entry at the end.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: the message log and the domain projections.
    """
    CREATE TABLE message_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        charger_id TEXT NOT NULL,
        direction TEXT NOT NULL CHECK (direction IN ('in', 'out', 'connect', 'disconnect')),
        at TEXT NOT NULL,
        frame TEXT NOT NULL
    );
    CREATE INDEX message_log_by_charger ON message_log (charger_id, seq);
    CREATE TABLE chargers (id TEXT PRIMARY KEY, data TEXT NOT NULL);
    CREATE TABLE evses (
        charger_id TEXT NOT NULL,
        connector_id INTEGER NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (charger_id, connector_id)
    );
    CREATE TABLE sessions (
        transaction_id INTEGER PRIMARY KEY,
        charger_id TEXT NOT NULL,
        connector_id INTEGER NOT NULL,
        open INTEGER NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX sessions_open ON sessions (open, charger_id, connector_id);
    CREATE TABLE anomalies (idx INTEGER PRIMARY KEY, data TEXT NOT NULL);
    CREATE TABLE meter_samples (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        charger_id TEXT NOT NULL,
        connector_id INTEGER NOT NULL,
        transaction_id INTEGER,
        received_at TEXT NOT NULL,
        timestamp TEXT NOT NULL,
        measurand TEXT NOT NULL,
        phase TEXT,
        unit TEXT NOT NULL,
        value TEXT NOT NULL,
        number REAL,
        context TEXT,
        location TEXT,
        format TEXT
    );
    CREATE INDEX meter_samples_by_tx ON meter_samples (transaction_id);
    CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    """,
    # 2: the last charging profile sent to each connector, with the charger's answer.
    """
    CREATE TABLE charging_profiles (
        charger_id TEXT NOT NULL,
        connector_id INTEGER NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (charger_id, connector_id)
    );
    """,
    # 3: reservations and remote start/stop answers (domain projections, rebuilt by
    # replay), and the operator's idTag authorization data (not OCPP-derived: not replayed).
    """
    CREATE TABLE reservations (
        reservation_id INTEGER PRIMARY KEY,
        charger_id TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE TABLE remote_commands (idx INTEGER PRIMARY KEY, data TEXT NOT NULL);
    CREATE TABLE id_tags (
        id_tag TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        expiry_date TEXT,
        parent_id_tag TEXT,
        updated_at TEXT
    );
    """,
    # 4: the last MeterValues of each connector, to recognise a retransmission after a
    # restart too.
    """
    CREATE TABLE meter_keys (
        charger_id TEXT NOT NULL,
        connector_id INTEGER NOT NULL,
        key TEXT NOT NULL,
        PRIMARY KEY (charger_id, connector_id)
    );
    """,
    # 5: 'abandoned' rows in the message log: a CALL of ours given up without an answer,
    # so that replay drops a late answer to it as the live CSMS did. SQLite cannot alter
    # a CHECK constraint: the table is rebuilt (seq values and the AUTOINCREMENT counter
    # are kept).
    """
    CREATE TABLE message_log_v5 (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        charger_id TEXT NOT NULL,
        direction TEXT NOT NULL
            CHECK (direction IN ('in', 'out', 'connect', 'disconnect', 'abandoned')),
        at TEXT NOT NULL,
        frame TEXT NOT NULL
    );
    INSERT INTO message_log_v5 (seq, charger_id, direction, at, frame)
        SELECT seq, charger_id, direction, at, frame FROM message_log ORDER BY seq;
    UPDATE sqlite_sequence
        SET seq = max(seq, coalesce(
            (SELECT seq FROM sqlite_sequence WHERE name = 'message_log'), 0))
        WHERE name = 'message_log_v5';
    DROP TABLE message_log;
    ALTER TABLE message_log_v5 RENAME TO message_log;
    CREATE INDEX message_log_by_charger ON message_log (charger_id, seq);
    """,
    # 6: the operator's charger registry (status, security profile, password hash; not
    # OCPP-derived: not replayed).
    """
    CREATE TABLE registrations (charger_id TEXT PRIMARY KEY, data TEXT NOT NULL);
    """,
    # 7: reservations keyed by charger and reservationId: two chargers' reservation 7 are
    # two reservations. (Ones a collision overwrote before are in the message log:
    # `replay` shows them.)
    """
    CREATE TABLE reservations_v7 (
        charger_id TEXT NOT NULL,
        reservation_id INTEGER NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (charger_id, reservation_id)
    );
    INSERT INTO reservations_v7 (charger_id, reservation_id, data)
        SELECT charger_id, reservation_id, data FROM reservations;
    DROP TABLE reservations;
    ALTER TABLE reservations_v7 RENAME TO reservations;
    """,
    # 8: one row per MeterValues instead of one per sampled value: its samples are a
    # JSON array of [timestamp, value, measurand, unit, phase, context, location, format,
    # number]. Eight rows of thirteen columns, an AUTOINCREMENT counter and an index were
    # more than half of the database thread's work per MeterValues (issue 17, point 4).
    # The rows of before become readings of one sample each, ids and order kept. Nothing
    # queried samples by transaction: the index goes.
    """
    CREATE TABLE meter_readings (
        id INTEGER PRIMARY KEY,
        charger_id TEXT NOT NULL,
        connector_id INTEGER NOT NULL,
        transaction_id INTEGER,
        received_at TEXT NOT NULL,
        samples TEXT NOT NULL
    );
    INSERT INTO meter_readings (id, charger_id, connector_id, transaction_id, received_at,
                                samples)
        SELECT id, charger_id, connector_id, transaction_id, received_at,
               json_array(json_array(timestamp, value, measurand, unit, phase, context,
                                     location, format, number))
        FROM meter_samples ORDER BY id;
    DROP TABLE meter_samples;
    """,
    # 9: a charger's last-seen time in a small table of its own, instead of rewritten in
    # its JSON record on every message (a page of ``chargers`` dirtied per message, and
    # the JSON parsed twice). The times the records hold are copied.
    """
    CREATE TABLE charger_seen (charger_id TEXT PRIMARY KEY, at TEXT NOT NULL) WITHOUT ROWID;
    INSERT INTO charger_seen (charger_id, at)
        SELECT id, json_extract(data, '$.last_seen') FROM chargers
        WHERE json_extract(data, '$.last_seen') IS NOT NULL;
    """,
    # 10: a charger's rows of the message log are a chain, newest first: each row keeps
    # ``prev``, the seq of the charger's row before it, and ``log_heads`` the seq of each
    # charger's newest row (kept by a trigger). This replaces the index on (charger_id,
    # seq): with many chargers in one commit, each dirtied a leaf page of its own, and
    # that index was half of the database thread's work per answer (issue 17, point 4).
    # The chain is filled in for the rows already there, through that index, which then
    # goes.
    """
    ALTER TABLE message_log ADD COLUMN prev INTEGER;
    UPDATE message_log SET prev = (
        SELECT max(earlier.seq) FROM message_log AS earlier
        WHERE earlier.charger_id = message_log.charger_id AND earlier.seq < message_log.seq);
    CREATE TABLE log_heads (charger_id TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO log_heads (charger_id, seq)
        SELECT charger_id, max(seq) FROM message_log GROUP BY charger_id;
    CREATE TRIGGER message_log_head AFTER INSERT ON message_log BEGIN
        INSERT INTO log_heads (charger_id, seq) VALUES (NEW.charger_id, NEW.seq)
            ON CONFLICT (charger_id) DO UPDATE SET seq = excluded.seq;
    END;
    DROP INDEX message_log_by_charger;
    """,
)
