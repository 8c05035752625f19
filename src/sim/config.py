"""The simulator's configuration (``config.yaml``): CSMS URL, charger templates, EV mix,
meter interval, seed. Validated at the edge by one cattrs converter; a bad file gets an
error naming the file, the field and what was expected."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import cattrs
import yaml
from attrs import frozen
from cattrs.errors import AttributeValidationNote, ClassValidationError
from cattrs.gen import make_dict_structure_fn

from ocppj.charging import parse_units
from sim.behaviour import Behaviour, BehaviourError, behaviour_from_spec, combined
from sim.ev import Ev
from sim.incidents import Incident, incident_from_spec

#: Shipped in the package (a symlink to the project's top-level config.yaml, its source).
DEFAULT_CONFIG = Path(__file__).resolve().parent / "config.yaml"


class ConfigError(Exception):
    """The configuration is invalid; the message names the file and the field."""


class _Invalid(ValueError):
    """A value the configuration does not allow; the message says what was expected.

    ``field`` names the attribute when a validator raised it (cattrs cannot tell then).
    """

    def __init__(self, expected: str, value: Any, field: str | None = None) -> None:
        super().__init__(f"expected {expected}, got {value!r}")
        self.field = field


def _not_negative(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise _Invalid("a number >= 0", value, attribute.name)


def _rate_units(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if parse_units(value) is None:
        raise _Invalid("Current, Power or Current,Power", value, attribute.name)


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise _Invalid("a number > 0", value, attribute.name)


def _percent(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0 <= value <= 100:
        raise _Invalid("a percentage within 0..100", value, attribute.name)


def _descriptions(
    parse: Callable[[Any], object], what: str
) -> Callable[[Any, attrs.Attribute[Any], tuple[dict[str, Any], ...]], None]:
    """A validator: every description in the list is one ``parse`` takes."""

    def validate(
        instance: Any, attribute: attrs.Attribute[Any], value: tuple[dict[str, Any], ...]
    ) -> None:
        for spec in value:
            try:
                parse(spec)
            except BehaviourError as exc:
                raise _Invalid(f"{what} ({exc})", spec, attribute.name) from None

    return validate


def _phases(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if value not in (1, 3):
        raise _Invalid("1 or 3", value, attribute.name)


@frozen
class ChargerTemplate:
    """What kind of charger a fleet member is."""

    vendor: str = "TrioSim"
    model: str = "AC-22"
    evses: int = attrs.field(default=2, validator=_positive)
    max_power_kw: float = attrs.field(default=22.0, validator=_positive)
    phases: int = attrs.field(default=3, validator=_phases)
    #: ChargingScheduleAllowedChargingRateUnit: the profile units it takes.
    rate_units: str = attrs.field(default="Current,Power", validator=_rate_units)
    #: ChargeProfileMaxStackLevel and ChargingScheduleMaxPeriods.
    max_stack_level: int = attrs.field(default=8, validator=_not_negative)
    max_periods: int = attrs.field(default=24, validator=_positive)
    #: False: it refuses every TxProfile (TxDefaultProfiles and ChargePointMaxProfiles only).
    tx_profiles: bool = True
    #: Seconds its clock is ahead of the true time (negative: behind).
    clock_skew_s: float = 0.0
    #: How it departs from the ideal (sim.behaviour.behaviour_from_spec), e.g.
    #: ``[{kind: obey-fraction, factor: 1.5}]``.
    behaviours: tuple[dict[str, Any], ...] = attrs.field(
        default=(), validator=_descriptions(behaviour_from_spec, "a behaviour"))

    #: What happens to it when (sim.incidents), e.g. ``[{kind: offline, at: 7200,
    #: for: 600}]``: seconds after it started.
    incidents: tuple[dict[str, Any], ...] = attrs.field(
        default=(), validator=_descriptions(incident_from_spec, "an incident"))

    def behaviour(self) -> Behaviour:
        """The behaviour of a charger made from this template."""
        return combined(behaviour_from_spec(spec) for spec in self.behaviours)

    def scheduled_incidents(self) -> tuple[Incident, ...]:
        """The incidents of a charger made from this template."""
        return tuple(incident_from_spec(spec) for spec in self.incidents)


@frozen
class EvSpec:
    """One kind of EV in the mix; ``weight`` is its relative frequency."""

    name: str
    capacity_kwh: float = attrs.field(validator=_positive)
    max_power_kw: float = attrs.field(validator=_positive)
    weight: float = attrs.field(default=1.0, validator=_positive)
    soc_min: float = attrs.field(default=10.0, validator=_percent)
    soc_max: float = attrs.field(default=60.0, validator=_percent)
    #: The SoC from which it takes less and less power, down to none when full.
    taper_from_soc: float = attrs.field(default=80.0, validator=_percent)
    #: The phases its on-board charger uses (1: current on L1 only, even on 3 phases).
    phases: int = attrs.field(default=3, validator=_phases)


def _default_mix() -> tuple[EvSpec, ...]:
    return (
        EvSpec("compact", 40.0, 7.4, 3.0, 15.0, 60.0),
        EvSpec("family", 60.0, 11.0, 4.0, 10.0, 50.0),
        EvSpec("premium", 90.0, 22.0, 2.0, 10.0, 40.0),
    )


@frozen
class SecuritySpec:
    """How the fleet's chargers authenticate to an external CSMS (security profiles 1-3).

    Attributes:
        password_env: the environment variable holding the AuthorizationKey every
            charger sends with HTTP Basic (profiles 1, 2; a test bench's shared key; the
            key itself never goes in a file). None: no Basic credentials.
        ca_file: the CA the chargers trust for ``wss://`` (None: the system's).
        client_cert_dir: a directory with ``{chargePointId}.pem`` (client certificate
            and key) for each charger (profile 3).
    """

    password_env: str | None = None
    ca_file: str | None = None
    client_cert_dir: str | None = None


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
    #: How the chargers authenticate to an external CSMS (profiles 1-3).
    security: SecuritySpec = attrs.field(factory=SecuritySpec)

    def template(self, name: str | None) -> ChargerTemplate:
        """Charger template ``name`` (``default`` when None).

        Raises:
            ConfigError: no such template.
        """
        key = name or "default"
        if key not in self.chargers:
            raise ConfigError(f"no charger template {key!r} (have: {', '.join(self.chargers)})")
        return self.chargers[key]

    def draw_ev(self, rng: random.Random) -> Ev:
        """An EV drawn from the mix by ``rng``: its kind by weight, then its SoC."""
        spec = rng.choices(self.ev_mix, weights=[e.weight for e in self.ev_mix])[0]
        soc = rng.uniform(spec.soc_min, spec.soc_max)
        return Ev(capacity_wh=spec.capacity_kwh * 1000, soc=round(soc, 1),
                  max_power_w=spec.max_power_kw * 1000, phases=spec.phases,
                  taper_from_soc=spec.taper_from_soc)


_converter = cattrs.Converter(forbid_extra_keys=True)


# YAML gives typed scalars: take them as they are instead of coercing (cattrs' default
# would make 1.5 an int 1, true a 1 and 5 a "5").
def _integer(value: Any, _: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid("an integer", value)
    return value


def _number(value: Any, _: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Invalid("a number", value)
    return float(value)


def _boolean(value: Any, _: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("true or false", value)
    return value


def _text(value: Any, _: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid("a string", value)
    return value


_converter.register_structure_hook(bool, _boolean)
_converter.register_structure_hook(int, _integer)
_converter.register_structure_hook(float, _number)
_converter.register_structure_hook(str, _text)


def _attrs_hook(cls: type) -> Callable[[Any, Any], Any]:
    """Structure an attrs class, attributing a validator's failure to its field."""
    structure: Callable[[Any, Any], Any] = make_dict_structure_fn(cls, _converter)

    def hook(data: Any, _: Any) -> Any:
        try:
            return structure(data, cls)
        except ClassValidationError as group:
            # cattrs reports an exception from __init__ (a validator's) at the class.
            for exc in group.exceptions:
                if isinstance(exc, _Invalid) and exc.field and not hasattr(exc, "__notes__"):
                    exc.__notes__ = [AttributeValidationNote(
                        f"Structuring class {cls.__qualname__} @ attribute {exc.field}",
                        exc.field, None,
                    )]
            raise

    return hook


_converter.register_structure_hook_factory(attrs.has, _attrs_hook)


def _describe(exc: BaseException, type_: type | None) -> str:
    if isinstance(exc, _Invalid):
        return str(exc)
    return cattrs.v.format_exception(exc, type_)


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
        problems = "; ".join(cattrs.transform_error(exc, "config", _describe))
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
