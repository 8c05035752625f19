"""The operator API end to end against the simulator: every CSMS-initiated action of OCPP
1.6 sent through ``POST /api/charge-points/{id}/ocpp16/{action}``, the records it leaves,
and a replay of the message log that rebuilds them exactly.

In-process CSMS with its SQLite file, SimChargePoint over real loopback WebSockets, real
time (see api_helpers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import trio

from api_helpers import api, iso_in, online_sim, running_csms, send, wait_until
from csms.api import CSMS_ACTIONS
from csms.api.client import call_api
from csms.app import Csms
from csms.replay import diff, rebuild
from csms.storage.sqlite import open_sqlite_store
from sim.ev import Ev

CP = "CP_01"


def result(response: Any) -> dict[str, Any]:
    assert response.status == 200, (response.status, response.body)
    assert "error" not in response.body, response.body
    assert isinstance(response.body["uniqueId"], str)
    payload: dict[str, Any] = response.body["result"]
    return payload


def status_of(csms: Csms, connector: int) -> str:
    return csms.state.evses[(CP, connector)].status


async def assert_replay_identical(db: Path) -> None:
    async with open_sqlite_store(str(db)) as store:
        rows = await store.read_log()
        stored = await store.load_state()
        samples = await store.read_samples()
    rebuilt = rebuild(rows)
    assert diff(stored, samples, rebuilt) == []
    assert rebuilt.state.reservations == stored.reservations
    assert rebuilt.state.remote_commands == stored.remote_commands


async def test_every_csms_action_against_the_simulator(tmp_path: Path) -> None:
    db = tmp_path / "csms.db"
    sent: set[str] = set()

    async def ok(action: str, payload: dict[str, Any], **query: Any) -> dict[str, Any]:
        sent.add(action)
        return result(await send(csms, CP, action, payload, **query))

    with trio.fail_after(40):
        async with running_csms(db) as (csms, port), online_sim(csms, port) as cp:
            # Availability and configuration.
            assert await ok("ChangeAvailability", {"type": "Inoperative", "connectorId": 2}) \
                == {"status": "Accepted"}
            await wait_until(lambda: status_of(csms, 2) == "Unavailable")
            assert (await ok("ChangeAvailability", {"connectorId": 2, "type": "Operative"}))[
                "status"] == "Accepted"
            await wait_until(lambda: status_of(csms, 2) == "Available")
            assert (await ok("ChangeConfiguration",
                             {"key": "MeterValueSampleInterval", "value": "900"}))["status"] \
                == "Accepted"
            config = await ok("GetConfiguration", {"key": ["MeterValueSampleInterval", "Nope"]})
            assert config["configurationKey"][0]["value"] == "900"
            assert config["unknownKey"] == ["Nope"]
            assert await ok("ClearCache", {}) == {"status": "Accepted"}

            # Vendor messages: only the charger's own vendorId is known.
            assert await ok("DataTransfer", {"vendorId": "com.other"}) == {
                "status": "UnknownVendorId"}
            assert await ok("DataTransfer", {"vendorId": "TrioSim", "messageId": "Echo",
                                             "data": "ping"}) == {"status": "Accepted",
                                                                  "data": "ping"}

            # The local authorization list and its version.
            full = {"listVersion": 3, "updateType": "Full", "localAuthorizationList": [
                {"idTagInfo": {"status": "Accepted"}, "idTag": "LOCAL1"}]}
            assert (await ok("SendLocalList", full))["status"] == "Accepted"
            assert cp.local_list == {"LOCAL1": {"status": "Accepted"}}
            assert csms.state.chargers[CP].local_list_version == 3
            stale = {"listVersion": 2, "updateType": "Differential"}
            assert (await ok("SendLocalList", stale))["status"] == "VersionMismatch"
            assert await ok("GetLocalListVersion", {}) == {"listVersion": 3}
            assert csms.state.chargers[CP].local_list_version == 3

            # Reservations: accepted, shown as Reserved, cancelled; refusals by the charger.
            reserve = {"connectorId": 1, "expiryDate": iso_in(3600), "idTag": "TAG1",
                       "reservationId": 7}
            assert await ok("ReserveNow", reserve) == {"status": "Accepted"}
            await wait_until(lambda: status_of(csms, 1) == "Reserved")
            record = (await api(csms, "GET", "/api/reservations/7")).body
            assert (record["state"], record["status"], record["chargePoint"]) == (
                "active", "Accepted", CP)
            assert await ok("CancelReservation", {"reservationId": 7}) == {"status": "Accepted"}
            await wait_until(lambda: status_of(csms, 1) == "Available")
            assert await ok("CancelReservation", {"reservationId": 7}) == {"status": "Rejected"}
            record = (await api(csms, "GET", "/api/reservations/7")).body
            assert (record["state"], record["cancelStatus"]) == ("cancelled", "Accepted")
            # No pre-check: an unknown connector and an unknown reservation reach the charger.
            assert await ok("ReserveNow", {**reserve, "connectorId": 99,
                                           "reservationId": 8}) == {"status": "Rejected"}
            assert (await api(csms, "GET", "/api/reservations/8")).body["state"] == "refused"
            assert await ok("CancelReservation", {"reservationId": 4242}) == {
                "status": "Rejected"}

            # Charging profiles: set, composite schedule, clear.
            profile = {"connectorId": 1, "csChargingProfiles": {
                "chargingProfileId": 11, "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute",
                "chargingSchedule": {"chargingRateUnit": "A", "startSchedule": iso_in(-60),
                                     "chargingSchedulePeriod": [{"startPeriod": 0,
                                                                 "limit": 16.0}]}}}
            assert await ok("SetChargingProfile", profile) == {"status": "Accepted"}
            detail = (await api(csms, "GET", f"/api/charge-points/{CP}")).body
            assert [p["chargingProfileId"] for p in detail["chargingProfiles"]] == [11]
            composite = await ok("GetCompositeSchedule", {"connectorId": 1, "duration": 600,
                                                          "chargingRateUnit": "A"})
            assert composite["status"] == "Accepted"
            assert composite["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 16.0
            assert await ok("ClearChargingProfile", {"id": 11}) == {"status": "Accepted"}
            assert (CP, 1) not in csms.state.profiles
            assert await ok("ClearChargingProfile", {"id": 11}) == {"status": "Unknown"}

            # Remote start (the charger waits for the EV), remote stop.
            assert await ok("RemoteStartTransaction", {"connectorId": 1, "idTag": "TAG2"}) == {
                "status": "Accepted"}
            await cp.plug_in(1, Ev(60_000, 20.0, 11_000))
            await wait_until(lambda: csms.state.open_session(CP, 1) is not None)
            tx = csms.state.open_session(CP, 1)
            assert tx is not None and tx.id_tag == "TAG2"
            assert await ok("RemoteStopTransaction", {"transactionId": 999_999}) == {
                "status": "Rejected"}
            assert await ok("RemoteStopTransaction",
                            {"transactionId": tx.transaction_id}) == {"status": "Accepted"}
            await wait_until(lambda: not csms.state.sessions[tx.transaction_id].open)
            assert csms.state.sessions[tx.transaction_id].stop_reason == "Remote"
            commands = (await api(csms, "GET", "/api/remote-commands")).body
            assert [(c["action"], c["status"]) for c in commands] == [
                ("RemoteStopTransaction", "Accepted"), ("RemoteStopTransaction", "Rejected"),
                ("RemoteStartTransaction", "Accepted")]

            # Unlock, by connector state.
            assert await ok("UnlockConnector", {"connectorId": 1}) == {"status": "Unlocked"}
            assert await ok("UnlockConnector", {"connectorId": 0}) == {"status": "NotSupported"}
            await cp.fault(2)
            assert await ok("UnlockConnector", {"connectorId": 2}) == {"status": "UnlockFailed"}
            await cp.clear_fault(2)

            # Firmware and diagnostics through their stages, and triggered.
            assert await ok("UpdateFirmware", {"location": "https://fw.invalid/ac22-2.0.1.bin",
                                               "retrieveDate": iso_in(-1)}) == {}
            await wait_until(lambda: csms.state.chargers[CP].firmware_status == "Installed")
            diag = await ok("GetDiagnostics", {"location": "ftp://diag.invalid/"})
            assert diag["fileName"].startswith(f"diagnostics-{CP}-")
            await wait_until(lambda: csms.state.chargers[CP].diagnostics_status == "Uploaded")
            for what in ("FirmwareStatusNotification", "DiagnosticsStatusNotification",
                         "StatusNotification", "Heartbeat"):
                assert await ok("TriggerMessage", {"requestedMessage": what}) == {
                    "status": "Accepted"}
            detail = (await api(csms, "GET", f"/api/charge-points/{CP}")).body
            assert (detail["firmwareStatus"], detail["diagnosticsStatus"]) == (
                "Installed", "Uploaded")
            assert detail["localListVersion"] == 3

            # The security extension: certificates, a log upload, signed firmware.
            pem = "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----"
            assert await ok("InstallCertificate", {
                "certificateType": "CentralSystemRootCertificate", "certificate": pem}) == {
                "status": "Accepted"}
            ids = await ok("GetInstalledCertificateIds",
                           {"certificateType": "CentralSystemRootCertificate"})
            assert ids["status"] == "Accepted" and len(ids["certificateHashData"]) == 1
            assert await ok("DeleteCertificate",
                            {"certificateHashData": ids["certificateHashData"][0]}) == {
                "status": "Accepted"}
            assert await ok("GetInstalledCertificateIds",
                            {"certificateType": "CentralSystemRootCertificate"}) == {
                "status": "NotFound"}
            assert await ok("CertificateSigned", {"certificateChain": pem}) == {
                "status": "Accepted"}
            log = await ok("GetLog", {"logType": "SecurityLog", "requestId": 11,
                                      "log": {"remoteLocation": "https://logs.invalid/"}})
            assert log["status"] == "Accepted" and log["filename"].startswith(f"security-{CP}-")
            await wait_until(lambda: csms.state.chargers[CP].log_status == "Uploaded")
            assert await ok("SignedUpdateFirmware", {"requestId": 12, "firmware": {
                "location": "https://fw.invalid/ac22-2.1.0.bin", "retrieveDateTime": iso_in(-1),
                "signingCertificate": pem, "signature": "c2ln"}}) == {"status": "Accepted"}
            await wait_until(lambda: csms.state.chargers[CP].signed_firmware_status
                             == "Installed"
                             and csms.state.chargers[CP].security_event_count == 1)
            assert csms.state.chargers[CP].security_events[0].type == "FirmwareUpdated"
            assert await ok("ExtendedTriggerMessage",
                            {"requestedMessage": "LogStatusNotification"}) == {
                "status": "Accepted"}
            assert await ok("ExtendedTriggerMessage",
                            {"requestedMessage": "SignChargePointCertificate"}) == {
                "status": "NotImplemented"}

            # Reset last: the charger reboots.
            assert await ok("Reset", {"type": "Soft"}) == {"status": "Accepted"}
            await wait_until(lambda: cp.connects == 2 and cp.online)
            await wait_until(lambda: csms.connections.get(CP) is not None)
    assert sent == set(CSMS_ACTIONS)
    await assert_replay_identical(db)


async def test_refusals_never_send_anything(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with running_csms(tmp_path / "csms.db") as (csms, port), \
                online_sim(csms, port) as _cp:
            before = len(await csms.store.read_log())
            # 400: the payload breaks the schema; the error names the rule and the field.
            bad = await send(csms, CP, "Reset", {"type": "Medium"})
            assert bad.status == 400
            assert bad.body["error"] == "PayloadError"
            assert bad.body["code"] == "PropertyConstraintViolation"
            missing = await send(csms, CP, "RemoteStopTransaction", {})
            assert (missing.status, missing.body["code"]) == (400, "OccurenceConstraintViolation")
            # 400: not an action the CSMS sends.
            for action in ("BootNotification", "Frobnicate"):
                unknown = await send(csms, CP, action, {})
                assert unknown.status == 400
                assert unknown.body["error"] == "UnknownAction"
                assert "Reset" in unknown.body["actions"]
            # 400: the body is not a JSON object.
            raw = await trio.to_thread.run_sync(lambda: call_api(
                f"http://127.0.0.1:{csms.api_port}", "POST",
                f"/api/charge-points/{CP}/ocpp16/Reset", body=[1, 2]))
            assert raw.status == 400
            # 404: not connected.
            absent = await send(csms, "CP_99", "Reset", {"type": "Soft"})
            assert (absent.status, absent.body["error"]) == (404, "NotConnected")
            # Nothing of the above reached the wire.
            rows = await csms.store.read_log()
            assert [r for r in rows[before:] if r.direction == "out"] == []


async def test_reservation_used_by_start_transaction_and_expiry(tmp_path: Path) -> None:
    db = tmp_path / "csms.db"
    with trio.fail_after(30):
        async with running_csms(db) as (csms, port), online_sim(csms, port) as cp:
            expiry = iso_in(3600)
            answer = await send(csms, CP, "ReserveNow", {
                "connectorId": 1, "expiryDate": expiry, "idTag": "TAG1",
                "parentIdTag": "GROUP", "reservationId": 21})
            assert result(answer) == {"status": "Accepted"}
            await wait_until(lambda: status_of(csms, 1) == "Reserved")
            # Another idTag cannot use it.
            await cp.plug_in(1, Ev(60_000, 20.0, 11_000))
            assert not await cp.start_session(1, "OTHER", authorize=False)
            assert await cp.start_session(1, "TAG1")
            await wait_until(lambda: csms.state.open_session(CP, 1) is not None)
            session = csms.state.open_session(CP, 1)
            assert session is not None and session.reservation_id == 21
            record = (await api(csms, "GET", "/api/reservations/21")).body
            assert record["state"] == "used"
            assert record["usedByTransactionId"] == session.transaction_id
            assert (record["expiryDate"], record["parentIdTag"]) == (expiry, "GROUP")
            tx = (await api(csms, "GET", f"/api/transactions/{session.transaction_id}")).body
            assert tx["reservationId"] == 21

            # Occupied while charging; a short reservation on EVSE 2 expires by itself.
            occupied = await send(csms, CP, "ReserveNow", {
                "connectorId": 1, "expiryDate": iso_in(60), "idTag": "T", "reservationId": 22})
            assert result(occupied) == {"status": "Occupied"}
            short = await send(csms, CP, "ReserveNow", {
                "connectorId": 2, "expiryDate": iso_in(0.6), "idTag": "T", "reservationId": 23})
            assert result(short) == {"status": "Accepted"}
            await wait_until(lambda: status_of(csms, 2) == "Reserved")
            await wait_until(lambda: status_of(csms, 2) == "Available")
            record = (await api(csms, "GET", "/api/reservations/23")).body
            assert record["state"] == "expired"
            listed = (await api(csms, "GET", "/api/reservations",
                                query={"state": "expired"})).body
            assert [r["reservationId"] for r in listed] == [23]
            all_ids = [r["reservationId"]
                       for r in (await api(csms, "GET", "/api/reservations")).body]
            assert all_ids == [23, 22, 21]
            await cp.fault(2)
            faulted = await send(csms, CP, "ReserveNow", {
                "connectorId": 2, "expiryDate": iso_in(60), "idTag": "T", "reservationId": 24})
            assert result(faulted) == {"status": "Faulted"}
    await assert_replay_identical(db)


async def test_records_match_the_wire_after_a_scripted_sequence(tmp_path: Path) -> None:
    db = tmp_path / "csms.db"
    with trio.fail_after(30):
        async with running_csms(db) as (csms, port), online_sim(csms, port) as cp, \
                online_sim(csms, port, "CP_02", evses=1) as cp2:
            await cp.plug_in(1, Ev(60_000, 20.0, 11_000))
            await cp.start_session(1, "ALICE")
            await cp2.plug_in(1, Ev(60_000, 50.0, 7_000))
            await cp2.start_session(1, "BOB")
            await cp.wait_queue_empty()
            await cp2.wait_queue_empty()
            await trio.sleep(0.2)  # a little energy
            await cp.stop_session(1, reason="Local")
            await cp.wait_queue_empty()

            # The transactions, as the wire had them.
            log = await csms.store.read_log()
            sent = [orjson.loads(r.frame) for r in log if r.direction == "in"]
            starts = {f[3]["idTag"]: f[3] for f in sent if f[0] == 2 and f[2] ==
                      "StartTransaction"}
            stops = [f[3] for f in sent if f[0] == 2 and f[2] == "StopTransaction"]
            assert len(stops) == 1
            listed = (await api(csms, "GET", "/api/transactions")).body
            assert [t["idTag"] for t in listed] == ["BOB", "ALICE"]  # newest first
            alice = next(t for t in listed if t["idTag"] == "ALICE")
            assert alice["meterStart"] == starts["ALICE"]["meterStart"]
            assert alice["startTimestamp"] == starts["ALICE"]["timestamp"]
            assert alice["meterStop"] == stops[0]["meterStop"]
            assert alice["stopTimestamp"] == stops[0]["timestamp"]
            assert alice["stopReason"] == "Local"
            assert alice["energyWh"] == stops[0]["meterStop"] - starts["ALICE"]["meterStart"]
            assert alice["active"] is False
            assert alice["transactionId"] == stops[0]["transactionId"]
            active = (await api(csms, "GET", "/api/transactions",
                                query={"active": True})).body
            assert [t["idTag"] for t in active] == ["BOB"]
            assert (await api(csms, "GET", "/api/transactions",
                              query={"chargePoint": "CP_01"})).body == [alice]
            assert (await api(csms, "GET", "/api/transactions",
                              query={"idTag": "BOB", "active": False})).body == []
            assert len((await api(csms, "GET", "/api/transactions",
                                  query={"limit": 1})).body) == 1
            one = await api(csms, "GET", f"/api/transactions/{alice['transactionId']}")
            assert one.body == alice
            assert (await api(csms, "GET", "/api/transactions/4242")).status == 404
            assert (await api(csms, "GET", "/api/transactions",
                              query={"limit": 0})).status == 400

            # Charge points: connection, boot data, EVSE states.
            points = (await api(csms, "GET", "/api/charge-points")).body
            assert [p["id"] for p in points] == ["CP_01", "CP_02"]
            detail = (await api(csms, "GET", "/api/charge-points/CP_01")).body
            boot = next(f[3] for f in sent if f[0] == 2 and f[2] == "BootNotification")
            assert detail["connected"] is True
            assert detail["boot"]["chargePointVendor"] == boot["chargePointVendor"]
            assert detail["boot"]["chargePointSerialNumber"] == boot["chargePointSerialNumber"]
            assert detail["boot"]["registrationStatus"] == "Accepted"
            assert [(e["connectorId"], e["status"]) for e in detail["evses"]] == [
                (1, "Finishing"), (2, "Available")]
            assert (await api(csms, "GET", "/api/charge-points/NOPE")).status == 404

            # The message log, newest first, exactly as stored.
            messages = (await api(csms, "GET", "/api/messages",
                                  query={"chargePoint": "CP_02", "limit": 5})).body
            mine = [r for r in await csms.store.read_log("CP_02")][::-1][:5]
            assert [m["seq"] for m in messages] == [r.seq for r in mine]
            assert [m["frame"] for m in messages] == [r.frame for r in mine]
            assert all(m["chargePoint"] == "CP_02" for m in messages)
            every = (await api(csms, "GET", "/api/messages", query={"limit": 1000})).body
            assert [m["seq"] for m in every] == sorted((m["seq"] for m in every), reverse=True)
            assert len(every) == len(await csms.store.read_log())
    await assert_replay_identical(db)


async def test_cancellation_of_the_sim(tmp_path: Path) -> None:
    """A charge point that goes away: its records say so, sending to it is a 404."""
    with trio.fail_after(20):
        async with running_csms(tmp_path / "csms.db") as (csms, port):
            async with online_sim(csms, port) as _cp:
                pass
            await wait_until(lambda: csms.connections.get(CP) is None)
            detail = (await api(csms, "GET", f"/api/charge-points/{CP}")).body
            assert detail["connected"] is False
            assert (await send(csms, CP, "ClearCache", {})).status == 404


async def test_reservations_are_per_charge_point_and_the_csms_allocates_ids(
    tmp_path: Path,
) -> None:
    """Two charge points' reservation 7 are two records (one replaced the other before);
    a ReserveNow without reservationId gets one above every id used; the API filters by
    charge point and asks which one when an id is ambiguous."""
    db = tmp_path / "csms.db"
    reserve = {"connectorId": 1, "expiryDate": iso_in(3600), "idTag": "TAG1"}
    with trio.fail_after(40):
        async with running_csms(db) as (csms, port), online_sim(csms, port, "CP_01"), \
                online_sim(csms, port, "CP_02"):
            for cp_id in ("CP_01", "CP_02"):
                answer = await send(csms, cp_id, "ReserveNow", {**reserve, "reservationId": 7})
                assert result(answer) == {"status": "Accepted"}
                assert answer.body["reservationId"] == 7
            assert set(csms.state.reservations) == {("CP_01", 7), ("CP_02", 7)}
            ambiguous = await api(csms, "GET", "/api/reservations/7")
            assert ambiguous.status == 409
            assert ambiguous.body["chargePoints"] == ["CP_01", "CP_02"]
            one = await api(csms, "GET", "/api/reservations/7", query={"chargePoint": "CP_02"})
            assert (one.status, one.body["chargePoint"]) == (200, "CP_02")
            missing = await api(csms, "GET", "/api/reservations/7", query={"chargePoint": "CP_9"})
            assert missing.status == 404
            # No id given: the CSMS picks one no charge point has from it.
            allocated = await send(csms, "CP_02", "ReserveNow",
                                   {**reserve, "connectorId": 2})
            assert result(allocated) == {"status": "Accepted"}
            assert allocated.body["reservationId"] == 8
            assert csms.state.reservations[("CP_02", 8)].connector_id == 2
            listed = await api(csms, "GET", "/api/reservations", query={"chargePoint": "CP_02"})
            assert [r["reservationId"] for r in listed.body] == [8, 7]
            assert {r["chargePoint"] for r in listed.body} == {"CP_02"}
            # Cancelling CP_01's reservation 7 leaves CP_02's as it was.
            assert result(await send(csms, "CP_01", "CancelReservation",
                                     {"reservationId": 7})) == {"status": "Accepted"}
            assert csms.state.reservations[("CP_01", 7)].cancel_status == "Accepted"
            assert csms.state.reservations[("CP_02", 7)].cancel_status is None
    await assert_replay_identical(db)
