"""The CLI mirror of the API: ``python -m csms send / tags / transactions`` and their exit
codes, against an in-process CSMS (``csms.cli.main`` run on a worker thread)."""

from __future__ import annotations

import functools
import json
import socket
from pathlib import Path

import pytest
import trio

from api_helpers import api_url, online_sim, running_csms, wait_until
from csms.cli import main
from sim.ev import Ev


def _main(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's usage errors
        return int(exc.code or 0)


async def cli(*argv: str) -> int:
    with trio.fail_after(20):
        return await trio.to_thread.run_sync(functools.partial(_main, list(argv)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_send_tags_and_transactions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with trio.fail_after(30):
        async with running_csms(tmp_path / "csms.db") as (csms, port), \
                online_sim(csms, port) as cp:
            url = ["--api", api_url(csms)]
            capsys.readouterr()
            assert await cli("send", "CP_01", "Reset", '{"type": "Soft"}', *url) == 0
            printed = json.loads(capsys.readouterr().out)
            assert printed["result"] == {"status": "Accepted"}
            await wait_until(lambda: cp.connects == 2 and cp.online
                             and csms.connections.get("CP_01") is not None)
            # Refused by the charge point: 1.
            assert await cli("send", "CP_01", "UnlockConnector", '{"connectorId": 0}',
                             *url) == 1
            # Bad usage / 400: 2.
            assert await cli("send", "CP_01", "Reset", '{"type": "Medium"}', *url) == 2
            assert await cli("send", "CP_01", "Reset", "{not json", *url) == 2
            assert await cli("send", "CP_01", "BootNotification", "{}", *url) == 2
            # Not connected: 3.
            assert await cli("send", "CP_77", "ClearCache", *url) == 3
            capsys.readouterr()

            assert await cli("tags", "set", "TAG1", "--status", "Blocked", "--expiry",
                             "2030-01-01T00:00:00Z", "--parent", "FLEET", *url) == 0
            assert json.loads(capsys.readouterr().out)["status"] == "Blocked"
            assert await cli("tags", "get", "TAG1", *url) == 0
            shown = json.loads(capsys.readouterr().out)
            assert (shown["parentIdTag"], shown["expiryDate"]) == ("FLEET",
                                                                  "2030-01-01T00:00:00Z")
            assert await cli("tags", "delete", "TAG1", *url) == 0
            assert await cli("tags", "get", "TAG1", *url) == 1
            assert await cli("tags", "delete", "TAG1", *url) == 1
            capsys.readouterr()

            await cp.plug_in(1, Ev(60_000, 20.0, 11_000))
            await cp.start_session(1, "ALICE")
            await cp.wait_queue_empty()
            assert await cli("transactions", "--active", "--charge-point", "CP_01",
                             "--limit", "5", *url) == 0
            out = capsys.readouterr().out
            assert "ALICE" in out and "active" in out
            assert await cli("transactions", "--json", *url) == 0
            rows = json.loads(capsys.readouterr().out)
            assert [r["idTag"] for r in rows] == ["ALICE"]


async def test_exit_3_when_the_api_cannot_be_reached(capsys: pytest.CaptureFixture[str]) -> None:
    url = ["--api", f"http://127.0.0.1:{free_port()}"]
    assert await cli("send", "CP_01", "Reset", '{"type": "Soft"}', *url) == 3
    assert await cli("tags", "get", "TAG1", *url) == 3
    assert await cli("transactions", *url) == 3
    assert "cannot reach the API" in capsys.readouterr().err


async def test_the_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(20):
        async with running_csms(tmp_path / "csms.db", api_token="t0k") as (csms, _port):
            url = ["--api", api_url(csms)]
            assert await cli("transactions", *url) == 2  # 401
            assert await cli("send", "CP_01", "Bogus", *url) == 2  # usage: 401 before 400
            assert await cli("transactions", "--token", "t0k", *url) == 0


async def test_chargers_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(30):
        async with running_csms(tmp_path / "csms.db", unknown_chargers="pending") as (
            csms, _port
        ):
            url = ["--api", api_url(csms)]
            capsys.readouterr()
            assert await cli("chargers", "add", "CP_01", "--security-profile", "1",
                             "--generate-password", *url) == 0
            out = capsys.readouterr().out
            password = out.rsplit("password: ", 1)[1].strip()
            assert len(password) == 40 and password not in out.rsplit("password: ", 1)[0]
            assert await cli("chargers", "add", "CP_02", "--status", "pending", *url) == 0
            assert await cli("chargers", "accept", "CP_02", *url) == 0
            assert await cli("chargers", "disable", "CP_01", *url) == 0
            capsys.readouterr()
            assert await cli("chargers", "list", *url) == 0
            rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
            assert rows == [["CP_01", "disabled", "1", "set", "no"],
                            ["CP_02", "accepted", "0", "-", "no"]]
            assert await cli("chargers", "remove", "CP_02", *url) == 0
            assert await cli("chargers", "show", "CP_02", *url) == 1
            assert await cli("chargers", "add", "CP 03", *url) == 2  # not a valid id
            assert await cli("chargers", "password", "CP_01", *url) == 2  # which password?
            assert set(csms.registry.records) == {"CP_01"}
