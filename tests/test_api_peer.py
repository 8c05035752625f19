"""The operator API against a charge point we did not write: the ``ocpp`` package's asyncio
``ChargePoint`` over ``websockets``, in a worker thread, answering with its own ``@on``
handlers (validated against its own copy of the 1.6 schemas). Every CSMS-initiated action
goes through ``POST /api/charge-points/{id}/ocpp16/{action}``, and so do a CALLERROR, a
timeout, a 400 and a 404. Real time; every wait bounded.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import orjson
import trio
from ocpp.exceptions import NotSupportedError
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from api_helpers import api, iso_in, running_csms, send, wait_until
from csms.api import CSMS_ACTIONS
from csms.replay import diff, rebuild
from csms.storage.sqlite import open_sqlite_store

PEER = "PEER_01"


class Peer(ChargePoint):
    """Answers every CSMS-initiated 1.6 action the way its own handlers choose."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received: list[tuple[str, dict[str, Any]]] = []

    def _got(self, action: str, **payload: Any) -> None:
        self.received.append((action, payload))

    @on(Action.cancel_reservation)
    async def on_cancel_reservation(self, **kw: Any) -> Any:
        self._got("CancelReservation", **kw)
        return call_result.CancelReservation(status="Accepted")

    @on(Action.change_availability)
    async def on_change_availability(self, **kw: Any) -> Any:
        self._got("ChangeAvailability", **kw)
        return call_result.ChangeAvailability(status="Scheduled")

    @on(Action.change_configuration)
    async def on_change_configuration(self, **kw: Any) -> Any:
        self._got("ChangeConfiguration", **kw)
        return call_result.ChangeConfiguration(status="RebootRequired")

    @on(Action.clear_cache)
    async def on_clear_cache(self, **kw: Any) -> Any:
        self._got("ClearCache", **kw)
        return call_result.ClearCache(status="Rejected")

    @on(Action.clear_charging_profile)
    async def on_clear_charging_profile(self, **kw: Any) -> Any:
        self._got("ClearChargingProfile", **kw)
        return call_result.ClearChargingProfile(status="Unknown")

    @on(Action.data_transfer)
    async def on_data_transfer(self, vendor_id: str, **kw: Any) -> Any:
        self._got("DataTransfer", vendor_id=vendor_id, **kw)
        if vendor_id == "broken":
            raise NotSupportedError(description="no such vendor here")
        return call_result.DataTransfer(status="Accepted", data="pong")

    @on(Action.get_composite_schedule)
    async def on_get_composite_schedule(self, **kw: Any) -> Any:
        self._got("GetCompositeSchedule", **kw)
        return call_result.GetCompositeSchedule(status="Rejected")

    @on(Action.get_configuration)
    async def on_get_configuration(self, **kw: Any) -> Any:
        self._got("GetConfiguration", **kw)
        return call_result.GetConfiguration(
            configuration_key=[{"key": "HeartbeatInterval", "readonly": False, "value": "60"}])

    @on(Action.get_diagnostics)
    async def on_get_diagnostics(self, **kw: Any) -> Any:
        self._got("GetDiagnostics", **kw)
        return call_result.GetDiagnostics(file_name="peer.log")

    @on(Action.get_local_list_version)
    async def on_get_local_list_version(self, **kw: Any) -> Any:
        self._got("GetLocalListVersion", **kw)
        return call_result.GetLocalListVersion(list_version=-1)

    @on(Action.remote_start_transaction)
    async def on_remote_start(self, **kw: Any) -> Any:
        self._got("RemoteStartTransaction", **kw)
        return call_result.RemoteStartTransaction(status="Rejected")

    @on(Action.remote_stop_transaction)
    async def on_remote_stop(self, **kw: Any) -> Any:
        self._got("RemoteStopTransaction", **kw)
        return call_result.RemoteStopTransaction(status="Rejected")

    @on(Action.reserve_now)
    async def on_reserve_now(self, **kw: Any) -> Any:
        self._got("ReserveNow", **kw)
        return call_result.ReserveNow(status="Unavailable")

    @on(Action.reset)
    async def on_reset(self, type: str, **kw: Any) -> Any:  # the OCPP field's name
        self._got("Reset", type=type, **kw)
        if type == "Hard":
            await asyncio.sleep(1.0)  # longer than the API request's timeout
        return call_result.Reset(status="Accepted")

    @on(Action.send_local_list)
    async def on_send_local_list(self, **kw: Any) -> Any:
        self._got("SendLocalList", **kw)
        return call_result.SendLocalList(status="NotSupported")

    @on(Action.set_charging_profile)
    async def on_set_charging_profile(self, **kw: Any) -> Any:
        self._got("SetChargingProfile", **kw)
        return call_result.SetChargingProfile(status="NotSupported")

    @on(Action.trigger_message)
    async def on_trigger_message(self, **kw: Any) -> Any:
        self._got("TriggerMessage", **kw)
        return call_result.TriggerMessage(status="NotImplemented")

    @on(Action.unlock_connector)
    async def on_unlock_connector(self, **kw: Any) -> Any:
        self._got("UnlockConnector", **kw)
        return call_result.UnlockConnector(status="UnlockFailed")

    @on(Action.update_firmware)
    async def on_update_firmware(self, **kw: Any) -> Any:
        self._got("UpdateFirmware", **kw)
        return call_result.UpdateFirmware()

    # The security extension (OCPP 1.6 Security Whitepaper).

    @on(Action.certificate_signed)
    async def on_certificate_signed(self, **kw: Any) -> Any:
        self._got("CertificateSigned", **kw)
        return call_result.CertificateSigned(status="Rejected")

    @on(Action.delete_certificate)
    async def on_delete_certificate(self, **kw: Any) -> Any:
        self._got("DeleteCertificate", **kw)
        return call_result.DeleteCertificate(status="NotFound")

    @on(Action.extended_trigger_message)
    async def on_extended_trigger_message(self, **kw: Any) -> Any:
        self._got("ExtendedTriggerMessage", **kw)
        return call_result.ExtendedTriggerMessage(status="Accepted")

    @on(Action.get_installed_certificate_ids)
    async def on_get_installed_certificate_ids(self, **kw: Any) -> Any:
        self._got("GetInstalledCertificateIds", **kw)
        return call_result.GetInstalledCertificateIds(status="NotFound")

    @on(Action.get_log)
    async def on_get_log(self, **kw: Any) -> Any:
        self._got("GetLog", **kw)
        return call_result.GetLog(status="Accepted", filename="security.log")

    @on(Action.install_certificate)
    async def on_install_certificate(self, **kw: Any) -> Any:
        self._got("InstallCertificate", **kw)
        return call_result.InstallCertificate(status="Accepted")

    @on(Action.signed_update_firmware)
    async def on_signed_update_firmware(self, **kw: Any) -> Any:
        self._got("SignedUpdateFirmware", **kw)
        return call_result.SignedUpdateFirmware(status="InvalidCertificate")


