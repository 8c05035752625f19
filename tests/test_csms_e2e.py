"""The CSMS end to end, in-process: real loopback WebSockets, a real SQLite file.

Charge points are raw OCPP-J clients that keep every frame they sent and received, so
that the message log can be checked against the wire byte for byte. After each run the
file is reopened and the stored projection compared with a rebuild from the log
(``csms.replay``) and with the live state.

The clock is the real one, on purpose: the store commits on aiosqlite's worker thread
(through trio-asyncio), which trio takes for "all tasks blocked", so ``autojump_clock``
would jump time mid-commit. Every wait is on an event or an answer, under a generous
``fail_after`` watchdog; nothing sleeps.
"""

from __future__ import annotations

import datetime
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from trio_websocket import ConnectionClosed

from csms import replay
from csms.app import Csms
from csms.config import CsmsConfig
from csms.domain.state import DomainState
from csms.ocpp.handlers.context import VendorHandler
from csms.storage.base import LogRow
from csms.storage.sqlite import open_sqlite_store
from raw_cp_helpers import RawChargePoint, Wire

#: Real seconds a whole test may take; a hang fails instead of blocking the suite.
WATCHDOG = 20


def ts(minute: int) -> str:
    """An OCPP timestamp on a fixed day, ``minute`` minutes after 10:00 UTC."""
    moment = datetime.datetime(2024, 5, 1, 10, 0, tzinfo=datetime.UTC)
    moment += datetime.timedelta(minutes=minute)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the CSMS under test ------------------------------------------------------------------


