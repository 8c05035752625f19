"""The simulator's configuration (``config.yaml``): CSMS URL, charger templates, EV mix,
meter interval, seed. Validated at the edge by one cattrs converter; a bad file gets an
error naming the file, the field and what was expected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import cattrs
import yaml
from attrs import frozen

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"


class ConfigError(Exception):
    """The configuration is invalid; the message names the file and the field."""


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"must be > 0, got {value}")


def _percent(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0 <= value <= 100:
        raise ValueError(f"must be within 0..100, got {value}")


def _phases(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if value not in (1, 3):
        raise ValueError(f"must be 1 or 3, got {value}")


@frozen
class ChargerTemplate:
    """What kind of charger a fleet member is."""

    vendor: str = "TrioSim"
    model: str = "AC-22"
    evses: int = attrs.field(default=2, validator=_positive)
    max_power_kw: float = attrs.field(default=22.0, validator=_positive)
    phases: int = attrs.field(default=3, validator=_phases)


@frozen
class EvSpec:
    """One kind of EV in the mix; ``weight`` is its relative frequency."""

    name: str
    capacity_kwh: float = attrs.field(validator=_positive)
    max_power_kw: float = attrs.field(validator=_positive)
    weight: float = attrs.field(default=1.0, validator=_positive)
    soc_min: float = attrs.field(default=10.0, validator=_percent)
    soc_max: float = attrs.field(default=60.0, validator=_percent)


def _default_mix() -> tuple[EvSpec, ...]:
    return (
        EvSpec("compact", 40.0, 7.4, 3.0, 15.0, 60.0),
        EvSpec("family", 60.0, 11.0, 4.0, 10.0, 50.0),
        EvSpec("premium", 90.0, 22.0, 2.0, 10.0, 40.0),
    )


@frozen
class SimConfig:
    """The whole simulator configuration."""

    csms_url: str | None = None
    seed: int = 1
    meter_interval: int = attrs.field(default=60, validator=_positive)
    heartbeat_interval: int = attrs.field(default=300, validator=_positive)
    chargers: dict[str, ChargerTemplate] = attrs.field(
        factory=lambda: {"default": ChargerTemplate()}
    )
    ev_mix: tuple[EvSpec, ...] = attrs.field(factory=_default_mix)

    def template(self, name: str | None) -> ChargerTemplate:
        """Charger template ``name`` (``default`` when None).

        Raises:
            ConfigError: no such template.
        """
        key = name or "default"
        if key not in self.chargers:
            raise ConfigError(f"no charger template {key!r} (have: {', '.join(self.chargers)})")
        return self.chargers[key]


_converter = cattrs.Converter(forbid_extra_keys=True)


def parse_config(data: Any, *, source: str = "<config>") -> SimConfig:
    """Validate ``data`` (parsed YAML) into a SimConfig.

    Raises:
        ConfigError: naming ``source``, the field and what was expected.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    try:
        config = _converter.structure(data, SimConfig)
    except cattrs.BaseValidationError as exc:
        problems = "; ".join(cattrs.transform_error(exc, path="config"))
        raise ConfigError(f"{source}: {problems}") from None
    if "default" not in config.chargers:
        raise ConfigError(f"{source}: config.chargers: needs a 'default' template")
    if not config.ev_mix:
        raise ConfigError(f"{source}: config.ev_mix: needs at least one EV")
    return config


def load_config(path: Path | None) -> SimConfig:
    """Load ``path`` (or the project's ``config.yaml``, or built-in defaults)."""
    if path is None:
        if not DEFAULT_CONFIG.is_file():
            return SimConfig()
        path = DEFAULT_CONFIG
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(data, source=str(path))
