"""The charger registry end to end: unknown charge points under each policy, a pending
charger accepted by the operator and then charging, security profile 1 (HTTP Basic) with
an independent client, and the connection hijack of issue 14 refused.

Real loopback WebSockets and HTTP, a real SQLite file; real time (see ``api_helpers``).
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import RegistrationStatus
from trio_websocket import ConnectionRejected, open_websocket_url
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from api_helpers import api, online_sim, running_csms, sim_charge_point, wait_until
from csms.app import Csms
from csms.secrets import redact_frame
from ocppj.identity import basic_authorization
from raw_cp_helpers import ServingChargePoint, Wire
from sim.ev import Ev

OCPP16 = "ocpp1.6"
PASSWORD = "0123456789abcdef-secret"
BOOT = {"chargePointVendor": "Acme", "chargePointModel": "AC-22"}


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def basic(cp_id: str, password: str) -> list[tuple[bytes, bytes]]:
    return [basic_authorization(cp_id, password)]


async def register(csms: Csms, cp_id: str, **fields: Any) -> dict[str, Any]:
    answer = await api(csms, "PUT", f"/api/registrations/{cp_id}", fields)
    assert answer.status == 200, answer
    body: dict[str, Any] = answer.body
    return body


async def refused(port: int, cp_id: str, headers: list[tuple[bytes, bytes]] | None = None
                  ) -> ConnectionRejected:
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(f"ws://127.0.0.1:{port}/ocpp/{cp_id}",
                                      subprotocols=[OCPP16], extra_headers=headers):
            pass
    return rejected.value


# -- registration policies ------------------------------------------------------------------


async def test_a_pending_charger_is_accepted_by_the_operator_then_charges(
    tmp_path: Path,
) -> None:
    with trio.fail_after(30):
        async with running_csms(tmp_path / "csms.db", unknown_chargers="pending") as (
            csms, port
        ), trio.open_nursery() as nursery:
            cp = sim_charge_point(port, "CP_NEW")
            await nursery.start(cp.run)
            await wait_until(lambda: "CP_NEW" in csms.state.chargers
                             and csms.state.chargers["CP_NEW"].registration_status
                             == "Pending")
            listed = await api(csms, "GET", "/api/registrations")
            assert [(r["chargePoint"], r["status"], r["connected"]) for r in listed.body] == [
                ("CP_NEW", "pending", True)]
            assert not cp.uplink.booted  # a pending charger waits; nothing starts

            accepted = await register(csms, "CP_NEW", status="accepted")
            assert accepted["bootTriggered"] == {"result": {"status": "Accepted"}}
            await wait_until(lambda: cp.uplink.booted
                             and csms.state.chargers["CP_NEW"].registration_status
                             == "Accepted")
            await wait_until(lambda: ("CP_NEW", 1) in csms.state.evses)
            await cp.plug_in(1, Ev(60_000, 20.0, 11_000))
            assert await cp.start_session(1, "TAG1")
            await wait_until(lambda: any(s.open for s in csms.state.sessions.values()))
            nursery.cancel_scope.cancel()


async def test_a_pending_charger_s_transaction_is_recorded_and_refused(tmp_path: Path) -> None:
    """A charger that starts a transaction while pending (real ones do) loses nothing: the
    message is recorded and answered, its idTag Invalid, so the charger stops it."""
    with trio.fail_after(30):
        async with running_csms(tmp_path / "csms.db", unknown_chargers="pending") as (
            csms, port
        ), ServingChargePoint.connect(port, "CP_RAW", Wire()) as cp:
            boot = await cp.call("BootNotification", BOOT)
            assert (boot["status"], boot["interval"]) == ("Pending", 60)
            start = {"connectorId": 1, "idTag": "TAG1", "meterStart": 0,
                     "timestamp": now_iso()}
            started = await cp.call("StartTransaction", start)
            assert started["idTagInfo"] == {"status": "Invalid"}
            assert isinstance(started["transactionId"], int)
            assert (await cp.call("Authorize", {"idTag": "TAG1"}))["idTagInfo"] == {
                "status": "Invalid"}
            rows = await csms.store.read_messages("CP_RAW", 100)
            assert any('"StartTransaction"' in r.frame for r in rows)

            cp.handlers["TriggerMessage"] = lambda payload: {"status": "Accepted"}
            async with trio.open_nursery() as nursery:
                nursery.start_soon(functools.partial(register, csms, "CP_RAW", status="accepted"))
                await cp.serve_until(lambda: bool(cp.served_actions("TriggerMessage")))
            assert cp.served_actions("TriggerMessage") == [
                {"requestedMessage": "BootNotification"}]
            assert (await cp.call("BootNotification", BOOT))["status"] == "Accepted"
            start["timestamp"] = now_iso()
            assert (await cp.call("StartTransaction", start))["idTagInfo"]["status"] == \
                "Accepted"


async def test_unknown_chargers_are_rejected_at_the_handshake_and_leave_no_record(
    tmp_path: Path,
) -> None:
    with trio.fail_after(20):
        async with running_csms(tmp_path / "csms.db", unknown_chargers="reject") as (
            csms, port
        ):
            rejected = await refused(port, "CP_X")
            assert rejected.status_code == 404
            assert b"unknown charge point 'CP_X'" in (rejected.body or b"")
            assert not csms.state.chargers and not csms.registry.records
            await register(csms, "CP_X")
            async with ServingChargePoint.connect(port, "CP_X", Wire()) as cp:
                assert (await cp.call("BootNotification", BOOT))["status"] == "Accepted"


async def test_disabling_closes_the_live_connection_and_refuses_the_next(
    tmp_path: Path,
) -> None:
    with trio.fail_after(20):
        async with running_csms(tmp_path / "csms.db") as (csms, port):
            async with ServingChargePoint.connect(port, "CP_D", Wire()) as cp:
                await cp.call("BootNotification", BOOT)
                body = await register(csms, "CP_D", status="disabled")
                assert body["status"] == "disabled"
                await cp.wait_closed(1008)
            assert (await refused(port, "CP_D")).status_code == 403
            assert (await api(csms, "DELETE", "/api/registrations/CP_D")).status == 204
            async with ServingChargePoint.connect(port, "CP_D", Wire()) as cp:
                assert (await cp.call("BootNotification", BOOT))["status"] == "Accepted"


# -- security profile 1 ---------------------------------------------------------------------


async def _peer_boot(port: int, cp_id: str, password: str | None) -> Any:
    """An independent charge point (the ``ocpp`` package over ``websockets``), with
    Basic credentials in the URL when given: its BootNotification answer, or the HTTP
    status refusing its handshake."""
    auth = f"{cp_id}:{password}@" if password is not None else ""

    async def scenario() -> Any:
        try:
            async with connect(f"ws://{auth}127.0.0.1:{port}/ocpp/{cp_id}",
                               subprotocols=[Subprotocol(OCPP16)]) as ws:
                cp = ChargePoint(cp_id, ws, response_timeout=5)
                reader = asyncio.create_task(cp.start())
                try:
                    return await cp.call(call.BootNotification(
                        charge_point_model="M", charge_point_vendor="V"), suppress=False)
                finally:
                    reader.cancel()
        except InvalidStatus as exc:
            return exc.response.status_code, dict(exc.response.headers)

    def run() -> Any:
        return asyncio.run(asyncio.wait_for(scenario(), 10))

    with trio.fail_after(15):
        return await trio.to_thread.run_sync(run)


async def test_profile_1_with_an_independent_client_right_and_wrong_passwords(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with trio.fail_after(40):
        async with running_csms(tmp_path / "csms.db", security_profile=1,
                                unknown_chargers="reject") as (csms, port):
            shown = await register(csms, "CP_01", password=PASSWORD)
            assert shown["passwordSet"] is True and "password" not in json.dumps(shown).lower(
            ).replace("passwordset", "")
            boot = await _peer_boot(port, "CP_01", PASSWORD)
            assert isinstance(boot, call_result.BootNotification)
            assert boot.status == RegistrationStatus.accepted
            for password in ("0123456789abcdef-wrong", None):
                status, headers = await _peer_boot(port, "CP_01", password)
                assert status == 401
                assert headers["www-authenticate"].startswith("Basic")
            # Another charger's credentials do not open this one.
            await register(csms, "CP_02", password="another-password-0002")
            status, _ = await _peer_boot(port, "CP_02", PASSWORD)
            assert status == 401
            # Again with the right one (verified from the cache this time).
            assert isinstance(await _peer_boot(port, "CP_01", PASSWORD),
                              call_result.BootNotification)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "wrong password for charge point 'CP_01'" in logged
    assert PASSWORD not in logged and "-wrong" not in logged
    stored = (tmp_path / "csms.db").read_bytes()
    assert PASSWORD.encode() not in stored


async def test_a_charger_of_a_higher_profile_cannot_connect_with_a_lower_one(
    tmp_path: Path,
) -> None:
    with trio.fail_after(20):
        async with running_csms(tmp_path / "csms.db") as (csms, port):  # default profile 0
            await register(csms, "CP_1", securityProfile=1, password=PASSWORD)
            await register(csms, "CP_2", securityProfile=2, password=PASSWORD)
            assert (await refused(port, "CP_1")).status_code == 401
            # Profile 2 needs TLS: credentials on a plain connection are not enough.
            assert (await refused(port, "CP_2", basic("CP_2", PASSWORD))).status_code == 403
            async with ServingChargePoint.connect(port, "CP_0", Wire()) as cp:
                assert (await cp.call("BootNotification", BOOT))["status"] == "Accepted"


async def test_a_live_connection_is_not_hijacked_without_the_password(tmp_path: Path) -> None:
    """The attack: connecting under a live id replaced its connection, after which the
    intruder could stop its transactions."""
    url = "ws://127.0.0.1:{}/ocpp/CP_01"
    with trio.fail_after(30):
        async with running_csms(tmp_path / "csms.db", security_profile=1) as (csms, port):
            await register(csms, "CP_01", password=PASSWORD)
            async with open_websocket_url(url.format(port), subprotocols=[OCPP16],
                                          extra_headers=basic("CP_01", PASSWORD)) as ws:
                cp = ServingChargePoint("CP_01", ws, Wire())
                assert (await cp.call("BootNotification", BOOT))["status"] == "Accepted"
                live = csms.connections.get("CP_01")
                for headers in (None, basic("CP_01", "not-the-password-000"),
                                basic("CP_02", PASSWORD)):
                    assert (await refused(port, "CP_01", headers)).status_code == 401
                assert csms.connections.get("CP_01") is live
                assert "currentTime" in await cp.call("Heartbeat", {})
                # The charger itself, reconnecting with its password, does replace it.
                async with open_websocket_url(url.format(port), subprotocols=[OCPP16],
                                              extra_headers=basic("CP_01", PASSWORD)):
                    await cp.wait_closed(1000)


async def test_registrations_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "csms.db"
    with trio.fail_after(30):
        async with running_csms(db, security_profile=1) as (csms, _port):
            await register(csms, "CP_01", password=PASSWORD, status="pending")
        async with running_csms(db, security_profile=1) as (csms, port):
            shown = (await api(csms, "GET", "/api/registrations/CP_01")).body
            assert (shown["status"], shown["passwordSet"]) == ("pending", True)
            async with open_websocket_url(f"ws://127.0.0.1:{port}/ocpp/CP_01",
                                          subprotocols=[OCPP16],
                                          extra_headers=basic("CP_01", PASSWORD)) as ws:
                cp = ServingChargePoint("CP_01", ws, Wire())
                assert (await cp.call("BootNotification", BOOT))["status"] == "Pending"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"password": "short"}, "16 to 40"),
        ({"password": "x" * 41}, "16 to 40"),
        ({"password": "0123456789abcdef\n"}, "printable ASCII"),
        ({"securityProfile": 4}, "securityProfile"),
        ({"securityProfile": True}, "securityProfile"),
        ({"status": "Accepted"}, "status must be"),
        ({"pasword": PASSWORD}, "unknown fields: pasword"),
    ],
)
async def test_bad_registrations_are_refused(
    tmp_path: Path, body: dict[str, Any], message: str
) -> None:
    with trio.fail_after(20):
        async with running_csms(tmp_path / "csms.db") as (csms, _port):
            answer = await api(csms, "PUT", "/api/registrations/CP_01", body)
            assert answer.status == 400, answer
            assert message in answer.body["message"]
            assert not csms.registry.records


async def test_the_csms_does_not_serve_chargers_beyond_loopback_without_authentication(
    tmp_path: Path,
) -> None:
    with trio.fail_after(60):
        result = await trio.run_process(
            [sys.executable, "-m", "csms", "--host", "0.0.0.0", "--port", "0", "--no-api"],
            cwd=tmp_path, capture_stdout=True, capture_stderr=True, check=False,
        )
    assert result.returncode == 2
    assert b"beyond loopback, without charger authentication" in result.stderr
    assert not (tmp_path / "csms.db").exists()


# -- AuthorizationKey ---------------------------------------------------------------------


def test_secret_values_are_redacted_from_frames() -> None:
    set_key = '[2,"1","ChangeConfiguration",{"key":"authorizationKEY","value":"s3cret-0123456789"}]'
    assert redact_frame(set_key) == (
        '[2,"1","ChangeConfiguration",{"key":"authorizationKEY","value":"<redacted>"}]')
    leaked = ('[3,"2",{"configurationKey":[{"key":"AuthorizationKey","readonly":false,'
              '"value":"s3cret-0123456789"},{"key":"HeartbeatInterval","value":"60"}]}]')
    assert "s3cret" not in redact_frame(leaked) and '"60"' in redact_frame(leaked)
    for frame in ('[2,"3","Heartbeat",{}]', '[2,"4","DataTransfer",{"vendorId":"Auth'
                  'orizationKey"}]', "not json AuthorizationKey"):
        assert redact_frame(frame) is frame


async def test_a_rotated_key_is_the_chargers_password_from_then_on(tmp_path: Path) -> None:
    """The operator rotates a profile 1 charger's AuthorizationKey: the simulated charger
    takes it, reconnects with it, and the old one no longer opens its connection; the key
    is in no log row, no API answer and not in the database file."""
    with trio.fail_after(60):
        async with running_csms(tmp_path / "csms.db", security_profile=1,
                                unknown_chargers="reject") as (csms, port):
            await register(csms, "CP_01", password=PASSWORD)
            async with online_sim(csms, port, "CP_01", password=PASSWORD) as cp:
                rotated = await api(csms, "POST",
                                    "/api/registrations/CP_01/authorization-key", {})
                assert rotated.body["result"] == {"status": "Accepted"}, rotated
                key = cp.configuration.keys["AuthorizationKey"].value
                assert key != PASSWORD and len(key) == 40
                assert key not in json.dumps(rotated.body)
                # The charger reconnects (as after a reboot) with its new key.
                connects = cp.connects
                csms.connections.get("CP_01").close(1012, "restart")  # type: ignore[union-attr]
                await wait_until(lambda: cp.connects > connects and cp.online)
                assert (await _peer_boot(port, "CP_01", PASSWORD))[0] == 401
                got = await api(csms, "POST", "/api/charge-points/CP_01/ocpp16/GetConfiguration",
                                {"key": ["AuthorizationKey"]})
                assert got.body["result"]["unknownKey"] == ["AuthorizationKey"]  # write-only
                assert not got.body["result"]["configurationKey"]
                # A key set through the generic endpoint must be a valid password.
                bad = await api(csms, "POST",
                                "/api/charge-points/CP_01/ocpp16/ChangeConfiguration",
                                {"key": "AuthorizationKey", "value": "short"})
                assert bad.status == 400
            messages = await api(csms, "GET", "/api/messages", query={"limit": 1000})
            assert key not in json.dumps(messages.body)
            assert '"<redacted>"' in json.dumps(messages.body)
    assert key.encode() not in (tmp_path / "csms.db").read_bytes()
