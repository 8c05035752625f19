"""The OCPP 1.6 security extension over 1.6J (issue 14, point 4), CSMS side: a charger's
SecurityEventNotification, LogStatusNotification and SignedFirmwareStatusNotification
are recorded, shown by the API and ``status``, and rebuilt by replay; the operator sends
the extension's commands through the API.

Real loopback WebSockets and HTTP, a real SQLite file; real time (see ``api_helpers``).
"""

from __future__ import annotations

import datetime
from pathlib import Path

import trio

from api_helpers import api, running_csms
from csms.domain.model import SECURITY_EVENTS_KEPT
from csms.inspect import render_text
from csms.replay import diff, rebuild
from raw_cp_helpers import ServingChargePoint, Wire

BOOT = {"chargePointVendor": "Acme", "chargePointModel": "AC-22"}


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


async def test_security_notifications_are_recorded_shown_and_replayed(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with running_csms(tmp_path / "csms.db") as (csms, port), \
                ServingChargePoint.connect(port, "CP_S", Wire()) as cp:
            await cp.call("BootNotification", BOOT)
            for n in range(SECURITY_EVENTS_KEPT + 2):
                assert await cp.call("SecurityEventNotification", {
                    "type": "InvalidCentralSystemCertificate" if n else "StartupOfTheDevice",
                    "timestamp": now_iso(), "techInfo": f"event {n}"}) == {}
            # techInfo is optional.
            assert await cp.call("SecurityEventNotification", {
                "type": "ResetOrReboot", "timestamp": now_iso()}) == {}
            assert await cp.call("LogStatusNotification", {"status": "Uploaded",
                                                           "requestId": 7}) == {}
            assert await cp.call("SignedFirmwareStatusNotification", {
                "status": "SignatureVerified", "requestId": 8}) == {}
            assert await cp.call("SignCertificate", {"csr": "-----BEGIN CSR-----"}) == {
                "status": "Accepted"}

            shown = (await api(csms, "GET", "/api/charge-points/CP_S")).body
            assert shown["securityEventCount"] == SECURITY_EVENTS_KEPT + 3
            events = shown["securityEvents"]
            assert len(events) == SECURITY_EVENTS_KEPT
            assert events[-1]["type"] == "ResetOrReboot" and events[-1]["techInfo"] is None
            assert events[0]["techInfo"] == "event 3"
            assert (shown["logStatus"], shown["signedFirmwareStatus"]) == (
                "Uploaded", "SignatureVerified")
            assert "Security events" in render_text(csms.state)
            assert shown["certificateSigningRequest"]["csr"] == "-----BEGIN CSR-----"

            rows = await csms.store.read_log()
            stored = await csms.store.load_state()
            assert diff(stored, await csms.store.read_samples(), rebuild(rows)) == []
            assert stored.chargers["CP_S"].security_event_count == SECURITY_EVENTS_KEPT + 3


async def test_the_extension_commands_go_through_the_api(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with running_csms(tmp_path / "csms.db") as (csms, port), \
                ServingChargePoint.connect(port, "CP_S", Wire()) as cp:
            await cp.call("BootNotification", BOOT)
            cp.handlers["InstallCertificate"] = lambda payload: {"status": "Accepted"}
            cp.handlers["GetLog"] = lambda payload: {"status": "Accepted",
                                                     "filename": "log.tar"}
            commands = [
                ("InstallCertificate", {"certificateType": "CentralSystemRootCertificate",
                                        "certificate": "-----BEGIN CERTIFICATE-----"}),
                ("GetLog", {"logType": "SecurityLog", "requestId": 7,
                            "log": {"remoteLocation": "https://logs.example/up"}}),
            ]
            async with trio.open_nursery() as nursery:
                answers: list[object] = []

                async def send_all() -> None:
                    for action, payload in commands:
                        answer = await api(
                            csms, "POST", f"/api/charge-points/CP_S/ocpp16/{action}", payload)
                        answers.append(answer.body.get("result"))

                nursery.start_soon(send_all)
                await cp.serve_until(lambda: len(cp.served) == len(commands))
            assert answers == [{"status": "Accepted"},
                               {"status": "Accepted", "filename": "log.tar"}]
            bad = await api(csms, "POST", "/api/charge-points/CP_S/ocpp16/GetLog",
                            {"logType": "NoSuchLog", "requestId": 1,
                             "log": {"remoteLocation": "x"}})
            assert bad.status == 400  # the extension's schema applies: nothing sent
