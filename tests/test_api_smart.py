"""The operator's own charging profiles and smart charging (issue #13, point 3): an
operator's ClearChargingProfile or SetChargingProfile through the API makes smart charging
count that charger as unknown and send its limits again.

In-process CSMS with a site limit and its SQLite file, a SimChargePoint over real loopback
WebSockets, real time (see api_helpers).
"""

from __future__ import annotations

from pathlib import Path

import trio

from api_helpers import api, online_sim, running_csms, send, wait_until
from csms.smart.site import SiteConfig
from sim.charge_point import SimChargePoint
from sim.ev import Ev

CP = "CP_01"
W_PER_A = 3 * 230.0


def in_force_w(cp: SimChargePoint) -> float | None:
    """The limit on EVSE_1 as the charger applies the profiles it holds (None: none)."""
    tx = cp.evse(1).transaction
    assert tx is not None
    return cp.profiles.limit(1, now=cp.now(), transaction_start=tx.started_at, phases=3)


async def test_an_operators_clear_is_undone_by_smart_charging(tmp_path: Path) -> None:
    site = SiteConfig(limit_kw=11.0, settle_s=0.1)
    with trio.fail_after(40):
        async with running_csms(tmp_path / "csms.db", site=site) as (csms, port), \
                online_sim(csms, port) as cp:
            await cp.plug_in(1, Ev(capacity_wh=90_000, soc=10.0, max_power_w=22_000))
            assert await cp.start_session(1, "TAG-1")
            # 11,000 W: 15.9 A.
            await wait_until(lambda: in_force_w(cp) == 15.9 * W_PER_A)
            smart = csms.smart
            assert smart is not None
            sent_before = len(cp.profiles_received.get(1, []))
            # The operator clears every profile on the charger: it would draw its 22 kW.
            response = await send(csms, CP, "ClearChargingProfile", {})
            assert response.status == 200 and response.body["result"] == {"status": "Accepted"}
            assert in_force_w(cp) is None or in_force_w(cp) != 15.9 * W_PER_A
            # Smart charging counts it at its maximum meanwhile, installs the safety nets
            # again and sends the session's limit again.
            await wait_until(lambda: len(cp.profiles_received.get(1, [])) > sent_before)
            await wait_until(lambda: in_force_w(cp) == 15.9 * W_PER_A)
            key = (CP, 1)
            tx = csms.state.open_sessions[key]
            limit = smart.ledger.find(key, tx)
            assert limit is not None and limit.settled
            # The safety nets are back on connector 0.
            await wait_until(lambda: CP in smart.safety_w)
            # The API shows the limit its charger accepted for the session, as recorded.
            response = await api(csms, "GET", f"/api/transactions/{tx}")
            assert response.status == 200
            assert response.body["limit"]["limit"] == 15.9
            assert response.body["limit"]["unit"] == "A"
            assert response.body["limit"]["purpose"] == "TxProfile"
            assert response.body["limitRefused"] is None
