"""One trio-native OCPP-J 1.6 RPC engine, shared by the CSMS and the simulator.

Public API:

* :class:`RpcSession`, :class:`Router`, :class:`Direction`, :class:`SessionStatistics`;
* the errors: :class:`CallError`, :class:`PayloadError`, :class:`InvalidResponse`,
  :class:`CallTimeout`, :class:`SessionClosed`, :class:`ErrorCode`, and the error table
  :data:`ERROR_TABLE`;
* :data:`ACTIONS`, the actions OCPP 1.6 defines; ``SUBPROTOCOL``.
"""

from __future__ import annotations

from ocppj.errors import (
    ERROR_TABLE,
    CallError,
    CallTimeout,
    ClosedBeforeAnswer,
    ErrorCode,
    Failure,
    InvalidResponse,
    NotSent,
    OcppjError,
    PayloadError,
    SessionClosed,
)
from ocppj.schemas import ACTIONS
from ocppj.session import (
    Answer,
    CallInfo,
    Direction,
    FrameObserver,
    Handler,
    Router,
    RpcSession,
    SessionStatistics,
    current_call,
)

#: The WebSocket subprotocol of OCPP 1.6J.
SUBPROTOCOL = "ocpp1.6"

__all__ = [
    "ACTIONS",
    "ERROR_TABLE",
    "SUBPROTOCOL",
    "Answer",
    "CallError",
    "CallInfo",
    "CallTimeout",
    "ClosedBeforeAnswer",
    "Direction",
    "ErrorCode",
    "Failure",
    "FrameObserver",
    "Handler",
    "InvalidResponse",
    "NotSent",
    "OcppjError",
    "PayloadError",
    "Router",
    "RpcSession",
    "SessionClosed",
    "SessionStatistics",
    "current_call",
]
