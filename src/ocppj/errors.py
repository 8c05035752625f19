"""OCPP-J 1.6 error codes, the one table that maps failures to them, and our exceptions.

Every wire error this project sends is chosen here: :data:`ERROR_TABLE` maps what
went wrong (a :class:`Failure`) to the OCPP 1.6 error code a peer receives, and
:data:`SCHEMA_RULE_FAILURES` maps a JSON-schema rule that a payload broke to a
:class:`Failure`. The spellings are OCPP 1.6's (``OccurenceConstraintViolation``
and ``FormationViolation``), not the 2.0 ones the ``ocpp`` package uses.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any


class ErrorCode(enum.StrEnum):
    """The ten CALLERROR codes of OCPP-J 1.6 (section 4.2.3), spelled as 1.6 spells them."""

    NOT_IMPLEMENTED = "NotImplemented"
    NOT_SUPPORTED = "NotSupported"
    INTERNAL_ERROR = "InternalError"
    PROTOCOL_ERROR = "ProtocolError"
    SECURITY_ERROR = "SecurityError"
    FORMATION_VIOLATION = "FormationViolation"
    PROPERTY_CONSTRAINT_VIOLATION = "PropertyConstraintViolation"
    OCCURENCE_CONSTRAINT_VIOLATION = "OccurenceConstraintViolation"
    TYPE_CONSTRAINT_VIOLATION = "TypeConstraintViolation"
    GENERIC_ERROR = "GenericError"


class Failure(enum.Enum):
    """What can be wrong with an incoming CALL, as far as the RPC layer can tell."""

    UNKNOWN_ACTION = "the action is not defined by OCPP 1.6"
    NO_HANDLER = "the action is OCPP 1.6 but this side has no handler for it"
    WRONG_TYPE = "a field has the wrong JSON type"
    MISSING_FIELD = "a required field is missing"
    WRONG_CARDINALITY = "an array has too few or too many items"
    UNKNOWN_FIELD = "a field the schema does not define"
    BAD_VALUE = "a value is outside its enum, length, range or format"
    BAD_MESSAGE_TYPE = "the MessageTypeId is not 2, 3 or 4"
    WRONG_ARITY = "the frame has the wrong number of elements"
    BAD_UNIQUE_ID = "the uniqueId is not a string"
    BAD_ACTION_TYPE = "the Action is not a string"
    PAYLOAD_NOT_OBJECT = "the payload is not a JSON object"
    HANDLER_FAILED = "the handler raised an unexpected exception"
    INVALID_RESULT = "the handler's result does not match the response schema"


#: The single place where a failure becomes an OCPP 1.6 error code.
ERROR_TABLE: Mapping[Failure, ErrorCode] = MappingProxyType(
    {
        Failure.UNKNOWN_ACTION: ErrorCode.NOT_IMPLEMENTED,
        Failure.NO_HANDLER: ErrorCode.NOT_SUPPORTED,
        Failure.WRONG_TYPE: ErrorCode.TYPE_CONSTRAINT_VIOLATION,
        Failure.MISSING_FIELD: ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION,
        Failure.WRONG_CARDINALITY: ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION,
        Failure.UNKNOWN_FIELD: ErrorCode.FORMATION_VIOLATION,
        Failure.BAD_VALUE: ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
        Failure.BAD_MESSAGE_TYPE: ErrorCode.FORMATION_VIOLATION,
        Failure.WRONG_ARITY: ErrorCode.PROTOCOL_ERROR,
        Failure.BAD_UNIQUE_ID: ErrorCode.FORMATION_VIOLATION,
        Failure.BAD_ACTION_TYPE: ErrorCode.FORMATION_VIOLATION,
        Failure.PAYLOAD_NOT_OBJECT: ErrorCode.FORMATION_VIOLATION,
        Failure.HANDLER_FAILED: ErrorCode.INTERNAL_ERROR,
        Failure.INVALID_RESULT: ErrorCode.INTERNAL_ERROR,
    }
)

#: JSON-schema keywords (draft 4, as the 1.6 schemas use) and the failure each one means.
SCHEMA_RULE_FAILURES: Mapping[str, Failure] = MappingProxyType(
    {
        "type": Failure.WRONG_TYPE,
        "required": Failure.MISSING_FIELD,
        "minItems": Failure.WRONG_CARDINALITY,
        "maxItems": Failure.WRONG_CARDINALITY,
        "additionalProperties": Failure.UNKNOWN_FIELD,
        "enum": Failure.BAD_VALUE,
        "maxLength": Failure.BAD_VALUE,
        "minLength": Failure.BAD_VALUE,
        "minimum": Failure.BAD_VALUE,
        "maximum": Failure.BAD_VALUE,
        "exclusiveMinimum": Failure.BAD_VALUE,
        "exclusiveMaximum": Failure.BAD_VALUE,
        "multipleOf": Failure.BAD_VALUE,
        "pattern": Failure.BAD_VALUE,
        "format": Failure.BAD_VALUE,
    }
)


def code_for(failure: Failure) -> ErrorCode:
    """The OCPP 1.6 error code sent for ``failure``."""
    return ERROR_TABLE[failure]


class OcppjError(Exception):
    """Root of every exception this package raises."""


class CallError(OcppjError):
    """A CALLERROR: raised by :meth:`ocppj.RpcSession.call` when the peer answered with one,
    and raised by a handler to answer its CALL with a specific code.

    Attributes:
        code: the OCPP 1.6 error code.
        description: human-readable text sent as ErrorDescription.
        details: the ErrorDetails object.
        unique_id: the uniqueId of the CALL it answers, when known.
    """

    def __init__(
        self,
        code: ErrorCode | str,
        description: str = "",
        details: Mapping[str, Any] | None = None,
        *,
        unique_id: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {description}" if description else str(code))
        self.code = code
        self.description = description
        self.details: Mapping[str, Any] = details or {}
        self.unique_id = unique_id

    @classmethod
    def from_failure(
        cls, failure: Failure, description: str = "", *, unique_id: str | None = None
    ) -> CallError:
        """A CallError for ``failure``, its code taken from :data:`ERROR_TABLE`."""
        return cls(code_for(failure), description or failure.value, unique_id=unique_id)


class PayloadError(CallError):
    """A payload does not match its OCPP 1.6 JSON schema.

    Raised locally before anything is sent (our own CALL), or carried as the answer to an
    incoming CALL whose payload is invalid.
    """

    def __init__(self, failure: Failure, description: str, *, action: str, path: str = "") -> None:
        super().__init__(code_for(failure), description)
        self.failure = failure
        self.action = action
        self.path = path


class InvalidResponse(CallError):
    """The peer answered our CALL with a CALLRESULT that does not match the response schema."""

    def __init__(self, error: PayloadError, payload: Any) -> None:
        super().__init__(error.code, f"invalid {error.action} response: {error.description}")
        self.payload = payload


class CallTimeout(OcppjError, TimeoutError):
    """No answer to our CALL arrived within its timeout.

    Attributes:
        unique_id: the uniqueId of the CALL that went unanswered, when known.
    """

    def __init__(self, message: str = "", *, unique_id: str | None = None) -> None:
        super().__init__(message)
        self.unique_id = unique_id


class SessionClosed(OcppjError):
    """The connection closed before the CALL could be sent or answered."""


class NotSent(SessionClosed):
    """Our CALL never left: the peer never saw it, so sending it again is safe.

    Attributes:
        reason: why: ``closed`` (the connection closed, or was dropped, before or while it
            was sent), ``deadline`` (its deadline passed while it waited for its turn
            behind earlier CALLs) or ``queue_full`` (too many CALLs already waited).
    """

    def __init__(self, message: str = "", *, reason: str = "closed") -> None:
        super().__init__(message)
        self.reason = reason


class ClosedBeforeAnswer(SessionClosed):
    """Our CALL was sent, and the connection closed before its answer: the peer may have
    carried it out (a charger that resets reboots without answering). Do not send it
    again blindly."""


class FrameError(OcppjError):
    """An incoming frame is not a well-formed OCPP-J message.

    Attributes:
        unique_id: the uniqueId when one could be read, else None.
        failure: what is wrong (None when no uniqueId could be read).
        reply: whether a CALLERROR is owed (a broken CALL; never for a broken response).
    """

    def __init__(
        self,
        failure: Failure | None,
        description: str,
        unique_id: Any = None,
        *,
        reply: bool = False,
    ) -> None:
        super().__init__(description)
        self.failure = failure
        self.description = description
        self.unique_id = unique_id
        self.reply = reply
