"""What the CSMS makes a charger do: start or stop a transaction, change availability,
send a message now, reset, unlock a connector."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ocpp.v16 import call, call_result
from ocpp.v16.enums import (
    AvailabilityStatus,
    AvailabilityType,
    MessageTrigger,
    RemoteStartStopStatus,
    ResetStatus,
    TriggerMessageStatus,
    UnlockStatus,
)

from ocppj import CallError, CallTimeout, SessionClosed, current_call
from sim.charger_state import SimEvse
from sim.evse import Action, EvseState
from sim.handlers.maintenance import send_diagnostics_status, send_firmware_status

if TYPE_CHECKING:
    from sim.charge_point import SimChargePoint


async def remote_start_transaction(
    cp: SimChargePoint, request: call.RemoteStartTransaction
) -> call_result.RemoteStartTransaction:
    """Start on a plugged-in EVSE, or wait ConnectionTimeOut seconds for the EV."""
    candidates = [request.connector_id] if request.connector_id is not None else list(cp.evses)
    for connector_id in candidates:
        evse = cp.evses.get(connector_id)
        if evse is None or evse.transaction is not None:
            continue
        if evse.fsm.state is EvseState.PREPARING and evse.ev is not None:
            tag = request.id_tag
            cp.after(functools.partial(cp.start_session, connector_id, tag, authorize=False))
            return call_result.RemoteStartTransaction(status=RemoteStartStopStatus.accepted)
        if evse.fsm.state is EvseState.AVAILABLE:
            # Wait for the EV for ConnectionTimeOut seconds, as a real charger does.
            evse.pending_remote_tag = request.id_tag
            cp.after(functools.partial(_expire_remote_start, cp, evse))
            return call_result.RemoteStartTransaction(status=RemoteStartStopStatus.accepted)
    return call_result.RemoteStartTransaction(status=RemoteStartStopStatus.rejected)


async def _expire_remote_start(cp: SimChargePoint, evse: SimEvse) -> None:
    await cp.wheel.sleep(cp.configuration.int_value("ConnectionTimeOut", 60))
    evse.pending_remote_tag = None


async def remote_stop_transaction(
    cp: SimChargePoint, request: call.RemoteStopTransaction
) -> call_result.RemoteStopTransaction:
    """Stop the transaction with that id (reason Remote), after the answer."""
    for evse in cp.evses.values():
        tx = evse.transaction
        if tx is not None and tx.transaction_id == request.transaction_id:
            cp.after(functools.partial(cp.stop_session, evse.connector_id, reason="Remote"))
            return call_result.RemoteStopTransaction(status=RemoteStartStopStatus.accepted)
    return call_result.RemoteStopTransaction(status=RemoteStartStopStatus.rejected)


async def change_availability(
    cp: SimChargePoint, request: call.ChangeAvailability
) -> call_result.ChangeAvailability:
    """Operative / Inoperative; Scheduled for an EVSE that is in use."""
    connector_id = request.connector_id
    if connector_id != 0 and connector_id not in cp.evses:
        return call_result.ChangeAvailability(status=AvailabilityStatus.rejected)
    targets = list(cp.evses.values()) if connector_id == 0 else [cp.evses[connector_id]]
    inoperative = request.type == AvailabilityType.inoperative
    scheduled = False
    for evse in targets:
        if inoperative and evse.transaction is not None:
            evse.unavailable_when_free = True
            scheduled = True
        else:
            action = Action.SET_UNAVAILABLE if inoperative else Action.SET_AVAILABLE
            if evse.fsm.can(action):
                evse.unavailable_when_free = False
                cp.after(functools.partial(cp.transition, evse, action))
            elif inoperative:
                # Finishing, Preparing …: becomes Unavailable once the EV has left.
                evse.unavailable_when_free = True
                scheduled = True
            else:
                evse.unavailable_when_free = False
    if connector_id == 0:
        cp.status = "Unavailable" if inoperative else "Available"
        cp.after(functools.partial(cp.send_status, 0))
    status = AvailabilityStatus.scheduled if scheduled else AvailabilityStatus.accepted
    return call_result.ChangeAvailability(status=status)


async def trigger_message(
    cp: SimChargePoint, request: call.TriggerMessage
) -> call_result.TriggerMessage:
    """Send the requested message after the answer."""
    what = request.requested_message
    connector_id = request.connector_id
    if connector_id is not None and connector_id != 0 and connector_id not in cp.evses:
        return call_result.TriggerMessage(status=TriggerMessageStatus.rejected)
    if what == MessageTrigger.boot_notification and not cp.uplink.booted:
        # Pending (or rejected): the boot loop sends it, after this answer, and goes on
        # if it is accepted.
        cp.after(_boot_now(cp))
    elif what == MessageTrigger.boot_notification:
        cp.after(functools.partial(cp.call, cp.boot_request()))
    elif what == MessageTrigger.heartbeat:
        cp.after(functools.partial(cp.call, call.Heartbeat()))
    elif what == MessageTrigger.status_notification:
        connectors = [connector_id] if connector_id is not None else [0, *cp.evses]
        for c in connectors:
            cp.after(functools.partial(cp.send_status, c))
    elif what == MessageTrigger.meter_values:
        connectors = [connector_id] if connector_id else list(cp.evses)
        cp.after(functools.partial(_triggered_meter_values, cp, connectors))
    elif what == MessageTrigger.diagnostics_status_notification:
        cp.after(functools.partial(send_diagnostics_status, cp, None))
    elif what == MessageTrigger.firmware_status_notification:
        cp.after(functools.partial(send_firmware_status, cp, None))
    else:
        return call_result.TriggerMessage(status=TriggerMessageStatus.not_implemented)
    return call_result.TriggerMessage(status=TriggerMessageStatus.accepted)


def _boot_now(cp: SimChargePoint) -> Callable[[], Awaitable[None]]:
    async def boot_now() -> None:
        cp.uplink.boot_now()

    return boot_now


async def _triggered_meter_values(cp: SimChargePoint, connectors: list[int]) -> None:
    cp.advance()
    for connector_id in connectors:
        evse = cp.evses[connector_id]
        payload = cp.meter_payload(evse, "Trigger")
        if evse.transaction is not None and evse.transaction.transaction_id is None:
            del payload["transactionId"]
        session = cp.session
        if session is not None and cp.online:
            with contextlib.suppress(CallTimeout, CallError, SessionClosed):
                await session.call_payload("MeterValues", payload)


async def reset(cp: SimChargePoint, request: call.Reset) -> call_result.Reset:
    """Stop every transaction and reboot, once the answer has gone out."""
    reason = "HardReset" if str(request.type.value) == "Hard" else "SoftReset"
    # The reboot drops the connection: only once the answer has gone out, or the CSMS
    # may never get it.
    reboot = functools.partial(cp.after, functools.partial(_reset, cp, reason))
    current_call.get().after_answer.append(reboot)
    return call_result.Reset(status=ResetStatus.accepted)


async def _reset(cp: SimChargePoint, reason: str) -> None:
    for evse in cp.evses.values():
        if evse.transaction is not None:
            await cp.stop_session(evse.connector_id, reason=reason)
    # Reboot: the connection goes away and a new boot follows.
    await cp.drop_connection()


async def unlock_connector(
    cp: SimChargePoint, request: call.UnlockConnector
) -> call_result.UnlockConnector:
    """Release the cable; a running transaction stops first (reason UnlockCommand)."""
    evse = cp.evses.get(request.connector_id)
    if evse is None:
        # No such connector, so no cable lock to open (connector 0 included).
        return call_result.UnlockConnector(status=UnlockStatus.not_supported)
    if evse.fsm.state in (EvseState.FAULTED, EvseState.UNAVAILABLE):
        return call_result.UnlockConnector(status=UnlockStatus.unlock_failed)
    if evse.transaction is not None:
        # A real charger stops the transaction before it releases the cable.
        cp.after(functools.partial(cp.stop_session, evse.connector_id, reason="UnlockCommand"))
    return call_result.UnlockConnector(status=UnlockStatus.unlocked)
