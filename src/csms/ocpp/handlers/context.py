"""What a handler knows about the CSMS: the charge point it serves, the config, the clock."""

from __future__ import annotations

import datetime
from collections.abc import Callable

from attrs import frozen

from csms.config import CsmsConfig


def utc_now() -> datetime.datetime:
    """The wall clock, in UTC."""
    return datetime.datetime.now(datetime.UTC)


def ocpp_timestamp(moment: datetime.datetime) -> str:
    """An OCPP date-time: ISO 8601 in UTC with milliseconds and ``Z``."""
    utc = moment.astimezone(datetime.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


@frozen
class HandlerContext:
    """Per-connection context given to every handler.

    Attributes:
        charge_point_id: the id from the WebSocket path.
        config: the CSMS configuration.
        now: the clock (tests pass a fixed one).
    """

    charge_point_id: str
    config: CsmsConfig
    now: Callable[[], datetime.datetime] = utc_now
