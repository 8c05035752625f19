"""Charger capabilities from the charger (issue #13, point 6): after a boot the CSMS asks
what profiles a charger takes, records the answer, and sends profiles the charger can take;
then it installs the safety nets a charger enforces on its own (point 2).

The chargers here are raw WebSocket charge points with the firmware rules of real ones
(a W-only charger with ChargeProfileMaxStackLevel 0 refuses anything else), against the
real CSMS with a site limit, in virtual time. What is asserted is what the charger saw.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from csms import replay
from csms.domain.projection import events_for_answer
from csms.domain.state import DomainState
from csms.smart.capabilities import CAPABILITY_KEYS, Capabilities, parse_units
from csms.smart.site import ChargerRating, SiteConfig
from fleet_helpers import eventually, virtual_site
from ocppj.payloads import request_from_payload
from raw_cp_helpers import Refuse, ServingChargePoint, Wire
from sim.config import ChargerTemplate
from sim.ev import Ev
from sim.profiles import ProfileStore

NOW_TS = "2026-01-01T08:00:00Z"
BOOT = {"chargePointVendor": "Acme", "chargePointModel": "W1"}

# -- reading the keys, pure ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "units"),
    [
        ("Current,Power", {"A", "W"}),
        ("Current", {"A"}),
        ("Power", {"W"}),
        ("W", {"W"}),  # seen in the field, not in the specification
        (" current ; power ", {"A", "W"}),
        ("Power,Bogus", {"W"}),
        ("Bogus", None),
        ("", None),
        (None, None),
    ],
)
def test_allowed_rate_units_are_read_as_far_as_their_meaning_is_clear(
    value: str | None, units: set[str] | None
) -> None:
    assert parse_units(value) == (frozenset(units) if units is not None else None)


def test_the_unit_is_the_configured_one_else_a_unless_the_charger_takes_only_w() -> None:
    assert Capabilities().unit(None) == "A"  # unknown: as before
    assert Capabilities(units=frozenset({"A", "W"})).unit(None) == "A"
    assert Capabilities(units=frozenset({"W"})).unit(None) == "W"
    assert Capabilities(units=frozenset({"W"})).unit("A") == "A"  # the file overrides


def test_stack_level_within_the_chargers_maximum() -> None:
    assert Capabilities().stack_level(1) == 1
    assert Capabilities(max_stack_level=0).stack_level(1) == 0
    assert Capabilities(max_stack_level=8).stack_level(1) == 1


def test_capabilities_from_reported_keys_any_case() -> None:
    caps = Capabilities.from_configuration({
        "chargingscheduleallowedchargingrateunit": "Power",
        "ChargeProfileMaxStackLevel": "3",
        "ChargingScheduleMaxPeriods": "x",
        "SupportedFeatureProfiles": "Core,FirmwareManagement,SmartCharging",
    })
    assert caps == Capabilities(frozenset({"W"}), 3, None, True)


def test_a_getconfiguration_answer_is_kept_on_the_charger_but_never_a_secret() -> None:
    state = DomainState()
    at = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    answer = {
        "configurationKey": [
            {"key": "ChargingScheduleAllowedChargingRateUnit", "readonly": True, "value": "Power"},
            {"key": "AuthorizationKey", "readonly": False, "value": "s3cret"},
            {"key": "WriteOnly", "readonly": False},
        ],
        "unknownKey": ["ChargeProfileMaxStackLevel"],
    }
    events = events_for_answer(state, "CP_01", "GetConfiguration", {}, answer, None, at)
    (event,) = events
    assert event.values == (("ChargingScheduleAllowedChargingRateUnit", "Power"),)
    assert event.unknown == ("ChargeProfileMaxStackLevel",)
    change = {"key": "AuthorizationKey", "value": "0011"}
    (seen,) = events_for_answer(
        state, "CP_01", "ChangeConfiguration", change, {"status": "Accepted"}, None, at
    )
    assert not hasattr(seen, "values")


# -- a W-only charger, as the CSMS meets it -----------------------------------------------------


def w_only_firmware(max_stack_level: int = 0) -> dict[str, Any]:
    """The CALL handlers of a charger whose firmware takes only W profiles, at stack levels
    up to ``max_stack_level`` (as widely used charger firmware does)."""
    keys = {
        "ChargingScheduleAllowedChargingRateUnit": "Power",
        "ChargeProfileMaxStackLevel": str(max_stack_level),
        "ChargingScheduleMaxPeriods": "10",
        "MaxChargingProfilesInstalled": "4",
        "NumberOfConnectors": "1",
        "SupportedFeatureProfiles": "Core,SmartCharging",
        "MeterValuesSampledData": "Energy.Active.Import.Register",
        "MeterValueSampleInterval": "60",
    }

    def takes(profile: dict[str, Any]) -> bool:
        unit = profile["chargingSchedule"]["chargingRateUnit"]
        return bool(unit == "W" and profile["stackLevel"] <= max_stack_level)

    return firmware(takes, keys)


def tx_profiles(cp: ServingChargePoint) -> list[dict[str, Any]]:
    """The SetChargingProfile payloads of TxProfiles the charger was sent."""
    return [
        p
        for p in cp.served_actions("SetChargingProfile")
        if p["csChargingProfiles"]["chargingProfilePurpose"] == "TxProfile"
    ]


async def boot_and_charge(cp: ServingChargePoint) -> int:
    """Boot, plug in, start a transaction on connector 1; the transactionId."""
    boot = await cp.call("BootNotification", BOOT)
    assert boot["status"] == "Accepted"
    await cp.call(
        "StatusNotification",
        {"connectorId": 1, "status": "Preparing", "errorCode": "NoError", "timestamp": NOW_TS},
    )
    started = await cp.call(
        "StartTransaction",
        {"connectorId": 1, "idTag": "TAG-1", "meterStart": 0, "timestamp": NOW_TS},
    )
    return int(started["transactionId"])


site_of_11_kw = functools.partial(
    virtual_site, site=SiteConfig(limit_kw=11.0), call_timeout=30.0
)


async def test_a_w_only_charger_is_asked_what_it_takes_and_gets_profiles_it_accepts(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    async with (
        site_of_11_kw(tmp_path, virtual_clock) as s,
        ServingChargePoint.connect(s.port, "CP_W", Wire()) as cp,
    ):
        cp.handlers = w_only_firmware(max_stack_level=0)
        tx = await boot_and_charge(cp)
        # The first CALL of the CSMS: what the charger takes, after its boot answer.
        assert cp.served[0][0] == "GetConfiguration"
        assert cp.served[0][1] == {"key": list(CAPABILITY_KEYS)}
        await cp.serve_until(lambda: bool(tx_profiles(cp)))
        (payload,) = tx_profiles(cp)
        profile = payload["csChargingProfiles"]
        # What the charger accepted: its unit, its stack level, the whole site (alone).
        answers = [a for n, p, a in cp.served if n == "SetChargingProfile"]
        assert answers == [{"status": "Accepted"}] * 3  # two safety nets, then this
        assert profile["transactionId"] == tx
        assert profile["stackLevel"] == 0
        assert profile["chargingSchedule"]["chargingRateUnit"] == "W"
        assert profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 11_000.0
        smart = s.running_csms.smart
        assert smart is not None and smart.uncontrolled == {}
        # The answer is domain state, rebuilt by replay from the message log.
        live = s.running_csms.state.chargers["CP_W"].configuration
        assert live["ChargingScheduleAllowedChargingRateUnit"] == "Power"
        rebuilt = replay.rebuild(await s.log()).state.chargers["CP_W"].configuration
        assert rebuilt == live


async def test_the_configuration_file_overrides_what_the_charger_reports(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    site = SiteConfig(
        limit_kw=11.0, chargers={"CP_W": ChargerRating(unit="A", max_stack_level=0)}
    )
    async with (
        virtual_site(tmp_path, virtual_clock, site=site) as s,
        ServingChargePoint.connect(s.port, "CP_W", Wire()) as cp,
    ):
        cp.handlers = w_only_firmware(max_stack_level=8)
        await boot_and_charge(cp)
        await cp.serve_until(lambda: bool(tx_profiles(cp)))
        (payload,) = tx_profiles(cp)
        schedule = payload["csChargingProfiles"]["chargingSchedule"]
        assert schedule["chargingRateUnit"] == "A"
        assert payload["csChargingProfiles"]["stackLevel"] == 0  # it reports 8


async def test_a_charger_that_reconnects_without_booting_is_asked_again(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    async with site_of_11_kw(tmp_path, virtual_clock) as s:
        wire = Wire()
        async with ServingChargePoint.connect(s.port, "CP_W", wire) as cp:
            cp.handlers = w_only_firmware()
            await cp.call("BootNotification", BOOT)
            await cp.serve_until(lambda: bool(cp.served_actions("GetConfiguration")))
        async with ServingChargePoint.connect(s.port, "CP_W", wire) as again:
            again.handlers = w_only_firmware()
            await again.call("Heartbeat", {})
            await again.serve_until(lambda: bool(again.served_actions("GetConfiguration")))
            # Once per connection, not once per message.
            await again.call("Heartbeat", {})
            await trio.sleep(60)
            await again.call("Heartbeat", {})
            assert len(again.served_actions("GetConfiguration")) == 1


async def test_a_charger_that_refuses_the_key_list_is_asked_for_every_key(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    firmware = w_only_firmware()
    answer_all = firmware["GetConfiguration"]

    def all_keys_only(payload: dict[str, Any]) -> dict[str, Any]:
        if payload.get("key"):
            raise Refuse("NotSupported")
        return answer_all(payload)

    async with (
        site_of_11_kw(tmp_path, virtual_clock) as s,
        ServingChargePoint.connect(s.port, "CP_W", Wire()) as cp,
    ):
        cp.handlers = {**firmware, "GetConfiguration": all_keys_only}
        await boot_and_charge(cp)
        await cp.serve_until(lambda: bool(tx_profiles(cp)))
        first, second = cp.served_actions("GetConfiguration")
        assert first == {"key": list(CAPABILITY_KEYS)}
        assert second == {}
        (payload,) = tx_profiles(cp)
        assert payload["csChargingProfiles"]["chargingSchedule"]["chargingRateUnit"] == "W"


# -- metering keys at boot (issue #13, point 3) --------------------------------------------------


def metering_firmware(answer: str) -> dict[str, Any]:
    """A W-only charger that meters energy only until told otherwise; it answers
    ChangeConfiguration with ``answer`` (and changes the key when Accepted)."""
    handlers = w_only_firmware()
    keys: dict[str, str] = {}
    get_configuration = handlers["GetConfiguration"]

    def reported(payload: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = get_configuration(payload)
        for entry in result["configurationKey"]:
            entry["value"] = keys.get(entry["key"], entry["value"])
        return result

    def change_configuration(payload: dict[str, Any]) -> dict[str, Any]:
        if answer == "Accepted":
            keys[payload["key"]] = payload["value"]
        return {"status": answer}

    return {**handlers, "GetConfiguration": reported,
            "ChangeConfiguration": change_configuration}


METERING = SiteConfig(
    limit_kw=11.0,
    meter_values_sampled_data="Energy.Active.Import.Register; Power.Active.Import",
    meter_value_sample_interval_s=30,
)


async def test_the_metering_keys_the_site_asks_for_are_set_at_boot_once(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    async with virtual_site(tmp_path, virtual_clock, site=METERING, call_timeout=30.0) as s:
        wire = Wire()
        handlers = metering_firmware("Accepted")
        async with ServingChargePoint.connect(s.port, "CP_W", wire) as cp:
            cp.handlers = handlers
            await boot_and_charge(cp)
            await cp.serve_until(lambda: bool(tx_profiles(cp)))
            # Power to measure the draw by, every 30 s; then the session's limit.
            assert cp.served_actions("ChangeConfiguration") == [
                {"key": "MeterValuesSampledData",
                 "value": "Energy.Active.Import.Register,Power.Active.Import"},
                {"key": "MeterValueSampleInterval", "value": "30"},
            ]
            configuration = s.running_csms.state.chargers["CP_W"].configuration
            assert configuration["MeterValueSampleInterval"] == "30"
            rebuilt = replay.rebuild(await s.log()).state.chargers["CP_W"].configuration
            assert rebuilt == configuration
        # Back on a new connection, it reports the values set: nothing to change.
        async with ServingChargePoint.connect(s.port, "CP_W", wire) as again:
            again.handlers = handlers
            await again.call("Heartbeat", {})
            await again.serve_until(lambda: bool(again.served_actions("GetConfiguration")))
            await trio.sleep(60)
            assert again.served_actions("ChangeConfiguration") == []


async def test_a_charger_that_refuses_the_metering_keys_is_still_controlled(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    async with (
        virtual_site(tmp_path, virtual_clock, site=METERING, call_timeout=30.0) as s,
        ServingChargePoint.connect(s.port, "CP_W", Wire()) as cp,
    ):
        cp.handlers = metering_firmware("Rejected")
        await boot_and_charge(cp)
        await cp.serve_until(lambda: bool(tx_profiles(cp)))
        assert len(cp.served_actions("ChangeConfiguration")) == 2
        configuration = s.running_csms.state.chargers["CP_W"].configuration
        assert configuration["MeterValuesSampledData"] == "Energy.Active.Import.Register"


# -- safety nets (issue #13, point 2) -----------------------------------------------------------


def in_force(
    cp: ServingChargePoint, tx: int, start: datetime.datetime, now: datetime.datetime
) -> float | None:
    """The limit in force on connector 1 (W) as a 1.6 charger applies the profiles this one
    accepted: the simulator's profile core, fed the accepted SetChargingProfiles in order."""
    store = ProfileStore(number_of_connectors=1)
    for action, payload, answer in cp.served:
        if action == "SetChargingProfile" and answer == {"status": "Accepted"}:
            request = request_from_payload(action, payload)
            accepted, why = store.set(
                payload["connectorId"], request.cs_charging_profiles, transaction_id=tx, now=now
            )
            assert accepted, why
    return store.limit(1, now=now, transaction_start=start, phases=3)


