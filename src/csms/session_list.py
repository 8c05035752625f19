"""``python -m csms sessions``: every session a database file holds, from the file alone
(no running CSMS needed; it may be running: readers take no lock)."""

from __future__ import annotations

import argparse
import datetime
import json
from typing import Any

from attrs import frozen

from csms.domain.model import Session
from csms.domain.state import DomainState
from csms.inspect import SESSION_HEADERS, session_json, session_row, table
from csms.storage.sqlite import open_sqlite_store
from ocppj.timestamps import parse_timestamp


@frozen
class SessionFilter:
    """Which sessions to list.

    Attributes:
        active: only open ones.
        charger_id: only this charge point's.
        since: only those started (by the charger's clock, else when received) at or
            after this moment.
    """

    active: bool = False
    charger_id: str | None = None
    since: datetime.datetime | None = None

    def admits(self, session: Session) -> bool:
        """Whether ``session`` is listed."""
        return (
            (not self.active or session.open)
            and (self.charger_id is None or session.charger_id == self.charger_id)
            and (self.since is None or session.start_time >= self.since)
        )


def select(state: DomainState, wanted: SessionFilter) -> list[Session]:
    """The sessions ``wanted`` admits, by transactionId."""
    return sorted(
        (s for s in state.sessions.values() if wanted.admits(s)),
        key=lambda s: s.transaction_id,
    )


def render_text(sessions: list[Session], total: int) -> str:
    """The sessions as a table, and how many of the file's ``total`` they are."""
    rows = [[*session_row(s), "open" if s.open else "closed"] for s in sessions]
    listed = table([*SESSION_HEADERS, "state"], rows) if rows else "(none)"
    return f"{listed}\n\n{len(sessions)} of {total} sessions"


def render_json(sessions: list[Session]) -> list[dict[str, Any]]:
    """The sessions as JSON-ready data (the fields of ``status --json``'s sessions)."""
    return [session_json(s) for s in sessions]


def _moment(text: str) -> datetime.datetime:
    moment = parse_timestamp(text)
    if moment is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date-time (ISO 8601, e.g. 2026-12-07 or 2026-12-07T08:00Z)")
    return moment


def add_parser(commands: Any) -> None:
    """The ``sessions`` command, on the CLI's subcommands."""
    parser = commands.add_parser(
        "sessions", help="list every session in the database file (no running CSMS needed)")
    parser.add_argument("--db", default="csms.db", help="SQLite file (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--active", action="store_true", help="only open sessions")
    parser.add_argument("--charge-point", metavar="ID", help="only this charge point's")
    parser.add_argument("--since", metavar="T", type=_moment,
                        help="only sessions started at or after T (ISO 8601; no offset: UTC)")


def wanted(args: argparse.Namespace) -> SessionFilter:
    """The filter the command line asks for."""
    return SessionFilter(args.active, args.charge_point, args.since)


async def print_sessions(path: str, wanted: SessionFilter, *, as_json: bool) -> int:
    """Print the sessions of the file at ``path`` that ``wanted`` admits."""
    async with open_sqlite_store(path) as store:
        state = await store.load_state()
    sessions = select(state, wanted)
    if as_json:
        print(json.dumps(render_json(sessions), indent=2))
    else:
        print(render_text(sessions, len(state.sessions)))
    return 0
