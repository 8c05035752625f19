"""How a simulated charge point answers the CSMS: one module per concern, each handler a
function of the charger and the request. :func:`build_router` puts them together and makes
every answer wait as long as the charger's behaviour says."""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from ocppj import Router
from ocppj.routing import BoundRouter
from sim.handlers import (
    configuration,
    maintenance,
    remote,
    reservations,
    security,
    smart_charging,
)

if TYPE_CHECKING:
    from sim.charge_point import SimChargePoint

ChargerHandler = Callable[["SimChargePoint", Any], Awaitable[Any]]

#: Every CALL a simulated charge point answers, by action.
HANDLERS: dict[str, ChargerHandler] = {
    "SetChargingProfile": smart_charging.set_charging_profile,
    "ClearChargingProfile": smart_charging.clear_charging_profile,
    "GetCompositeSchedule": smart_charging.get_composite_schedule,
    "RemoteStartTransaction": remote.remote_start_transaction,
    "RemoteStopTransaction": remote.remote_stop_transaction,
    "ChangeAvailability": remote.change_availability,
    "TriggerMessage": remote.trigger_message,
    "Reset": remote.reset,
    "UnlockConnector": remote.unlock_connector,
    "GetConfiguration": configuration.get_configuration,
    "ChangeConfiguration": configuration.change_configuration,
    "ClearCache": configuration.clear_cache,
    "SendLocalList": configuration.send_local_list,
    "GetLocalListVersion": configuration.get_local_list_version,
    "DataTransfer": configuration.data_transfer,
    "ReserveNow": reservations.reserve_now,
    "CancelReservation": reservations.cancel_reservation,
    "GetDiagnostics": maintenance.get_diagnostics,
    "UpdateFirmware": maintenance.update_firmware,
    "InstallCertificate": security.install_certificate,
    "GetInstalledCertificateIds": security.get_installed_certificate_ids,
    "DeleteCertificate": security.delete_certificate,
    "CertificateSigned": security.certificate_signed,
    "ExtendedTriggerMessage": security.extended_trigger_message,
    "GetLog": security.get_log,
    "SignedUpdateFirmware": security.signed_update_firmware,
}


def build_router(cp: SimChargePoint) -> Router:
    """The router answering the CSMS's CALLs to ``cp`` (bound to it at each CALL)."""
    return BoundRouter(_DELAYED, cp)


async def _answer(action: str, handler: ChargerHandler, cp: SimChargePoint, request: Any) -> Any:
    delay = cp.behaviour.answer_delay(action)
    if delay == math.inf:
        await trio.sleep_forever()
    if delay > 0:
        await cp.wheel.sleep(delay)
    return await handler(cp, request)


#: Every handler, answering as late as the charger's behaviour says.
_DELAYED: dict[str, ChargerHandler] = {
    action: functools.partial(_answer, action, handler) for action, handler in HANDLERS.items()
}