def run_peer(url: str, stop: threading.Event, peers: list[Peer]) -> None:
    """The asyncio charge point, connected until ``stop`` is set (a worker thread)."""

    async def main() -> None:
        async with connect(url, subprotocols=[Subprotocol("ocpp1.6")]) as ws:
            peer = Peer(PEER, ws)
            peers.append(peer)
            task = asyncio.create_task(peer.start())
            await peer.call(call.BootNotification(charge_point_model="Indep",
                                                  charge_point_vendor="Other"))
            # A threading.Event set from trio's thread: polled, no asyncio event to wait on.
            while not stop.is_set():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            task.cancel()

    asyncio.run(asyncio.wait_for(main(), 30))


#: (action, payload, the peer's answer as the API returns it).
EXCHANGES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("CancelReservation", {"reservationId": 5}, {"status": "Accepted"}),
    ("ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}, {"status": "Scheduled"}),
    ("ChangeConfiguration", {"key": "K", "value": "v"}, {"status": "RebootRequired"}),
    ("ClearCache", {}, {"status": "Rejected"}),
    ("ClearChargingProfile", {"connectorId": 1}, {"status": "Unknown"}),
    ("DataTransfer", {"vendorId": "v", "messageId": "m"}, {"status": "Accepted", "data": "pong"}),
    ("GetCompositeSchedule", {"connectorId": 1, "duration": 60}, {"status": "Rejected"}),
    ("GetConfiguration", {}, {"configurationKey": [
        {"key": "HeartbeatInterval", "readonly": False, "value": "60"}]}),
    ("GetDiagnostics", {"location": "ftp://x.invalid/"}, {"fileName": "peer.log"}),
    ("GetLocalListVersion", {}, {"listVersion": -1}),
    ("RemoteStartTransaction", {"idTag": "T1"}, {"status": "Rejected"}),
    ("RemoteStopTransaction", {"transactionId": 77}, {"status": "Rejected"}),
    ("ReserveNow", {"connectorId": 99, "expiryDate": "2030-01-01T00:00:00Z", "idTag": "T1",
                    "reservationId": 5}, {"status": "Unavailable"}),
    ("Reset", {"type": "Soft"}, {"status": "Accepted"}),
    ("SendLocalList", {"listVersion": 1, "updateType": "Full"}, {"status": "NotSupported"}),
    ("SetChargingProfile", {"connectorId": 1, "csChargingProfiles": {
        "chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative", "chargingSchedule": {
            "chargingRateUnit": "W", "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": 7000.0}]}}}, {"status": "NotSupported"}),
    ("TriggerMessage", {"requestedMessage": "Heartbeat"}, {"status": "NotImplemented"}),
    ("UnlockConnector", {"connectorId": 1}, {"status": "UnlockFailed"}),
    ("UpdateFirmware", {"location": "https://x.invalid/fw.bin",
                        "retrieveDate": "2030-01-01T00:00:00Z"}, {}),
    ("CertificateSigned", {"certificateChain": "-----BEGIN CERTIFICATE-----"},
     {"status": "Rejected"}),
    ("DeleteCertificate", {"certificateHashData": {
        "hashAlgorithm": "SHA256", "issuerNameHash": "a", "issuerKeyHash": "b",
        "serialNumber": "1"}}, {"status": "NotFound"}),
    ("ExtendedTriggerMessage", {"requestedMessage": "SignChargePointCertificate"},
     {"status": "Accepted"}),
    ("GetInstalledCertificateIds", {"certificateType": "CentralSystemRootCertificate"},
     {"status": "NotFound"}),
    ("GetLog", {"logType": "SecurityLog", "requestId": 3,
                "log": {"remoteLocation": "https://x.invalid/logs"}},
     {"status": "Accepted", "filename": "security.log"}),
    ("InstallCertificate", {"certificateType": "ManufacturerRootCertificate",
                            "certificate": "-----BEGIN CERTIFICATE-----"},
     {"status": "Accepted"}),
    ("SignedUpdateFirmware", {"requestId": 4, "firmware": {
        "location": "https://x.invalid/fw.bin", "retrieveDateTime": "2030-01-01T00:00:00Z",
        "signingCertificate": "-----BEGIN CERTIFICATE-----", "signature": "c2ln"}},
     {"status": "InvalidCertificate"}),
]


