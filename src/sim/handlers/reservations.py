"""ReserveNow and CancelReservation."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from ocpp.v16 import call, call_result
from ocpp.v16.enums import CancelReservationStatus, ReservationStatus

from ocppj.timestamps import parse_timestamp
from sim.charger_state import Reservation, SimEvse
from sim.evse import EvseState

if TYPE_CHECKING:
    from sim.charge_point import SimChargePoint


async def reserve_now(cp: SimChargePoint, request: call.ReserveNow) -> call_result.ReserveNow:
    """Reserve an Available EVSE until the expiry date (OCPP 1.6, 5.13)."""
    connector_id = request.connector_id
    evse = cp.evses.get(connector_id)
    if evse is None:
        # Connector 0 (the charger as a whole) needs ReserveConnectorZeroSupported,
        # which this charger does not have; an unknown connector cannot be reserved.
        return call_result.ReserveNow(status=ReservationStatus.rejected)
    expiry = parse_timestamp(request.expiry_date)
    if expiry is None:
        return call_result.ReserveNow(status=ReservationStatus.rejected)
    if evse.fsm.state is EvseState.FAULTED:
        return call_result.ReserveNow(status=ReservationStatus.faulted)
    if evse.fsm.state is EvseState.UNAVAILABLE:
        return call_result.ReserveNow(status=ReservationStatus.unavailable)
    held = evse.reservation
    if (
        evse.fsm.state is not EvseState.AVAILABLE
        or evse.transaction is not None
        or (held is not None and held.reservation_id != request.reservation_id)
    ):
        return call_result.ReserveNow(status=ReservationStatus.occupied)
    # The same reservationId elsewhere is replaced by this one (OCPP 1.6, 5.13).
    for other in cp.evses.values():
        if (
            other.reservation is not None
            and (other.reservation.reservation_id == request.reservation_id)
            and other is not evse
        ):
            other.reservation = None
            cp.after(functools.partial(cp.send_status, other.connector_id))
    reservation = Reservation(request.reservation_id, request.id_tag, request.parent_id_tag, expiry)
    evse.reservation = reservation
    cp.after(functools.partial(cp.send_status, connector_id))
    cp.after(functools.partial(_expire_reservation, cp, evse, reservation))
    return call_result.ReserveNow(status=ReservationStatus.accepted)


async def _expire_reservation(cp: SimChargePoint, evse: SimEvse, reservation: Reservation) -> None:
    seconds = (reservation.expiry - cp.now()).total_seconds()
    await cp.wheel.sleep(seconds)
    if evse.reservation is reservation:
        evse.reservation = None
        await cp.send_status(evse.connector_id)


async def cancel_reservation(
    cp: SimChargePoint, request: call.CancelReservation
) -> call_result.CancelReservation:
    """Cancel the reservation with that id; Rejected when there is none."""
    for evse in cp.evses.values():
        held = evse.reservation
        if held is not None and held.reservation_id == request.reservation_id:
            evse.reservation = None
            cp.after(functools.partial(cp.send_status, evse.connector_id))
            return call_result.CancelReservation(status=CancelReservationStatus.accepted)
    return call_result.CancelReservation(status=CancelReservationStatus.rejected)
