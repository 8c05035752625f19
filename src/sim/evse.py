"""The EVSE state machine of a simulated charge point: a transition table. Pure.

Rules:

* states are the OCPP 1.6 ChargePointStatus values an EVSE can be in;
* an action either moves the EVSE to the state the table names or is illegal, and an
  illegal action raises :class:`IllegalTransition` naming the EVSE, the state and the action;
* ``unplug`` while a transaction runs ends it (the charge point stops it with reason
  EVDisconnected); ``stop`` leaves the cable in (Finishing) until ``unplug``;
* ``fault`` is legal from every state but Faulted; ``clear_fault`` returns to Available.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

from attrs import frozen


class EvseState(enum.StrEnum):
    """OCPP 1.6 ChargePointStatus values of one connector."""

    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"
    FINISHING = "Finishing"
    FAULTED = "Faulted"
    UNAVAILABLE = "Unavailable"


class Action(enum.StrEnum):
    """What can happen to an EVSE: scenario actions and CSMS commands."""

    PLUG_IN = "plug_in"
    AUTHORIZE = "authorize"
    START = "start"
    SUSPEND_EV = "suspend_ev"
    SUSPEND_EVSE = "suspend_evse"
    RESUME = "resume"
    STOP = "stop"
    UNPLUG = "unplug"
    FAULT = "fault"
    CLEAR_FAULT = "clear_fault"
    SET_UNAVAILABLE = "set_unavailable"
    SET_AVAILABLE = "set_available"


S, A = EvseState, Action

_CHARGING_STATES = (S.CHARGING, S.SUSPENDED_EV, S.SUSPENDED_EVSE)

#: state → action → next state. What is not here is illegal.
TRANSITIONS: Mapping[EvseState, Mapping[Action, EvseState]] = MappingProxyType({
    S.AVAILABLE: {A.PLUG_IN: S.PREPARING, A.AUTHORIZE: S.PREPARING, A.FAULT: S.FAULTED,
                  A.SET_UNAVAILABLE: S.UNAVAILABLE, A.SET_AVAILABLE: S.AVAILABLE},
    S.PREPARING: {A.PLUG_IN: S.PREPARING, A.AUTHORIZE: S.PREPARING, A.START: S.CHARGING,
                  A.UNPLUG: S.AVAILABLE, A.FAULT: S.FAULTED,
                  A.SET_UNAVAILABLE: S.UNAVAILABLE},
    S.CHARGING: {A.SUSPEND_EV: S.SUSPENDED_EV, A.SUSPEND_EVSE: S.SUSPENDED_EVSE,
                 A.RESUME: S.CHARGING, A.STOP: S.FINISHING, A.UNPLUG: S.AVAILABLE,
                 A.FAULT: S.FAULTED},
    S.SUSPENDED_EV: {A.RESUME: S.CHARGING, A.SUSPEND_EV: S.SUSPENDED_EV,
                     A.SUSPEND_EVSE: S.SUSPENDED_EVSE, A.STOP: S.FINISHING,
                     A.UNPLUG: S.AVAILABLE, A.FAULT: S.FAULTED},
    S.SUSPENDED_EVSE: {A.RESUME: S.CHARGING, A.SUSPEND_EVSE: S.SUSPENDED_EVSE,
                       A.SUSPEND_EV: S.SUSPENDED_EV, A.STOP: S.FINISHING,
                       A.UNPLUG: S.AVAILABLE, A.FAULT: S.FAULTED},
    S.FINISHING: {A.UNPLUG: S.AVAILABLE, A.FAULT: S.FAULTED},
    S.FAULTED: {A.CLEAR_FAULT: S.AVAILABLE, A.SET_UNAVAILABLE: S.UNAVAILABLE},
    S.UNAVAILABLE: {A.SET_AVAILABLE: S.AVAILABLE, A.SET_UNAVAILABLE: S.UNAVAILABLE,
                    A.FAULT: S.FAULTED},
})


class IllegalTransition(Exception):
    """An action that the EVSE's state does not allow."""

    def __init__(self, evse: str, state: EvseState, action: Action) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[state])) or "nothing"
        super().__init__(f"{evse}: cannot {action.value} in state {state.value} "
                         f"(allowed: {allowed})")
        self.evse, self.state, self.action = evse, state, action


@frozen
class Evse:
    """One EVSE's state. ``name`` is e.g. ``CP_01 EVSE_2``."""

    name: str
    state: EvseState = EvseState.AVAILABLE

    @property
    def transaction_possible(self) -> bool:
        """Whether the EVSE is in a state a transaction runs in."""
        return self.state in _CHARGING_STATES

    def can(self, action: Action) -> bool:
        """Whether ``action`` is legal now."""
        return action in TRANSITIONS[self.state]

    def next(self, action: Action) -> Evse:
        """The EVSE after ``action``.

        Raises:
            IllegalTransition: the action is not legal in the current state.
        """
        try:
            target = TRANSITIONS[self.state][action]
        except KeyError:
            raise IllegalTransition(self.name, self.state, action) from None
        return Evse(self.name, target)