async def test_every_action_against_an_independent_charge_point(tmp_path: Path) -> None:
    db = tmp_path / "csms.db"
    assert {action for action, _, _ in EXCHANGES} == set(CSMS_ACTIONS)
    stop = threading.Event()
    peers: list[Peer] = []
    with trio.fail_after(40):
        async with running_csms(db) as (csms, port), trio.open_nursery() as nursery:
            url = f"ws://127.0.0.1:{port}/ocpp/{PEER}"
            nursery.start_soon(trio.to_thread.run_sync, run_peer, url, stop, peers)
            try:
                await wait_until(lambda: PEER in csms.state.chargers
                                 and csms.state.chargers[PEER].registration_status is not None)
                for action, payload, expected in EXCHANGES:
                    answer = await send(csms, PEER, action, payload)
                    assert answer.status == 200, (action, answer.body)
                    assert answer.body["result"] == expected, action
                    assert answer.body["action"] == action
                # What the peer's handlers received, as the payloads given (snake_case).
                assert [a for a, _ in peers[0].received] == [a for a, _, _ in EXCHANGES]

                # A CALLERROR, clearly marked, and recorded in the log.
                error = await send(csms, PEER, "DataTransfer", {"vendorId": "broken"})
                assert error.status == 200
                assert "result" not in error.body
                assert error.body["error"]["code"] == "NotSupported"
                assert error.body["error"]["description"] == "no such vendor here"
                assert isinstance(error.body["error"]["details"], dict)
                log = await csms.store.read_log(PEER)
                assert orjson.loads(log[-1].frame)[:3] == [4, error.body["uniqueId"],
                                                           "NotSupported"]

                # A timeout: 504, marked, with the uniqueId that went out.
                late = await send(csms, PEER, "Reset", {"type": "Hard"}, timeout=0.3)
                assert late.status == 504
                assert late.body["timeout"] is True
                log = await csms.store.read_log(PEER)
                out = [orjson.loads(r.frame) for r in log if r.direction == "out"]
                assert out[-1][:3] == [2, late.body["uniqueId"], "Reset"]

                # 400 and 404 never reach the peer.
                count = len(peers[0].received)
                bad = await send(csms, PEER, "UnlockConnector", {"connectorId": "one"})
                assert (bad.status, bad.body["code"]) == (400, "TypeConstraintViolation")
                assert (await send(csms, "NOBODY", "ClearCache", {})).status == 404
                await trio.sleep(1.0)  # the late Reset answer arrives and is dropped
                assert len(peers[0].received) == count
                # The log says the Reset was given up before its late answer: replay
                # drops that answer as the live CSMS did.
                log = await csms.store.read_log(PEER)
                marks = [(r.direction, orjson.loads(r.frame)) for r in log]
                given_up = marks.index(
                    ("abandoned", {"uniqueId": late.body["uniqueId"], "action": "Reset",
                                   "reason": "timeout", "sent": True}))
                answered = [i for i, (d, f) in enumerate(marks)
                            if d == "in" and f[:2] == [3, late.body["uniqueId"]]]
                assert answered and answered[0] > given_up

                # The domain saw the answers: remote commands and reservation refusals.
                commands = (await api(csms, "GET", "/api/remote-commands",
                                      query={"chargePoint": PEER})).body
                assert [(c["action"], c["status"]) for c in commands] == [
                    ("RemoteStopTransaction", "Rejected"), ("RemoteStartTransaction", "Rejected")]
                reservation = (await api(csms, "GET", "/api/reservations/5")).body
                assert (reservation["status"], reservation["state"]) == ("Unavailable", "refused")
                assert csms.state.chargers[PEER].local_list_version == -1
            finally:
                stop.set()
    async with open_sqlite_store(str(db)) as store:
        rows, stored, samples = (await store.read_log(), await store.load_state(),
                                 await store.read_samples())
    assert diff(stored, samples, rebuild(rows)) == []


def test_iso_in_is_an_ocpp_time() -> None:
    assert iso_in(0).endswith("Z")
