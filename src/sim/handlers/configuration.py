"""Configuration keys, the authorization cache and local list, and vendor messages."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ocpp.v16 import call, call_result
from ocpp.v16.enums import ClearCacheStatus, ConfigurationStatus, DataTransferStatus, UpdateStatus

from ocppj.payloads import converter

if TYPE_CHECKING:
    from sim.charge_point import SimChargePoint


async def get_configuration(
    cp: SimChargePoint, request: call.GetConfiguration
) -> call_result.GetConfiguration:
    """The keys asked for (all when none is named) and the ones it does not know."""
    known, unknown = cp.configuration.get(request.key)
    return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)


async def change_configuration(
    cp: SimChargePoint, request: call.ChangeConfiguration
) -> call_result.ChangeConfiguration:
    """Accepted, Rejected (read-only or invalid value) or NotSupported (unknown key)."""
    status = cp.configuration.change(request.key, request.value)
    return call_result.ChangeConfiguration(status=ConfigurationStatus(status))


async def clear_cache(cp: SimChargePoint, request: call.ClearCache) -> call_result.ClearCache:
    """The charger keeps no authorization cache: nothing to clear."""
    return call_result.ClearCache(status=ClearCacheStatus.accepted)


async def send_local_list(
    cp: SimChargePoint, request: call.SendLocalList
) -> call_result.SendLocalList:
    """Replace (Full) or update (Differential, newer version only) the local list."""
    entries = [
        converter.unstructure(entry) if not isinstance(entry, dict) else entry
        for entry in request.local_authorization_list or []
    ]
    if str(getattr(request.update_type, "value", request.update_type)) == "Full":
        cp.local_list = {
            e["idTag"]: e["idTagInfo"] for e in entries if e.get("idTagInfo") is not None
        }
    else:
        if request.list_version <= cp.local_list_version:
            return call_result.SendLocalList(status=UpdateStatus.version_mismatch)
        for entry in entries:
            if entry.get("idTagInfo") is None:
                cp.local_list.pop(entry["idTag"], None)
            else:
                cp.local_list[entry["idTag"]] = entry["idTagInfo"]
    cp.local_list_version = request.list_version
    return call_result.SendLocalList(status=UpdateStatus.accepted)


async def get_local_list_version(
    cp: SimChargePoint, request: call.GetLocalListVersion
) -> call_result.GetLocalListVersion:
    """The local list's version (0: empty)."""
    return call_result.GetLocalListVersion(list_version=cp.local_list_version)


async def data_transfer(
    cp: SimChargePoint, request: call.DataTransfer
) -> call_result.DataTransfer:
    """Only the charger's own vendorId is known; its ``Echo`` message returns the data."""
    if request.vendor_id != cp.config.vendor:
        return call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)
    if request.message_id not in (None, "Echo"):
        return call_result.DataTransfer(status=DataTransferStatus.unknown_message_id)
    return call_result.DataTransfer(status=DataTransferStatus.accepted, data=request.data)
