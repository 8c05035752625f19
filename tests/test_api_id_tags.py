"""Authorization data through the API: Authorize, StartTransaction and StopTransaction
answer from it; it is persisted in SQLite and loaded at start; the bearer token."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import trio

from api_helpers import api, iso_in, online_sim, running_csms, wait_until
from csms.authorization import AuthorizationPolicy
from csms.storage.base import IdTagRow
from sim.ev import Ev

CP = "CP_01"
NOW = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)


def test_the_policy_order_and_expiry() -> None:
    policy = AuthorizationPolicy({"LISTED": "Invalid", "BOTH": "Invalid"})
    policy.load([
        IdTagRow("BOTH", "Blocked"),
        IdTagRow("OLD", "Accepted", NOW - datetime.timedelta(seconds=1), "P"),
        IdTagRow("NEW", "Accepted", NOW + datetime.timedelta(days=1), "P"),
        IdTagRow("BLOCKED_OLD", "Blocked", NOW - datetime.timedelta(days=1)),
    ])
    assert policy.status("UNKNOWN", NOW) == "Accepted"  # the current policy
    assert policy.status("LISTED", NOW) == "Invalid"  # --id-tag
    assert policy.status("BOTH", NOW) == "Blocked"  # the operator's data wins
    assert policy.answer("OLD", NOW).status == "Expired"
    assert policy.answer("NEW", NOW).parent_id_tag == "P"
    assert policy.answer("NEW", NOW).status == "Accepted"
    assert policy.status("BLOCKED_OLD", NOW) == "Blocked"


async def test_id_tags_answer_authorize_start_and_stop_and_survive_a_restart(
    tmp_path: Path,
) -> None:
    db = tmp_path / "csms.db"
    with trio.fail_after(30):
        async with running_csms(db, id_tags={"LISTED": "Invalid"}) as (csms, port):
            put = await api(csms, "PUT", "/api/id-tags/BLOCKED1", {"status": "Blocked"})
            assert put.status == 200
            assert put.body["effectiveStatus"] == "Blocked"
            expiry = iso_in(3600)
            put = await api(csms, "PUT", "/api/id-tags/GOOD1",
                            {"status": "Accepted", "expiryDate": expiry, "parentIdTag": "FLEET"})
            assert put.body["parentIdTag"] == "FLEET"
            put = await api(csms, "PUT", "/api/id-tags/OLD1",
                            {"expiryDate": "2020-01-01T00:00:00Z"})
            assert (put.body["status"], put.body["effectiveStatus"]) == ("Accepted", "Expired")
            for bad in ({"status": "Maybe"}, {"expiryDate": "soon"}, {"parentIdTag": "x" * 21},
                        {"colour": "red"}):
                assert (await api(csms, "PUT", "/api/id-tags/X", bad)).status == 400
            assert (await api(csms, "PUT", "/api/id-tags/" + "T" * 21, {})).status == 400
            listed = (await api(csms, "GET", "/api/id-tags")).body
            assert [t["idTag"] for t in listed] == ["BLOCKED1", "GOOD1", "OLD1"]

            async with online_sim(csms, port) as cp:
                assert await cp.authorize("BLOCKED1") == "Blocked"
                assert await cp.authorize("OLD1") == "Expired"
                assert await cp.authorize("LISTED") == "Invalid"
                assert await cp.authorize("ANYONE") == "Accepted"
                assert await cp.authorize("GOOD1") == "Accepted"
                # The answer carries expiryDate and parentIdTag as set.
                log = await csms.store.read_log(CP)
                answer = [r.frame for r in log if r.direction == "out"][-1]
                assert '"parentIdTag":"FLEET"' in answer and '"expiryDate"' in answer
                # StartTransaction answers from it too: a blocked tag is DeAuthorized.
                await cp.plug_in(1, Ev(60_000, 20.0, 11_000))
                await cp.start_session(1, "BLOCKED1", authorize=False)
                await wait_until(lambda: any(s.id_tag == "BLOCKED1"
                                             for s in csms.state.sessions.values()))
                session = next(s for s in csms.state.sessions.values()
                               if s.id_tag == "BLOCKED1")
                assert session.auth_status == "Blocked"
                await wait_until(lambda: not csms.state.sessions[session.transaction_id].open)
                assert csms.state.sessions[session.transaction_id].stop_reason == "DeAuthorized"
                # StopTransaction's idTagInfo.
                await cp.unplug(1)
                await cp.plug_in(1, Ev(60_000, 20.0, 11_000))
                await cp.start_session(1, "GOOD1", authorize=False)
                await cp.wait_queue_empty()
                await api(csms, "PUT", "/api/id-tags/GOOD1", {"status": "Blocked"})
                await cp.stop_session(1)
                await cp.wait_queue_empty()
                log = await csms.store.read_log(CP)
                stop_answer = [r.frame for r in log if r.direction == "out"][-1]
                assert '"idTagInfo":{"status":"Blocked"}' in stop_answer

            deleted = await api(csms, "DELETE", "/api/id-tags/BLOCKED1")
            assert deleted.status == 204
            assert (await api(csms, "DELETE", "/api/id-tags/BLOCKED1")).status == 404
            missing = await api(csms, "GET", "/api/id-tags/BLOCKED1")
            assert (missing.status, missing.body["effectiveStatus"]) == (404, "Accepted")

        # Persisted in SQLite and loaded at start.
        async with running_csms(db) as (csms, _port):
            assert csms.policy.status("GOOD1") == "Blocked"
            assert csms.policy.status("OLD1", datetime.datetime.now(datetime.UTC)) == "Expired"
            assert "BLOCKED1" not in csms.policy.records
            got = await api(csms, "GET", "/api/id-tags/OLD1")
            assert got.body["expiryDate"] == "2020-01-01T00:00:00Z"


@pytest.mark.parametrize("where", ["config", "environment"])
async def test_a_bearer_token_guards_every_endpoint_but_the_openapi_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    config = {}
    if where == "config":
        config["api_token"] = "s3cret"
    else:
        monkeypatch.setenv("CSMS_API_TOKEN", "s3cret")
    with trio.fail_after(20):
        async with running_csms(tmp_path / "csms.db", **config) as (csms, _port):
            for token in (None, "wrong"):
                denied = await api(csms, "GET", "/api/charge-points", token=token)
                assert denied.status == 401
                assert denied.body["error"] == "Unauthorized"
                put = await api(csms, "PUT", "/api/id-tags/T", {"status": "Blocked"},
                                token=token)
                assert put.status == 401
            assert "T" not in csms.policy.records
            assert (await api(csms, "GET", "/api/charge-points", token="s3cret")).status == 200
            assert (await api(csms, "GET", "/api/openapi.json")).status == 200
