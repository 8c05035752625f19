"""OCPP date-times as this project writes them (both sides use this one function)."""

from __future__ import annotations

import datetime


def format_timestamp(moment: datetime.datetime) -> str:
    """An OCPP date-time: ISO 8601 in UTC with milliseconds and ``Z``."""
    utc = moment.astimezone(datetime.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_timestamp(value: str | None) -> datetime.datetime | None:
    """An aware UTC datetime from an OCPP timestamp; None when absent or unreadable.

    Accepts what :meth:`datetime.datetime.fromisoformat` accepts: a ``Z`` or numeric offset,
    no offset at all (read as UTC, which is what chargers without a time zone mean), a space
    instead of ``T``, any number of fraction digits.
    """
    if not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC)
