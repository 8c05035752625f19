"""``python -m csms status``: the domain state as tables for people and JSON for scripts."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from csms.domain.model import SentProfile, Session
from csms.domain.state import DomainState
from csms.storage.codec import converter

RECENT_SESSIONS = 10


def _when(moment: datetime.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _num(value: float | None, scale: float = 1.0, digits: int = 2) -> str:
    return "-" if value is None else f"{value / scale:.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table with aligned columns."""
    widths = [
        max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)
    ]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


#: The columns of :func:`session_row`.
SESSION_HEADERS = ("tx", "charger", "EVSE", "idTag", "auth", "started", "kWh", "kW", "SoC %",
                   "stop reason")


def session_row(s: Session) -> list[str]:
    """A session as a row of :data:`SESSION_HEADERS`."""
    return [
        str(s.transaction_id),
        s.charger_id,
        f"EVSE_{s.connector_id}",
        s.id_tag,
        s.auth_status,
        _when(s.start_time),
        _num(s.energy_wh, 1000, 3),
        _num(s.power_w, 1000),
        _num(s.soc, 1, 0),
        s.stop_reason or "-",
    ]


def _current_profile(state: DomainState, key: tuple[str, int]) -> SentProfile | None:
    """The profile the CSMS last sent for the open session on ``key``, if any."""
    profile = state.profiles.get(key)
    tx = state.open_sessions.get(key)
    return (
        profile if profile is not None and tx is not None and profile.transaction_id == tx else None
    )


def _non_compliant(state: DomainState, key: tuple[str, int]) -> bool:
    session = state.open_session(*key)
    return session is not None and session.non_compliant


def _allocation(state: DomainState, key: tuple[str, int]) -> str:
    profile = _current_profile(state, key)
    if profile is None:
        return "-"
    text = f"{profile.limit:g} {profile.unit} ({profile.status})"
    session = state.open_session(*key)
    if session is not None and session.uncertain is not None:
        # Never answered: the charger may be enforcing it (the budget counts it).
        text += f", {session.uncertain.limit:g} {session.uncertain.unit} unanswered"
    return text + " non-compliant" if _non_compliant(state, key) else text


def _allocation_json(state: DomainState, key: tuple[str, int]) -> dict[str, Any] | None:
    profile = _current_profile(state, key)
    if profile is None:
        return None
    return {
        "limit": profile.limit,
        "unit": profile.unit,
        "status": profile.status,
        "profile_id": profile.profile_id,
        "sent_at": profile.at.isoformat(),
        # The EV draws persistently more than this limit (see docs/smart-charging.md).
        "non_compliant": _non_compliant(state, key),
        # The highest limit sent and never answered since the last accepted (W): the
        # charger may be enforcing it.
        "unanswered_w": _unanswered_w(state, key),
    }


def _unanswered_w(state: DomainState, key: tuple[str, int]) -> float | None:
    session = state.open_session(*key)
    return session.uncertain.watts() if session and session.uncertain is not None else None


def _closed_left_out(state: DomainState) -> int:
    """How many closed sessions the recent list leaves out."""
    closed = sum(1 for s in state.sessions.values() if not s.open)
    return max(0, closed - RECENT_SESSIONS)


def session_json(s: Session) -> dict[str, Any]:
    """A session as JSON-ready data."""
    data: dict[str, Any] = converter.unstructure(s)
    data["evse"] = f"EVSE_{s.connector_id}"
    return data


def _recent(state: DomainState) -> list[Session]:
    closed = [s for s in state.sessions.values() if not s.open]
    return sorted(closed, key=lambda s: s.transaction_id, reverse=True)[:RECENT_SESSIONS]


def render_text(state: DomainState) -> str:
    """Chargers, EVSEs, open and recent sessions, as tables."""
    chargers = [
        [
            c.id,
            c.vendor or "-",
            c.model or "-",
            c.firmware_version or "-",
            "yes" if c.connected else "no",
            c.status or "-",
            _when(c.last_seen),
        ]
        for c in sorted(state.chargers.values(), key=lambda c: c.id)
    ]
    evses = [
        [
            e.charger_id,
            f"EVSE_{e.connector_id}",
            e.status,
            e.error_code,
            "yes" if e.available else "no",
            "yes" if e.plugged_in else "no",
            str(state.open_sessions.get(key, "-")),
            _allocation(state, key),
        ]
        for key, e in sorted(state.evses.items())
    ]
    left_out = _closed_left_out(state)
    open_sessions = [session_row(s) for s in state.sessions.values() if s.open]
    parts = [
        f"Chargers ({len(chargers)})",
        table(["id", "vendor", "model", "firmware", "connected", "status", "last seen"], chargers),
        "",
        f"EVSEs ({len(evses)})",
        table(
            ["charger", "EVSE", "status", "error", "available", "plugged", "open tx", "allocation"],
            evses,
        ),
        "",
        f"Open sessions ({len(open_sessions)})",
        table(SESSION_HEADERS, open_sessions),
        "",
        f"Recent sessions (last {RECENT_SESSIONS})" + (
            f"; {left_out} older closed sessions left out: python -m csms sessions lists "
            "every one" if left_out else ""),
        table(SESSION_HEADERS, [session_row(s) for s in _recent(state)]),
    ]
    if state.anomalies:
        parts += [
            "",
            f"Anomalies ({len(state.anomalies)})",
            table(
                ["at", "charger", "kind", "tx", "detail"],
                [
                    [_when(a.at), a.charger_id, a.kind, str(a.transaction_id or "-"), a.detail]
                    for a in state.anomalies[-RECENT_SESSIONS:]
                ],
            ),
        ]
    events = sorted(
        ((e, c.id) for c in state.chargers.values() for e in c.security_events),
        key=lambda pair: pair[0].at,
    )[-RECENT_SESSIONS:]
    if events:
        parts += [
            "",
            f"Security events (last {len(events)})",
            table(
                ["at", "charger", "type", "charger time", "techInfo"],
                [[_when(e.at), cp_id, e.type, _when(e.timestamp), e.tech_info or "-"]
                 for e, cp_id in events],
            ),
        ]
    return "\n".join(parts)


def render_json(state: DomainState) -> dict[str, Any]:
    """The same content as :func:`render_text`, as JSON-ready data."""

    return {
        "chargers": [
            converter.unstructure(c) for c in sorted(state.chargers.values(), key=lambda c: c.id)
        ],
        "evses": [
            {
                **converter.unstructure(e),
                "evse": f"EVSE_{e.connector_id}",
                "available": e.available,
                "open_transaction_id": state.open_sessions.get(key),
                "allocation": _allocation_json(state, key),
            }
            for key, e in sorted(state.evses.items())
        ],
        "open_sessions": [session_json(s) for s in state.sessions.values() if s.open],
        "recent_sessions": [session_json(s) for s in _recent(state)],
        # Closed sessions older than the recent ones: `python -m csms sessions` lists all.
        "closed_sessions_left_out": _closed_left_out(state),
        "anomalies": [converter.unstructure(a) for a in state.anomalies],
        "next_transaction_id": state.next_transaction_id,
    }
