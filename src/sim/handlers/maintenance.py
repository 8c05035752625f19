"""Firmware updates and diagnostics uploads, with their status notifications."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ocpp.v16 import call, call_result

from ocppj.timestamps import parse_timestamp

if TYPE_CHECKING:
    from sim.charge_point import SimChargePoint


async def update_firmware(
    cp: SimChargePoint, request: call.UpdateFirmware
) -> call_result.UpdateFirmware:
    """Download and install at the retrieve date, reporting each stage."""
    retrieve = parse_timestamp(request.retrieve_date)
    cp.after(functools.partial(_update_firmware, cp, request.location, retrieve))
    return call_result.UpdateFirmware()


async def _update_firmware(
    cp: SimChargePoint, location: str, retrieve: datetime.datetime | None
) -> None:
    if retrieve is not None:
        await cp.wheel.sleep((retrieve - cp.now()).total_seconds())
    for status in ("Downloading", "Downloaded", "Installing", "Installed"):
        await send_firmware_status(cp, status)
        if status != "Installed":
            await cp.wheel.sleep(cp.config.status_step_delay)
    # The new version is what the file name says after its last "-", if anything.
    name = location.rstrip("/").rsplit("/", 1)[-1]
    if "-" in name:
        cp.firmware_version = name.rsplit("-", 1)[1].removesuffix(".bin")


async def send_firmware_status(cp: SimChargePoint, status: str | None) -> None:
    """Send FirmwareStatusNotification: ``status``, or the current one when None."""
    if status is not None:
        cp.firmware_status = status
    await cp.call(call.FirmwareStatusNotification(status=cp.firmware_status))


async def get_diagnostics(
    cp: SimChargePoint, request: call.GetDiagnostics
) -> call_result.GetDiagnostics:
    """Name the file, then upload it, reporting each stage."""
    stamp = cp.now().astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    file_name = f"diagnostics-{cp.id}-{stamp}.log"
    cp.after(functools.partial(_upload_diagnostics, cp))
    return call_result.GetDiagnostics(file_name=file_name)


async def _upload_diagnostics(cp: SimChargePoint) -> None:
    await upload(cp, send_diagnostics_status)


async def upload(
    cp: SimChargePoint, send: Callable[[SimChargePoint, str | None], Awaitable[None]]
) -> None:
    """An upload (diagnostics, a log) as a charger reports it: Uploading, then Uploaded."""
    await send(cp, "Uploading")
    await cp.wheel.sleep(cp.config.status_step_delay)
    await send(cp, "Uploaded")


async def send_diagnostics_status(cp: SimChargePoint, status: str | None) -> None:
    """Send DiagnosticsStatusNotification: ``status``, or the current one when None."""
    if status is not None:
        cp.diagnostics_status = status
    await cp.call(call.DiagnosticsStatusNotification(status=cp.diagnostics_status))
