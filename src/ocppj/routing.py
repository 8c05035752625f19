"""Incoming CALLs: the handlers by action (:class:`Router`) and what a handler is told
about the CALL it answers (:data:`current_call`). Pure: no I/O."""

from __future__ import annotations

import contextvars
import datetime
import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

import attrs

from ocppj.schemas import ACTIONS
from ocppj.tolerance import Tolerance, Tolerated

#: A handler takes the request dataclass and returns the response dataclass.
Handler = Callable[[Any], Awaitable[Any]]


@attrs.define
class CallInfo:
    """The incoming CALL a handler is answering (see :data:`current_call`)."""

    unique_id: str
    action: str
    received_at: datetime.datetime
    #: Called (synchronously, in order) once the answer has been sent: what must happen
    #: only after the peer has its answer (a CSMS's SetChargingProfile after the
    #: StartTransaction answer that tells the charger its transactionId).
    after_answer: list[Callable[[], None]] = attrs.Factory(list)
    #: When the payload broke its schema and the router's tolerance repaired it: what was
    #: repaired (the handler was given the repaired payload). Set before the handler runs.
    tolerated: Tolerated | None = None


#: While a handler runs, the CALL it answers: its uniqueId, action and the moment it
#: was read (the same moment the observer saw).
current_call: contextvars.ContextVar[CallInfo] = contextvars.ContextVar("current_call")


class Router:
    """Handlers by action name.

    Args:
        tolerance: when set, a CALL whose payload breaks its schema is given to it, and
            answered with the repaired payload it returns (None: refused as before).
    """

    def __init__(self, tolerance: Tolerance | None = None) -> None:
        self._handlers: dict[str, Handler] = {}
        self.tolerance = tolerance

    def register(self, action: str, handler: Handler) -> None:
        """Answer CALLs of ``action`` with ``handler``.

        Raises:
            ValueError: ``action`` is not an OCPP 1.6 action.
        """
        if action not in ACTIONS:
            raise ValueError(f"{action!r} is not an OCPP 1.6 action")
        self._handlers[action] = handler

    def on(self, action: str) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`register`."""

        def decorate(handler: Handler) -> Handler:
            self.register(action, handler)
            return handler

        return decorate

    def get(self, action: str) -> Handler | None:
        """The handler for ``action``, if any."""
        return self._handlers.get(action)


Owner = TypeVar("Owner")


class BoundRouter(Router, Generic[Owner]):
    """A router over one shared table of ``handler(owner, request)``, bound to its
    ``owner`` (a connection's context, a simulated charger) when a CALL comes.

    Binding at each CALL (a ``functools.partial`` that lives as long as the CALL) instead
    of registering a closure per action per owner keeps a dict and a closure per action
    out of every connection: 3.5 to 5 KiB each, tens of MiB at 10,000 chargers. Handlers
    registered on the router itself (:meth:`Router.register`) come first.
    """

    def __init__(self, table: Mapping[str, Callable[[Owner, Any], Awaitable[Any]]],
                 owner: Owner, tolerance: Tolerance | None = None) -> None:
        super().__init__(tolerance)
        self._table = table
        self.owner = owner

    def get(self, action: str) -> Handler | None:
        """The handler registered for ``action``, else the table's bound to the owner."""
        registered = super().get(action)
        if registered is not None:
            return registered
        handler = self._table.get(action)
        return None if handler is None else functools.partial(handler, self.owner)