async def test_safety_nets_are_installed_at_boot_in_the_chargers_unit(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    async with (
        site_of_11_kw(tmp_path, virtual_clock) as s,
        ServingChargePoint.connect(s.port, "CP_W", Wire()) as cp,
    ):
        cp.handlers = w_only_firmware(max_stack_level=0)
        boot = await cp.call("BootNotification", BOOT)
        assert boot["status"] == "Accepted"
        await cp.serve_until(lambda: len(cp.served_actions("SetChargingProfile")) == 2)
        tx_default, cp_max = (p["csChargingProfiles"] for p in cp.served_actions(
            "SetChargingProfile"
        ))
        # Both on connector 0, both Accepted by a W-only, stack-level-0 charger.
        assert all(p["connectorId"] == 0 for p in cp.served_actions("SetChargingProfile"))
        assert [a for n, _, a in cp.served if n == "SetChargingProfile"] == [
            {"status": "Accepted"}
        ] * 2
        assert tx_default["chargingProfilePurpose"] == "TxDefaultProfile"
        assert tx_default["chargingSchedule"]["chargingRateUnit"] == "W"
        # 6 A on three phases: 4,140 W for every EVSE until its TxProfile.
        assert tx_default["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 4140.0
        assert cp_max["chargingProfilePurpose"] == "ChargePointMaxProfile"
        assert cp_max["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 11_000.0
        start = s.now()
        # A session that starts before its TxProfile is bounded by the safety net ...
        assert in_force(cp, 1, start, s.now()) == 4140.0
        await cp.call(
            "StartTransaction",
            {"connectorId": 1, "idTag": "TAG-1", "meterStart": 0, "timestamp": NOW_TS},
        )
        assert in_force(cp, 1, start, s.now()) == 4140.0
        # ... and its TxProfile (the whole site: it is alone) lifts it, under the cap.
        await cp.serve_until(lambda: len(cp.served_actions("SetChargingProfile")) == 3)
        assert in_force(cp, 1, start, s.now()) == 11_000.0


async def test_a_session_started_while_the_csms_is_down_is_bounded_by_the_safety_net(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    async with site_of_11_kw(tmp_path, virtual_clock, stop_fleet=False) as s:
        (cp,) = await s.fleet.spawn(1, evses=1)
        await eventually(lambda: cp.online and len(cp.profiles_received[0]) == 2)
        await s.stop_csms()
        await eventually(lambda: not cp.online)
        await cp.plug_in(1, Ev(capacity_wh=90_000, soc=10.0, max_power_w=22_000))
        assert await cp.start_session(1, "TAG-1")  # authorized locally: the CSMS is away
        await trio.sleep(120)
        assert cp.evse(1).limit_w == pytest.approx(4140.0)
        assert cp.evse(1).power_w == pytest.approx(4140.0)


async def test_no_safety_nets_when_the_site_file_says_so(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    site = SiteConfig(limit_kw=11.0, safe_limit_a_per_phase=None, charge_point_max_profile=False)
    async with virtual_site(tmp_path, virtual_clock, site=site) as s:
        (cp,) = await s.fleet.spawn(1, evses=1)
        await eventually(lambda: cp.online)
        await trio.sleep(60)
        assert not cp.profiles_received[0]


# -- falling back after a refused TxProfile (issue #13, point 6) ------------------------------


def firmware(
    accepts: Callable[[dict[str, Any]], bool], keys: dict[str, str], connectors: int = 2
) -> dict[str, Any]:
    """Handlers of a charger that reports ``keys`` and accepts the profiles ``accepts``
    takes; ClearChargingProfile by id is Accepted."""

    def get_configuration(payload: dict[str, Any]) -> dict[str, Any]:
        wanted = payload.get("key") or list(keys)
        return {
            "configurationKey": [
                {"key": k, "readonly": True, "value": keys[k]} for k in wanted if k in keys
            ],
            "unknownKey": [k for k in wanted if k not in keys],
        }

    def set_charging_profile(payload: dict[str, Any]) -> dict[str, Any]:
        ok = accepts(payload["csChargingProfiles"])
        return {"status": "Accepted" if ok else "Rejected"}

    def clear_charging_profile(payload: dict[str, Any]) -> dict[str, Any]:
        return {"status": "Accepted"}

    return {
        "GetConfiguration": get_configuration,
        "SetChargingProfile": set_charging_profile,
        "ClearChargingProfile": clear_charging_profile,
    }


def unit_of(profile: dict[str, Any]) -> str:
    unit: str = profile["chargingSchedule"]["chargingRateUnit"]
    return unit


async def start(cp: ServingChargePoint, connector: int, tag: str) -> int:
    started = await cp.call(
        "StartTransaction",
        {"connectorId": connector, "idTag": tag, "meterStart": 0, "timestamp": NOW_TS},
    )
    return int(started["transactionId"])


async def test_a_charger_that_does_not_say_it_takes_only_w_gets_w_after_refusing_a(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    async with (
        site_of_11_kw(tmp_path, virtual_clock) as s,
        ServingChargePoint.connect(s.port, "CP_W", Wire()) as cp,
    ):
        # No ChargingScheduleAllowedChargingRateUnit in its key set: the CSMS cannot know.
        cp.handlers = firmware(lambda p: unit_of(p) == "W", {"NumberOfConnectors": "1"})
        await cp.call("BootNotification", BOOT)
        tx = await start(cp, 1, "TAG-1")
        await cp.serve_until(lambda: any(unit_of(p["csChargingProfiles"]) == "W"
                                         for p in tx_profiles(cp)))
        tried = [
            (p["csChargingProfiles"]["chargingProfilePurpose"],
             unit_of(p["csChargingProfiles"]), a["status"] if a else None)
            for n, p, a in cp.served if n == "SetChargingProfile"
        ]
        # The safety nets in A, refused, then in W; the TxProfile in A, refused, then in W.
        assert tried == [
            ("TxDefaultProfile", "A", "Rejected"), ("TxDefaultProfile", "W", "Accepted"),
            ("ChargePointMaxProfile", "A", "Rejected"), ("ChargePointMaxProfile", "W", "Accepted"),
            ("TxProfile", "A", "Rejected"), ("TxProfile", "W", "Accepted"),
        ]
        smart = s.running_csms.smart
        assert smart is not None and smart.uncontrolled == {}
        assert in_force(cp, tx, s.now(), s.now()) == 11_000.0


async def test_a_charger_that_refuses_txprofiles_gets_a_txdefaultprofile_on_the_connector(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    keys = {"ChargingScheduleAllowedChargingRateUnit": "Current,Power",
            "NumberOfConnectors": "2"}
    async with (
        site_of_11_kw(tmp_path, virtual_clock) as s,
        ServingChargePoint.connect(s.port, "CP_D", Wire()) as cp,
    ):
        cp.handlers = firmware(lambda p: p["chargingProfilePurpose"] != "TxProfile", keys)
        await cp.call("BootNotification", BOOT)
        tx = await start(cp, 1, "TAG-1")

        def defaults_on(connector: int) -> list[dict[str, Any]]:
            return [p for p in cp.served_actions("SetChargingProfile")
                    if p["connectorId"] == connector]

        await cp.serve_until(lambda: bool(defaults_on(1)) and
                             defaults_on(1)[-1]["csChargingProfiles"]["chargingProfilePurpose"]
                             == "TxDefaultProfile")
        # TxProfile in A and in W refused, then the TxDefaultProfile on connector 1, taken.
        assert [(p["csChargingProfiles"]["chargingProfilePurpose"],
                 unit_of(p["csChargingProfiles"])) for p in defaults_on(1)] == [
            ("TxProfile", "A"), ("TxProfile", "W"), ("TxDefaultProfile", "A")]
        fallback = defaults_on(1)[-1]["csChargingProfiles"]
        assert fallback["chargingProfileId"] == 9201
        smart = s.running_csms.smart
        assert smart is not None and smart.uncontrolled == {}
        assert in_force(cp, tx, s.now(), s.now()) == pytest.approx(15.9 * 690)
        # A second session halves the first one's share: sent in the form that worked.
        await start(cp, 2, "TAG-2")
        await cp.serve_until(lambda: len(defaults_on(1)) == 4)
        assert defaults_on(1)[-1]["csChargingProfiles"]["chargingProfilePurpose"] == (
            "TxDefaultProfile"
        )
        # When the session ends, its connector's fallback is cleared: the next session
        # starts under the safety net, not at this one's limit.
        await cp.call(
            "StopTransaction",
            {"transactionId": tx, "meterStop": 100, "timestamp": NOW_TS, "reason": "Local"},
        )
        await cp.serve_until(lambda: bool(cp.served_actions("ClearChargingProfile")))
        assert cp.served_actions("ClearChargingProfile") == [{"id": 9201}]


# -- the simulator's chargers, with the same capabilities ----------------------------------------


async def test_simulated_chargers_with_limited_capabilities_are_controlled(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    templates = {
        "w_only": ChargerTemplate(rate_units="Power", max_stack_level=0, evses=1),
        "no_tx_profile": ChargerTemplate(tx_profiles=False, evses=1),
    }
    async with site_of_11_kw(tmp_path, virtual_clock) as s:
        s.fleet.config = attrs.evolve(s.fleet.config, chargers=templates)
        (w_only,) = await s.fleet.spawn(1, template="w_only")
        (no_tx,) = await s.fleet.spawn(1, template="no_tx_profile")
        chargers = [w_only, no_tx]
        await eventually(lambda: all(len(cp.profiles_received[0]) == 2 for cp in chargers))
        # What they report, as the CSMS recorded it from their GetConfiguration answers.
        reported = s.running_csms.state.chargers
        assert reported["CP_01"].configuration["ChargingScheduleAllowedChargingRateUnit"] == (
            "Power"
        )
        assert reported["CP_01"].configuration["ChargeProfileMaxStackLevel"] == "0"
        for i, cp in enumerate(chargers):
            await cp.plug_in(1, Ev(capacity_wh=90_000, soc=10.0, max_power_w=22_000))
            assert await cp.start_session(1, f"TAG-{i}")
        await trio.sleep(2 * 60)
        # Each is given half the site (5.5 kW), and that is the limit in force on it.
        for cp in chargers:
            assert cp.evse(1).limit_w == pytest.approx(5_500.0, abs=70.0)
            assert cp.evse(1).power_w <= 5_500.0
        (w_profile,) = [p for _, p in w_only.profiles_received[1]]
        assert w_profile["chargingSchedule"]["chargingRateUnit"] == "W"
        assert w_profile["stackLevel"] == 0
        purposes = {p["chargingProfilePurpose"] for _, p in no_tx.profiles_received[1]}
        assert purposes == {"TxDefaultProfile"}
        smart = s.running_csms.smart
        assert smart is not None and smart.uncontrolled == {}
