"""Charge point ids: one rule (:mod:`ocppj.identity`) in the OCPP server, the operator API
and the simulator; a bad id is refused at the handshake with 400 and leaves no record.

Real loopback WebSockets and HTTP; real time (see ``api_helpers``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from trio_websocket import ConnectionRejected, open_websocket_url

from api_helpers import api, online_sim, running_csms
from ocppj.identity import (
    MAX_ID_LENGTH,
    STRICT_ID_CHARS,
    BadChargePointId,
    charge_point_url,
    check_charge_point_id,
    decode_charge_point_id,
    encode_charge_point_id,
)

OCPP16 = "ocpp1.6"

strict_ids = st.text(alphabet=sorted(STRICT_ID_CHARS), min_size=1, max_size=MAX_ID_LENGTH)
relaxed_ids = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="/"),
    min_size=1, max_size=MAX_ID_LENGTH,
).filter(lambda s: s == s.strip() and s.isprintable())


@given(strict_ids)
def test_every_strict_id_survives_encoding_and_decoding(cp_id: str) -> None:
    assert decode_charge_point_id(encode_charge_point_id(cp_id)) == cp_id


@given(relaxed_ids)
def test_every_relaxed_id_survives_encoding_and_decoding(cp_id: str) -> None:
    assert decode_charge_point_id(encode_charge_point_id(cp_id), relaxed=True) == cp_id


@pytest.mark.parametrize(
    ("segment", "relaxed", "reason"),
    [
        ("A" * 49, False, "49 characters"),
        ("A" * 49, True, "49 characters"),
        ("CP%2001", False, "' '"),
        ("CP%C3%A9", False, "'é'"),
        ("CP%2F01", False, "'/'"),
        ("CP%2F01", True, "'/'"),
        ("CP%0A01", True, "control character"),
        ("%20CP01", True, "white space"),
        ("CP%C3", True, "not percent-encoded UTF-8"),
        ("CP%2541", False, "'%'"),
        ("", True, "empty"),
    ],
)
def test_bad_ids_are_refused_with_the_reason(segment: str, relaxed: bool, reason: str) -> None:
    with pytest.raises(BadChargePointId, match=reason.replace("|", r"\|")):
        decode_charge_point_id(segment, relaxed=relaxed)


def test_ids_are_decoded_exactly_once() -> None:
    assert decode_charge_point_id("CP%2541", relaxed=True) == "CP%41"
    assert decode_charge_point_id("CP_01") == check_charge_point_id("CP_01") == "CP_01"
    assert charge_point_url("ws://h:1/ocpp/", "CP 01") == "ws://h:1/ocpp/CP%2001"


async def _handshake(port: int, segment: str) -> int | None:
    """The HTTP status refusing the handshake; None when it was accepted."""
    try:
        async with open_websocket_url(
            f"ws://127.0.0.1:{port}/ocpp/{segment}", subprotocols=[OCPP16]
        ):
            return None
    except ConnectionRejected as exc:
        assert exc.body is not None and b"charge point id" in exc.body
        return exc.status_code


async def test_a_bad_id_is_refused_at_the_handshake_with_400_and_leaves_no_record(
    tmp_path: Path,
) -> None:
    with trio.fail_after(20):
        async with running_csms(tmp_path / "csms.db") as (csms, port):
            for segment in ["A" * 49, "CP%2001", "CP%C3", "CP%2F01", "CP%00"]:
                assert await _handshake(port, segment) == 400, segment
            assert await _handshake(port, "A" * 48) is None
            assert set(csms.state.chargers) == {"A" * 48}
            rows = await csms.store.read_messages(None, 100)
            assert {row.charger_id for row in rows} == {"A" * 48}


async def test_relaxed_ids_are_decoded_once_the_same_way_by_the_server_and_the_api(
    tmp_path: Path,
) -> None:
    legacy = "CP é%41"
    with trio.fail_after(30):
        async with running_csms(tmp_path / "csms.db", relaxed_ids=True) as (csms, port):
            assert await _handshake(port, "CP%2F01") == 400
            async with online_sim(csms, port, legacy):
                assert csms.connections.connected == [legacy]
                answer = await api(
                    csms, "GET", f"/api/charge-points/{encode_charge_point_id(legacy)}"
                )
                assert answer.status == 200, answer
                assert answer.body["id"] == legacy
                sent = await api(
                    csms, "POST",
                    f"/api/charge-points/{encode_charge_point_id(legacy)}/ocpp16/ClearCache",
                    {},
                )
                assert sent.body["result"] == {"status": "Accepted"}, sent
                listed = await api(csms, "GET", "/api/transactions",
                                   query={"chargePoint": legacy})
                assert listed.status == 200


async def test_the_api_refuses_a_bad_id_with_400(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with running_csms(tmp_path / "csms.db") as (csms, _port):
            for path in ["/api/charge-points/CP%2001", "/api/charge-points/" + "A" * 49,
                         "/api/charge-points/CP%C3/ocpp16/Reset"]:
                method = "POST" if path.endswith("Reset") else "GET"
                body = {"type": "Soft"} if method == "POST" else None
                answer = await api(csms, method, path, body)
                assert answer.status == 400, (path, answer)
                assert answer.body["error"] == "BadChargePointId", answer
            answer = await api(csms, "GET", "/api/messages", query={"chargePoint": "CP 01"})
            assert answer.status == 400
            answer = await api(csms, "GET", "/api/charge-points/CP_99")
            assert answer.status == 404