class ObservedCsms(Csms):
    """A Csms that lets a test wait for connection changes (no polling, no sleeps)."""

    def __init__(self, config: CsmsConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._changed = trio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def connected(self, charge_point_id: str, remote: str) -> None:
        super().connected(charge_point_id, remote)
        self._notify()

    def disconnected(self, charge_point_id: str, reason: str, *, replaced: bool) -> None:
        super().disconnected(charge_point_id, reason, replaced=replaced)
        self._notify()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds (checked after every connect / disconnect)."""
        while not predicate():
            await self._changed.wait()


@asynccontextmanager
async def running_csms(
    db: Path, *, vendors: dict[str, VendorHandler] | None = None, **config: Any
) -> AsyncIterator[tuple[ObservedCsms, int]]:
    """A CSMS serving on 127.0.0.1 (any port) with its store in ``db``; shut down on exit."""
    csms = ObservedCsms(CsmsConfig(port=0, db_path=str(db), **config), vendors=vendors)
    async with trio.open_nursery() as nursery:
        port: int = await nursery.start(csms.serve)
        try:
            yield csms, port
        finally:
            with trio.fail_after(10):
                await csms.shutdown()


async def shut_down(csms: Csms, *connected: ChargePoint) -> None:
    """Shut ``csms`` down while ``connected`` are still connected; each sees 1001."""
    await csms.shutdown()
    for cp in connected:
        await cp.wait_closed(1001)


# -- a raw OCPP-J charge point ------------------------------------------------------------


class ChargePoint(RawChargePoint):
    """A raw charge point with the messages of the scripted day, in OCPP's words."""

    async def boot(self) -> dict[str, Any]:
        return await self.call(
            "BootNotification",
            {
                "chargePointVendor": "Acme",
                "chargePointModel": "AC-22",
                "chargePointSerialNumber": f"SN-{self.cp_id}",
                "firmwareVersion": "1.2.3",
            },
        )

    async def status(self, connector: int, status: str, minute: int = 0) -> None:
        answer = await self.call(
            "StatusNotification",
            {
                "connectorId": connector,
                "status": status,
                "errorCode": "NoError",
                "timestamp": ts(minute),
            },
        )
        assert answer == {}

    async def start(self, connector: int, id_tag: str, meter_start: int, minute: int) -> Any:
        return await self.call(
            "StartTransaction",
            {
                "connectorId": connector,
                "idTag": id_tag,
                "meterStart": meter_start,
                "timestamp": ts(minute),
            },
        )

    async def meter(
        self,
        connector: int,
        sampled: list[dict[str, Any]],
        minute: int,
        transaction_id: int | None = None,
    ) -> None:
        payload: dict[str, Any] = {
            "connectorId": connector,
            "meterValue": [{"timestamp": ts(minute), "sampledValue": sampled}],
        }
        if transaction_id is not None:
            payload["transactionId"] = transaction_id
        assert await self.call("MeterValues", payload) == {}

    async def stop(
        self, transaction_id: int, meter_stop: int, minute: int, **extra: Any
    ) -> dict[str, Any]:
        return await self.call(
            "StopTransaction",
            {
                "transactionId": transaction_id,
                "meterStop": meter_stop,
                "timestamp": ts(minute),
                **extra,
            },
        )


# -- reading the file back ----------------------------------------------------------------


@attrs.frozen
class Stored:
    """What a CSMS left in its file."""

    log: list[LogRow]
    state: DomainState
    diff: list[str]


async def read_back(db: Path) -> Stored:
    """The log and projection of ``db``, and how a rebuild from the log differs from it."""
    async with open_sqlite_store(str(db)) as store:
        log = await store.read_log()
        state = await store.load_state()
        samples = await store.read_samples()
    return Stored(log, state, replay.diff(state, samples, replay.rebuild(log)))


def frames_of(log: list[LogRow], cp_id: str, direction: str) -> list[str]:
    return [row.frame for row in log if row.charger_id == cp_id and row.direction == direction]


def reasons(log: list[LogRow], cp_id: str) -> list[dict[str, Any]]:
    return [json.loads(r) for r in frames_of(log, cp_id, "disconnect")]


def energy(wh: str, unit: str = "Wh", **extra: str) -> dict[str, str]:
    return {"value": wh, "unit": unit, "measurand": "Energy.Active.Import.Register", **extra}


def power(w: str, unit: str = "W", **extra: str) -> dict[str, str]:
    return {"value": w, "unit": unit, "measurand": "Power.Active.Import", **extra}


def current(a: str, phase: str) -> dict[str, str]:
    return {"value": a, "unit": "A", "measurand": "Current.Import", "phase": phase}


# -- the scripted day ---------------------------------------------------------------------


async def test_a_scripted_multi_charger_day_is_live_durable_and_replayable(
    tmp_path: Path,
) -> None:
    db = tmp_path / "csms.db"
    wires = {cp_id: Wire() for cp_id in ("CP_01", "CP_02", "CP_03")}
    with trio.fail_after(WATCHDOG):
        async with (
            running_csms(db, id_tags={"BAD": "Blocked"}) as (csms, port),
            ChargePoint.connect(port, "CP_01", wires["CP_01"]) as cp1,
            ChargePoint.connect(port, "CP_02", wires["CP_02"]) as cp2,
        ):
            # Three chargers boot and report every connector, all at once.
            async def introduce(cp: ChargePoint) -> None:
                boot = await cp.boot()
                assert boot["status"] == "Accepted"
                assert boot["interval"] == 300
                for connector in (0, 1, 2):
                    await cp.status(connector, "Available")

            async with ChargePoint.connect(port, "CP_03", wires["CP_03"]) as cp3:
                async with trio.open_nursery() as nursery:
                    for cp in (cp1, cp2, cp3):
                        nursery.start_soon(introduce, cp)
                assert set(csms.connections.connected) == {"CP_01", "CP_02", "CP_03"}

                # CP_01: a whole session with every kind of meter value.
                auth = await cp1.call("Authorize", {"idTag": "TAG1"})
                assert auth == {"idTagInfo": {"status": "Accepted"}}
                await cp1.status(1, "Preparing", 1)
                started = await cp1.start(1, "TAG1", 1000, 1)
                tx1 = started["transactionId"]
                assert started["idTagInfo"]["status"] == "Accepted"
                # Its answer lost, the charger sends the same StartTransaction again.
                assert await cp1.start(1, "TAG1", 1000, 1) == started
                await cp1.status(1, "Charging", 2)
                await cp1.meter(1, [energy("1.5", "kWh"), power("7.2", "kW")], 5, tx1)
                # kWh and kW are read in base units.
                s1 = csms.state.sessions[tx1]
                assert (s1.energy_wh, s1.last_register_wh, s1.power_w) == (500.0, 1500.0, 7200.0)
                await cp1.meter(
                    1,
                    [
                        energy("2500"),
                        power("2300", phase="L1"),
                        power("2300", phase="L2"),
                        power("2400", phase="L3"),
                        current("10.0", "L1"),
                        current("10.0", "L2"),
                        current("10.5", "L3"),
                    ],
                    10,
                    tx1,
                )
                # No transactionId: the connector's open session is meant.
                await cp1.meter(
                    1,
                    [energy("3000"), {"value": "40", "measurand": "SoC", "unit": "Percent"}],
                    15,
                )
                s1 = csms.state.sessions[tx1]
                assert (s1.energy_wh, s1.soc, s1.samples) == (2000.0, 40.0, 11)

                # CP_02: a blocked tag still gets a transactionId.
                blocked = await cp2.call("Authorize", {"idTag": "BAD"})
                assert blocked == {"idTagInfo": {"status": "Blocked"}}
                started2 = await cp2.start(2, "BAD", 0, 3)
                tx2 = started2["transactionId"]
                assert isinstance(tx2, int)
                assert tx2 != tx1
                assert started2["idTagInfo"]["status"] == "Blocked"
                stopped2 = await cp2.stop(tx2, 0, 4, reason="DeAuthorized")
                assert stopped2 == {}
                # A transaction this CSMS never gave out is answered all the same.
                assert await cp2.stop(9999, 1234, 5, reason="PowerLoss") == {}

                # CP_03: a session across a lost connection and a replaced one.
                started3 = await cp3.start(2, "TAG3", 50_000, 6)
                tx3 = started3["transactionId"]
                assert tx3 > 9999  # never an id a charger already believes in
                await cp3.meter(2, [energy("51000")], 7, tx3)
            # cp3's socket is closed (by the charger); the CSMS notices.
            await csms.wait_for(lambda: not csms.state.chargers["CP_03"].connected)
            assert "CP_03" not in csms.connections.connected
            assert csms.state.chargers["CP_03"].disconnect_reason is not None
            assert csms.state.chargers["CP_03"].disconnect_reason.startswith("peer closed")

            # CP_01 ends its session with the transaction's meter values attached,
            # and sends the StopTransaction again (its answer lost).
            stop_extra = {
                "reason": "Local",
                "idTag": "TAG1",
                "transactionData": [
                    {
                        "timestamp": ts(20),
                        "sampledValue": [energy("3500", context="Transaction.End")],
                    }
                ],
            }
            stopped = await cp1.stop(tx1, 3500, 20, **stop_extra)
            assert stopped == {"idTagInfo": {"status": "Accepted"}}
            anomalies_before = list(csms.state.anomalies)
            session_before = csms.state.sessions[tx1]
            assert await cp1.stop(tx1, 3500, 20, **stop_extra) == stopped
            assert csms.state.anomalies == anomalies_before
            assert csms.state.sessions[tx1] == session_before
            await cp1.status(1, "Finishing", 21)
            await cp1.status(1, "Available", 22)

            # CP_03 comes back and delivers what it metered offline.
            async with ChargePoint.connect(port, "CP_03", wires["CP_03"]) as old:
                await old.boot()
                assert csms.state.chargers["CP_03"].connected
                await old.meter(2, [energy("52000")], 8, tx3)
                # A second connection with the same id replaces the first.
                async with ChargePoint.connect(port, "CP_03", wires["CP_03"]) as new:
                    with pytest.raises(ConnectionClosed) as closed:
                        await old.ws.get_message()
                    assert closed.value.reason is not None
                    assert closed.value.reason.code == 1000
                    assert closed.value.reason.reason == "replaced by a new connection"
                    await new.meter(2, [energy("53", "kWh")], 9, tx3)
                    await new.status(2, "Charging", 9)

                    # -- the live state, while everyone is connected ---------------
                    state = csms.state
                    assert {c.id: c.connected for c in state.chargers.values()} == {
                        "CP_01": True,
                        "CP_02": True,
                        "CP_03": True,
                    }
                    cp03 = state.chargers["CP_03"]
                    assert (cp03.vendor, cp03.model) == ("Acme", "AC-22")
                    assert cp03.charge_point_serial_number == "SN-CP_03"
                    assert cp03.firmware_version == "1.2.3"
                    assert cp03.disconnect_reason is None
                    assert {cid: c.status for cid, c in state.chargers.items()} == {
                        "CP_01": "Available",
                        "CP_02": "Available",
                        "CP_03": "Available",
                    }
                    assert {key: e.status for key, e in state.evses.items()} == {
                        ("CP_01", 1): "Available",
                        ("CP_01", 2): "Available",
                        ("CP_02", 1): "Available",
                        ("CP_02", 2): "Available",
                        ("CP_03", 1): "Available",
                        ("CP_03", 2): "Charging",
                    }
                    assert state.evses[("CP_03", 2)].plugged_in
                    assert not state.evses[("CP_01", 1)].plugged_in

                    s1 = state.sessions[tx1]
                    assert not s1.open
                    assert s1.meter_start == 1000
                    assert s1.meter_stop == 3500
                    assert s1.energy_wh == 2500.0
                    assert s1.stop_reason == "Local"
                    assert s1.stop_id_tag == "TAG1"
                    # The last power given: per-phase values summed (the kW reading
                    # before it was 7200 W).
                    assert s1.power_w == 7000.0
                    assert s1.current_a == (("L1", 10.0), ("L2", 10.0), ("L3", 10.5))
                    assert s1.soc == 40.0
                    # 2 + 7 + 2 sampled values, and the 1 of transactionData.
                    assert s1.samples == 12

                    s2 = state.sessions[tx2]
                    assert not s2.open
                    assert (s2.auth_status, s2.stop_reason, s2.energy_wh) == (
                        "Blocked",
                        "DeAuthorized",
                        0.0,
                    )

                    s3 = state.sessions[tx3]
                    assert s3.open
                    assert s3.energy_wh == 3000.0  # 53 kWh - 50 000 Wh
                    assert s3.last_register_wh == 53_000.0
                    assert state.open_sessions == {("CP_03", 2): tx3}
                    assert len(state.sessions) == 3
                    assert state.next_transaction_id == tx3 + 1

                    assert [(a.kind, a.charger_id, a.transaction_id) for a in state.anomalies] == [
                        ("unknown_transaction", "CP_02", 9999)
                    ]

                    await shut_down(csms, cp1, cp2, new)
                    live = csms.state

    # -- after shutdown: the file holds all of it ---------------------------------------
    with trio.fail_after(WATCHDOG):
        stored = await read_back(db)
    # The rebuild from the message log alone equals the stored projection …
    assert stored.diff == []
    # … which equals what the CSMS held in memory.
    assert stored.state == live
    assert stored.state.sessions[tx1].energy_wh == 2500.0

    # Every frame in and out is in the message log, in order, as on the wire.
    for cp_id, wire in wires.items():
        assert frames_of(stored.log, cp_id, "in") == wire.sent, cp_id
        assert frames_of(stored.log, cp_id, "out") == wire.received, cp_id
    assert sum(len(w.sent) for w in wires.values()) == sum(
        row.direction == "in" for row in stored.log
    )
    assert sum(len(w.received) for w in wires.values()) == sum(
        row.direction == "out" for row in stored.log
    )
    # CP_03 connected three times: closed by itself, replaced, and shut down.
    assert len(frames_of(stored.log, "CP_03", "connect")) == 3
    cp3_reasons = reasons(stored.log, "CP_03")
    assert [r.get("replaced") for r in cp3_reasons] == [False, True, False]
    assert cp3_reasons[0]["reason"].startswith("peer closed")
    assert cp3_reasons[1]["reason"] == "replaced by a new connection"
    assert cp3_reasons[2]["reason"] == "server shutting down"
    assert {c.disconnect_reason for c in stored.state.chargers.values()} == {"server shutting down"}


# -- authorization and vendors ------------------------------------------------------------


async def test_a_blocked_tag_is_answered_blocked_and_still_gets_a_transaction(
    tmp_path: Path,
) -> None:
    db = tmp_path / "csms.db"
    wire = Wire()
    with trio.fail_after(WATCHDOG):
        async with (
            running_csms(db, id_tags={"BAD": "Blocked"}) as (csms, port),
            ChargePoint.connect(port, "CP_01", wire) as cp,
        ):
            await cp.boot()
            assert await cp.call("Authorize", {"idTag": "BAD"}) == {
                "idTagInfo": {"status": "Blocked"}
            }
            assert await cp.call("Authorize", {"idTag": "GOOD"}) == {
                "idTagInfo": {"status": "Accepted"}
            }
            started = await cp.start(1, "BAD", 100, 0)
            assert isinstance(started["transactionId"], int)
            assert started["idTagInfo"] == {"status": "Blocked"}
            session = csms.state.sessions[started["transactionId"]]
            assert session.auth_status == "Blocked"
            assert session.open
            # The charger stops it (DeAuthorized); the stop's idTag is still Blocked.
            stopped = await cp.stop(
                started["transactionId"], 100, 1, reason="DeAuthorized", idTag="BAD"
            )
            assert stopped == {"idTagInfo": {"status": "Blocked"}}
        stored = await read_back(db)
    # Replay needs no configuration: the status is read from the recorded answer.
    assert stored.diff == []
    assert stored.state.sessions[started["transactionId"]].auth_status == "Blocked"


async def test_data_transfer_without_and_with_a_vendor_handler(tmp_path: Path) -> None:
    seen: list[tuple[str | None, str | None]] = []

    async def acme(message_id: str | None, data: str | None) -> tuple[str, str | None]:
        seen.append((message_id, data))
        return "Accepted", f"ack:{data}"

    wire = Wire()
    with trio.fail_after(WATCHDOG):
        async with (
            running_csms(tmp_path / "csms.db", vendors={"ACME": acme}) as (_, port),
            ChargePoint.connect(port, "CP_01", wire) as cp,
        ):
            unknown = await cp.call("DataTransfer", {"vendorId": "Other", "messageId": "x"})
            assert unknown == {"status": "UnknownVendorId"}
            known = await cp.call(
                "DataTransfer", {"vendorId": "ACME", "messageId": "Hello", "data": "42"}
            )
            assert known == {"status": "Accepted", "data": "ack:42"}
        stored = await read_back(tmp_path / "csms.db")
    assert seen == [("Hello", "42")]
    assert stored.diff == []
    assert frames_of(stored.log, "CP_01", "out") == wire.received


# -- restarts -----------------------------------------------------------------------------


async def test_transaction_ids_continue_after_a_restart_on_the_same_file(
    tmp_path: Path,
) -> None:
    db = tmp_path / "csms.db"
    wire = Wire()
    given: list[int] = []
    with trio.fail_after(WATCHDOG):
        async with running_csms(db) as (csms, port), ChargePoint.connect(port, "CP_01", wire) as cp:
            await cp.boot()
            for connector, minute in ((1, 0), (2, 1)):
                given.append((await cp.start(connector, "TAG", 0, minute))["transactionId"])
            await cp.stop(given[0], 10, 2)
            await shut_down(csms, cp)
        async with running_csms(db) as (csms, port):
            # The open session survived the restart; the shutdown was recorded.
            assert csms.state.sessions[given[1]].open
            assert csms.state.chargers["CP_01"].disconnect_reason == "server shutting down"
            async with ChargePoint.connect(port, "CP_01", wire) as cp:
                await cp.boot()
                after = (await cp.start(1, "TAG", 10, 3))["transactionId"]
        stored = await read_back(db)
    assert len(set(given)) == 2
    assert after > max(given)
    assert stored.diff == []
    assert sorted(stored.state.sessions) == sorted([*given, after])


def crash_image(db: Path, image: Path) -> None:
    """Copy what is committed in ``db`` to ``image``, as a crash at this moment would leave
    it (SQLite's online backup: a consistent snapshot, WAL content included)."""
    with closing(sqlite3.connect(db)) as source, closing(sqlite3.connect(image)) as target:
        source.backup(target)


async def test_chargers_connected_at_a_crash_are_shown_disconnected_after_restart(
    tmp_path: Path,
) -> None:
    db, image = tmp_path / "csms.db", tmp_path / "crashed.db"
    wire = Wire()
    with trio.fail_after(WATCHDOG):
        async with running_csms(db) as (csms, port), ChargePoint.connect(port, "CP_01", wire) as cp:
            await cp.boot()
            tx = (await cp.start(1, "TAG", 500, 0))["transactionId"]
            await cp.meter(1, [energy("900")], 1, tx)
            # Every answer received was committed first, so the image holds it all.
            await trio.to_thread.run_sync(crash_image, db, image)
            assert csms.state.chargers["CP_01"].connected
        async with running_csms(image) as (restarted, port):
            charger = restarted.state.chargers["CP_01"]
            assert not charger.connected
            assert charger.disconnect_reason == "CSMS restarted"
            assert restarted.state.sessions[tx].open
            assert restarted.state.sessions[tx].energy_wh == 400.0
            async with ChargePoint.connect(port, "CP_01", wire) as cp:
                await cp.meter(1, [energy("1100")], 2, tx)
                assert (await cp.stop(tx, 1200, 3)) == {}
                await shut_down(restarted, cp)
        stored = await read_back(image)
    assert stored.diff == []
    assert [r["reason"] for r in reasons(stored.log, "CP_01")] == [
        "CSMS restarted",
        "server shutting down",
    ]
    assert not stored.state.sessions[tx].open
    assert stored.state.sessions[tx].energy_wh == 700.0
    # Frames before the crash and after the restart: all in the image's log.
    assert frames_of(stored.log, "CP_01", "in") == wire.sent
    assert frames_of(stored.log, "CP_01", "out") == wire.received


# -- hostile integers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "payload"),
    [
        (
            "StopTransaction",
            {"transactionId": 2**63 - 1, "meterStop": 1, "timestamp": ts(0)},
        ),
        (
            "MeterValues",
            {
                "connectorId": 1,
                "transactionId": 2**63,
                "meterValue": [{"timestamp": ts(0), "sampledValue": [{"value": "1"}]}],
            },
        ),
        (
            "StatusNotification",
            {"connectorId": 2**63, "status": "Available", "errorCode": "NoError"},
        ),
        (
            "StartTransaction",
            {"connectorId": 2**40, "idTag": "T", "meterStart": 0, "timestamp": ts(0)},
        ),
    ],
    ids=["stop-tx-2**63-1", "meter-tx-2**63", "status-connector-2**63", "start-connector-2**40"],
)
async def test_an_id_beyond_32_bits_is_refused_and_the_store_keeps_working(
    tmp_path: Path, action: str, payload: dict[str, Any]
) -> None:
    """Regression: such an id reached SQLite's 64-bit columns, the writer died of an
    OverflowError, and the whole CSMS with it."""
    db = tmp_path / "csms.db"
    wire = Wire()
    with trio.fail_after(WATCHDOG):
        async with running_csms(db) as (csms, port), ChargePoint.connect(port, "CP_01", wire) as cp:
            refused = await cp.exchange(action, payload)
            assert refused[0] == 4
            assert refused[2] == "PropertyConstraintViolation"
            # The CSMS, its store included, carries on.
            started = await cp.start(1, "TAG", 0, 1)
            assert started["transactionId"] == 1
            assert await cp.stop(started["transactionId"], 5, 2) == {}
            assert csms.state.anomalies == []
            await shut_down(csms, cp)
        stored = await read_back(db)
    assert stored.diff == []
    assert frames_of(stored.log, "CP_01", "out") == wire.received
