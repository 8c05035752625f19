"""The simulator's configuration file (sim.config): the shipped config.yaml loads, and a
bad file gets a ConfigError naming the file, the field and what was expected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sim.behaviour import IDEAL, Behaviours, MeteredOnly, ObeyFraction, SlowAnswers
from sim.config import DEFAULT_CONFIG, ChargerTemplate, ConfigError, SimConfig, load_config


def test_the_shipped_config_yaml_loads() -> None:
    assert DEFAULT_CONFIG.is_file()
    config = load_config(DEFAULT_CONFIG)
    assert config == load_config(None)  # the default is the project's config.yaml
    assert config.csms_url is None
    assert (config.seed, config.meter_interval, config.heartbeat_interval) == (1, 60, 300)
    assert set(config.chargers) == {
        "default", "compact", "single_phase", "w_only", "no_tx_profile", "overshooter",
        "energy_meter",
    }
    assert config.template("overshooter").behaviour() == ObeyFraction(1.5)
    assert config.template("energy_meter").behaviour() == Behaviours.of([
        MeteredOnly(frozenset({"Energy.Active.Import.Register"})),
        SlowAnswers(40.0, frozenset({"SetChargingProfile"})),
    ])
    assert config.template(None).behaviour() is IDEAL
    w_only = config.template("w_only")
    assert (w_only.rate_units, w_only.max_stack_level, w_only.tx_profiles) == ("Power", 0, True)
    assert config.template("no_tx_profile").tx_profiles is False
    assert config.template(None) == ChargerTemplate("TrioSim", "AC-22", 2, 22.0, 3)
    assert config.template("single_phase").phases == 1
    assert [ev.name for ev in config.ev_mix] == ["compact", "family", "premium"]
    assert all(ev.soc_min <= ev.soc_max for ev in config.ev_mix)


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing\n")
    assert load_config(path) == SimConfig()


def test_a_partial_file_keeps_the_other_defaults(tmp_path: Path) -> None:
    path = tmp_path / "partial.yaml"
    path.write_text("seed: 42\nchargers:\n  default: {max_power_kw: 11}\n")
    config = load_config(path)
    assert config.seed == 42
    assert config.template(None) == ChargerTemplate(max_power_kw=11.0)
    assert config.ev_mix == SimConfig().ev_mix


def test_an_unknown_template_names_the_ones_there_are() -> None:
    with pytest.raises(ConfigError, match=r"no charger template 'nope' \(have: default"):
        load_config(DEFAULT_CONFIG).template("nope")


# (file content, the field's path, what was expected)
BAD = {
    "unknown key": ("colour: red\n", "@ config", "extra fields found (colour)"),
    "unknown nested key": (
        "chargers:\n  default: {evses: 2, voltage: 400}\n",
        "config.chargers['default']",
        "extra fields found (voltage)",
    ),
    "wrong type": ("meter_interval: often\n", "config.meter_interval", "expected an integer"),
    "a float for an integer": ("seed: 1.5\n", "config.seed", "expected an integer, got 1.5"),
    "a boolean for an integer": ("seed: true\n", "config.seed", "expected an integer"),
    "a number for a string": (
        "chargers:\n  default: {vendor: 5}\n",
        "config.chargers['default'].vendor",
        "expected a string",
    ),
    "a list for a mapping": ("chargers: [1, 2]\n", "config.chargers", "expected a mapping"),
    "negative power": (
        "chargers:\n  default: {max_power_kw: -5}\n",
        "config.chargers['default'].max_power_kw",
        "expected a number > 0, got -5.0",
    ),
    "zero interval": ("meter_interval: 0\n", "config.meter_interval", "expected a number > 0"),
    "phases 2": (
        "chargers:\n  default: {phases: 2}\n",
        "config.chargers['default'].phases",
        "expected 1 or 3, got 2",
    ),
    "SoC out of range": (
        "ev_mix:\n  - {name: van, capacity_kwh: 75, max_power_kw: 11, soc_max: 120}\n",
        "config.ev_mix[0].soc_max",
        "expected a percentage within 0..100",
    ),
    "not a finite number": (
        "ev_mix:\n  - {name: van, capacity_kwh: .nan, max_power_kw: 11}\n",
        "config.ev_mix[0].capacity_kwh",
        "expected a number",
    ),
    "missing field": (
        "ev_mix:\n  - {name: van, max_power_kw: 11}\n",
        "config.ev_mix[0].capacity_kwh",
        "required field missing",
    ),
    "no default template": (
        "chargers:\n  compact: {max_power_kw: 11}\n",
        "config.chargers",
        "needs a 'default' template",
    ),
    "empty EV mix": ("ev_mix: []\n", "config.ev_mix", "needs at least one EV"),
    "no rate unit": (
        "chargers:\n  default: {rate_units: Volts}\n",
        "config.chargers['default'].rate_units",
        "expected Current, Power or Current,Power",
    ),
    "an unknown behaviour": (
        "chargers:\n  default: {behaviours: [{kind: sulk}]}\n",
        "config.chargers['default'].behaviours",
        "unknown behaviour 'sulk' (known: ignore-profiles, obey-fraction",
    ),
    "a behaviour's bad knob": (
        "chargers:\n  default: {behaviours: [{kind: obey-fraction, factor: -1}]}\n",
        "config.chargers['default'].behaviours",
        "obey-fraction: factor must be a number >= 0",
    ),
    "a behaviour's unknown knob": (
        "chargers:\n  default: {behaviours: [{kind: ignore-profiles, politely: true}]}\n",
        "config.chargers['default'].behaviours",
        "ignore-profiles: unknown setting(s) politely",
    ),
    "an unknown incident": (
        "chargers:\n  default: {incidents: [{kind: flood, at: 5}]}\n",
        "config.chargers['default'].incidents",
        "unknown incident 'flood' (known: offline, reboot)",
    ),
    "an incident's bad knob": (
        "chargers:\n  default: {incidents: [{kind: offline, at: 5, for: 0}]}\n",
        "config.chargers['default'].incidents",
        "offline: for must be seconds > 0",
    ),
    "an EV of two phases": (
        "ev_mix:\n  - {name: van, capacity_kwh: 75, max_power_kw: 11, phases: 2}\n",
        "config.ev_mix[0].phases",
        "expected 1 or 3, got 2",
    ),
    "not a mapping": ("- 1\n- 2\n", "", "expected a mapping at the top level"),
    "not YAML": ("seed: [1, 2\n", "line 1", "not valid YAML"),
}


@pytest.mark.parametrize(("text", "field", "expected"), BAD.values(), ids=BAD.keys())
def test_a_bad_file_names_the_file_the_field_and_what_was_expected(
    tmp_path: Path, text: str, field: str, expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert field in message
    assert expected in message


def test_a_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError, match="cannot read: No such file") as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_python_m_sim_with_a_bad_config_exits_2_with_the_message(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("chargers:\n  default: {phases: 2}\n")
    done = subprocess.run(
        [sys.executable, "-m", "sim", "--config", str(path), "scenario", "basic_charge"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False,
    )
    assert done.returncode == 2, done.stderr
    assert str(path) in done.stderr
    assert "config.chargers['default'].phases" in done.stderr
    assert "expected 1 or 3, got 2" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_python_m_sim_with_a_missing_config_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "sim", "--config", str(path), "scenario", "basic_charge"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False,
    )
    assert done.returncode == 2, done.stderr
    assert f"{path}: cannot read" in done.stderr
