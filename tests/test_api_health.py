"""``GET /api/health``: 200 while the CSMS serves and stores, with the charge points
connected and the store's counters (commit batch sizes come from them)."""

from __future__ import annotations

from pathlib import Path

import trio

from api_helpers import api, online_sim, running_csms


async def test_health_counts_connections_and_the_commits_their_answers_waited_for(
    tmp_path: Path,
) -> None:
    with trio.fail_after(30):
        async with running_csms(tmp_path / "csms.db") as (csms, port):
            idle = await api(csms, "GET", "/api/health")
            assert idle.status == 200
            assert idle.body["status"] == "ok" and idle.body["connections"] == 0
            assert idle.body["store"]["unavailable"] is None
            async with online_sim(csms, port, "CP_01"), online_sim(csms, port, "CP_02"):
                busy = await api(csms, "GET", "/api/health")
            assert busy.status == 200
            assert busy.body["connections"] == 2
            before, after = idle.body["store"], busy.body["store"]
            # Two boots and four statuses at least, each answered after its commit; a
            # commit may carry several answers, never the other way round.
            flushes = after["flushes"] - before["flushes"]
            commits = after["commits"] - before["commits"]
            assert flushes >= 6
            assert 1 <= commits <= flushes
            assert after["rowsWritten"] - before["rowsWritten"] >= 2 * flushes  # CALL + answer
