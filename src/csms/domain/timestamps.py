"""Lenient parsing of the timestamps chargers send."""

from __future__ import annotations

import datetime


def parse_timestamp(value: str | None) -> datetime.datetime | None:
    """An aware UTC datetime from an OCPP timestamp, or None when there is none or it is unreadable.

    Accepts what :meth:`datetime.datetime.fromisoformat` accepts: a ``Z`` or numeric offset, no
    offset at all (read as UTC, which is what chargers without a time zone mean), a space
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
