"""The operator API's edge (:mod:`csms.api.guard`): the attacks of issue 14 as regression
tests, over real HTTP on loopback against a CSMS with a simulated charger connected.

Requests are written by hand on a TCP stream, so each test sets exactly the headers a
browser or an attacker would (urllib adds its own).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

from api_helpers import api, online_sim, running_csms
from csms.app import Csms
from csms.config import CsmsConfig

UPDATE = orjson.dumps({"location": "http://attacker.example/fw.bin",
                       "retrieveDate": "2026-01-01T00:00:00Z"})


async def http(
    port: int, method: str, target: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, Any]:
    """One HTTP/1.1 request with exactly ``headers`` (plus Content-Length and
    Connection); the status and the JSON body."""
    lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items()),
             f"Content-Length: {len(body)}", "Connection: close", "", ""]
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all("\r\n".join(lines).encode("latin-1") + body)
            raw = b""
            while chunk := await stream.receive_some():
                raw += chunk
    head, _, payload = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, orjson.loads(payload) if payload else None


def host(csms: Csms, name: str = "127.0.0.1") -> str:
    return f"{name}:{csms.api_port}"


async def sent_actions(csms: Csms) -> list[str]:
    rows = await csms.store.read_messages("CP_01", 1000)
    return [orjson.loads(r.frame)[2] for r in rows
            if r.direction == "out" and orjson.loads(r.frame)[0] == 2]


async def test_a_cross_site_post_never_reaches_the_charger(tmp_path: Path) -> None:
    """The attack: a page on another site POSTs text/plain (no preflight) to the API."""
    with trio.fail_after(30):
        async with running_csms(tmp_path / "csms.db") as (csms, port), online_sim(csms, port):
            assert csms.api_port is not None
            target = "/api/charge-points/CP_01/ocpp16/UpdateFirmware"
            browser = {"Host": host(csms), "Origin": "https://attacker.example",
                       "Content-Type": "text/plain"}
            status, body = await http(csms.api_port, "POST", target, browser, UPDATE)
            assert (status, body["error"]) == (403, "Forbidden")
            # Without Origin (an old browser, a proxy stripping it): still never read.
            del browser["Origin"]
            status, body = await http(csms.api_port, "POST", target, browser, UPDATE)
            assert (status, body["error"]) == (415, "UnsupportedMediaType")
            # A form post, an empty body, no Content-Type at all: the same.
            for media in ("application/x-www-form-urlencoded", "multipart/form-data", None):
                headers = {"Host": host(csms)}
                if media:
                    headers["Content-Type"] = media
                status, _ = await http(csms.api_port, "POST", target, headers)
                assert status == 415, media
            assert "UpdateFirmware" not in await sent_actions(csms)
            # The API's own origin and JSON pass.
            own = {"Host": host(csms), "Origin": f"http://{host(csms)}",
                   "Content-Type": "application/json; charset=utf-8"}
            status, body = await http(csms.api_port, "POST", target, own, UPDATE)
            assert status == 200, body
            assert "UpdateFirmware" in await sent_actions(csms)


@pytest.mark.parametrize("name", ["attacker.example", "127.0.0.1.attacker.example", ""])
async def test_dns_rebinding_is_refused_by_the_host_check(tmp_path: Path, name: str) -> None:
    with trio.fail_after(20):
        async with running_csms(tmp_path / "csms.db") as (csms, _port):
            assert csms.api_port is not None
            headers = {"Host": f"{name}:{csms.api_port}"} if name else {}
            status, body = await http(csms.api_port, "GET", "/api/charge-points", headers)
            assert status in (400, 403), body  # h11 itself refuses a missing Host
            for loopback in ("127.0.0.1", "localhost", "[::1]"):
                status, _ = await http(csms.api_port, "GET", "/api/charge-points",
                                       {"Host": host(csms, loopback)})
                assert status == 200, loopback


async def test_an_operator_host_name_can_be_allowed(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with running_csms(tmp_path / "csms.db",
                                api_allowed_hosts=("csms.example",)) as (csms, _port):
            assert csms.api_port is not None
            headers = {"Host": host(csms, "CSMS.example"),
                       "Origin": f"https://{host(csms, 'csms.example')}"}
            status, _ = await http(csms.api_port, "GET", "/api/charge-points", headers)
            assert status == 200
            headers["Origin"] = "null"
            status, _ = await http(csms.api_port, "GET", "/api/charge-points", headers)
            assert status == 403


async def test_the_token_is_required_and_compared_whatever_its_length(tmp_path: Path) -> None:
    token = "s3cret-token-0123456789"
    with trio.fail_after(20):
        async with running_csms(tmp_path / "csms.db", api_token=token) as (csms, _port):
            for wrong in (None, "", "s3cret", token + "x", token.upper()):
                answer = await api(csms, "GET", "/api/charge-points", token=wrong)
                assert answer.status == 401, wrong
            assert (await api(csms, "GET", "/api/charge-points", token=token)).status == 200
            # The OpenAPI document is public; the Host check still applies to it.
            assert (await api(csms, "GET", "/api/openapi.json")).status == 200


@pytest.mark.parametrize(
    ("path", "query", "wrong"),
    [
        ("/api/transactions", "chargepoint=CP_01", "chargepoint"),  # misspelt filter
        ("/api/transactions", "chargePoint=CP_01&chargePoint=CP_02", "chargePoint"),
        ("/api/messages", "charge_point=CP_01", "charge_point"),
        ("/api/charge-points", "limit=5", "limit"),
        ("/api/charge-points/CP_01/ocpp16/ClearCache", "timout=5", "timout"),
    ],
)
async def test_unknown_or_repeated_query_parameters_are_refused(
    tmp_path: Path, path: str, query: str, wrong: str
) -> None:
    with trio.fail_after(20):
        async with running_csms(tmp_path / "csms.db") as (csms, _port):
            assert csms.api_port is not None
            method = "POST" if "ocpp16" in path else "GET"
            status, body = await http(
                csms.api_port, method, f"{path}?{query}",
                {"Host": host(csms), "Content-Type": "application/json"},
                b"{}" if method == "POST" else b"",
            )
            assert status == 400, body
            assert wrong in body["message"]


async def test_the_api_does_not_start_beyond_loopback_without_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CSMS_API_TOKEN", raising=False)
    csms = Csms(CsmsConfig(port=0, api_port=0, api_host="0.0.0.0"))
    with pytest.raises(ValueError, match="beyond loopback"):
        await csms.serve()
    env = {k: v for k, v in os.environ.items() if k != "CSMS_API_TOKEN"}
    with trio.fail_after(60):
        result = await trio.run_process(
            [sys.executable, "-m", "csms", "--api-host", "0.0.0.0", "--port", "0"],
            cwd=tmp_path, env=env, capture_stdout=True, capture_stderr=True, check=False,
        )
    assert result.returncode == 2
    assert b"beyond loopback, without a token" in result.stderr
    assert not (tmp_path / "csms.db").exists()
