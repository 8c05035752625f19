"""The OCPP 1.6 security extension, as a simulated charge point answers it: certificates
installed and listed by hash, logs uploaded and signed firmware installed with their
status notifications, and SecurityEventNotifications of its own.

The hashes are of the PEM text given (SHA-256), not of a parsed certificate: the
simulator checks no signatures; it behaves like a charger that accepts what it is sent.
"""

from __future__ import annotations

import functools
import hashlib
from typing import TYPE_CHECKING, Any

from ocpp.v16 import call, call_result

from ocppj.timestamps import format_timestamp
from sim.handlers.maintenance import upload
from sim.handlers.remote import trigger_message

if TYPE_CHECKING:
    from sim.charge_point import SimChargePoint

#: Certificates a simulated charger holds at most (the whitepaper's
#: CertificateStoreMaxLength; its answer is Rejected beyond).
MAX_CERTIFICATES = 10


def _hash_data(certificate: str) -> dict[str, str]:
    digest = hashlib.sha256(certificate.encode()).hexdigest()
    return {"hashAlgorithm": "SHA256", "issuerNameHash": digest[:32],
            "issuerKeyHash": digest[32:], "serialNumber": digest[:16]}


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)


async def install_certificate(
    cp: SimChargePoint, request: call.InstallCertificate
) -> call_result.InstallCertificate:
    """Keep the certificate under its type; Rejected when the store is full."""
    if len(cp.certificates) >= MAX_CERTIFICATES:
        return call_result.InstallCertificate(status="Rejected")
    data = _hash_data(request.certificate)
    cp.certificates[data["serialNumber"]] = (str(_plain(request.certificate_type)), data)
    return call_result.InstallCertificate(status="Accepted")


async def get_installed_certificate_ids(
    cp: SimChargePoint, request: call.GetInstalledCertificateIds
) -> call_result.GetInstalledCertificateIds:
    """The hashes of the certificates of the type asked for."""
    wanted = str(_plain(request.certificate_type))
    found = [data for kind, data in cp.certificates.values() if kind == wanted]
    if not found:
        return call_result.GetInstalledCertificateIds(status="NotFound")
    return call_result.GetInstalledCertificateIds(status="Accepted", certificate_hash_data=found)


async def delete_certificate(
    cp: SimChargePoint, request: call.DeleteCertificate
) -> call_result.DeleteCertificate:
    """Remove the certificate whose serial number the hash data names."""
    data = request.certificate_hash_data
    serial = data["serialNumber"] if isinstance(data, dict) else data.serial_number
    if cp.certificates.pop(serial, None) is None:
        return call_result.DeleteCertificate(status="NotFound")
    return call_result.DeleteCertificate(status="Accepted")


async def certificate_signed(
    cp: SimChargePoint, request: call.CertificateSigned
) -> call_result.CertificateSigned:
    """Install the signed charge point certificate."""
    data = _hash_data(request.certificate_chain)
    cp.certificates[data["serialNumber"]] = ("ChargePointCertificate", data)
    return call_result.CertificateSigned(status="Accepted")


async def extended_trigger_message(
    cp: SimChargePoint, request: call.ExtendedTriggerMessage
) -> call_result.ExtendedTriggerMessage:
    """The core triggers, and the extension's own (LogStatusNotification,
    SignedFirmwareStatusNotification); SignChargePointCertificate is not implemented."""
    what = str(_plain(request.requested_message))
    if what == "LogStatusNotification":
        cp.after(functools.partial(send_log_status, cp, None))
    elif what == "FirmwareStatusNotification":
        cp.after(functools.partial(send_signed_firmware_status, cp, None))
    elif what in ("BootNotification", "Heartbeat", "MeterValues", "StatusNotification"):
        answer = await trigger_message(cp, call.TriggerMessage(
            requested_message=what, connector_id=request.connector_id))
        return call_result.ExtendedTriggerMessage(status=_plain(answer.status))
    else:
        return call_result.ExtendedTriggerMessage(status="NotImplemented")
    return call_result.ExtendedTriggerMessage(status="Accepted")


async def get_log(cp: SimChargePoint, request: call.GetLog) -> call_result.GetLog:
    """Name the file, then upload it, reporting each stage."""
    kind = "security" if str(_plain(request.log_type)) == "SecurityLog" else "diagnostics"
    stamp = cp.now().strftime("%Y%m%dT%H%M%SZ")
    cp.log_request_id = request.request_id
    cp.after(functools.partial(upload, cp, send_log_status))
    return call_result.GetLog(status="Accepted", filename=f"{kind}-{cp.id}-{stamp}.log")


async def send_log_status(cp: SimChargePoint, status: str | None) -> None:
    """Send LogStatusNotification: ``status``, or the current one when None."""
    if status is not None:
        cp.log_status = status
    await cp.call(call.LogStatusNotification(status=cp.log_status,
                                             request_id=cp.log_request_id))


async def signed_update_firmware(
    cp: SimChargePoint, request: call.SignedUpdateFirmware
) -> call_result.SignedUpdateFirmware:
    """Download, verify and install, reporting each stage; then a FirmwareUpdated
    security event."""
    cp.firmware_request_id = request.request_id
    cp.after(functools.partial(_signed_update, cp))
    return call_result.SignedUpdateFirmware(status="Accepted")


async def _signed_update(cp: SimChargePoint) -> None:
    for status in ("Downloading", "Downloaded", "SignatureVerified", "Installing", "Installed"):
        await send_signed_firmware_status(cp, status)
        if status != "Installed":
            await cp.wheel.sleep(cp.config.status_step_delay)
    await send_security_event(cp, "FirmwareUpdated", "signed firmware installed")


async def send_signed_firmware_status(cp: SimChargePoint, status: str | None) -> None:
    """Send SignedFirmwareStatusNotification: ``status``, or the current one when None."""
    if status is not None:
        cp.signed_firmware_status = status
    await cp.call(call.SignedFirmwareStatusNotification(
        status=cp.signed_firmware_status, request_id=cp.firmware_request_id))


async def send_security_event(cp: SimChargePoint, kind: str, tech_info: str | None = None) -> None:
    """Send a SecurityEventNotification of ``kind`` (e.g. ``StartupOfTheDevice``)."""
    await cp.call(call.SecurityEventNotification(
        type=kind, timestamp=format_timestamp(cp.now()), tech_info=tech_info))
