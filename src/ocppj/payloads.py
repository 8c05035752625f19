"""Typed payloads: the ``ocpp`` package's v16 dataclasses, converted at the edge by cattrs.

A request is an instance of a class in :mod:`ocpp.v16.call` named after its action
(``call.MeterValues``); a response is the class of the same name in
:mod:`ocpp.v16.call_result`. Field names are snake_case; the wire is camelCase.

Conversion rules, applied by one configured converter:

* dataclass fields are renamed snake_case ↔ camelCase, at every level where the
  ``ocpp`` package types the field (``IdTagInfo``, ``ChargingProfile`` …);
* fields the ``ocpp`` package leaves untyped (``List``/``Dict``, such as
  ``MeterValues.meter_value``) carry the wire form unchanged: camelCase dicts in, and out
  either such dicts or ``ocpp.v16.datatypes`` instances;
* ``None`` fields are left out of the wire payload;
* enums travel as their OCPP values.

Payloads are schema-validated before they are structured, so structuring never meets
malformed data.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Callable
from typing import Any

import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from ocpp.charge_point import snake_to_camel_case
from ocpp.v16 import call, call_result

from ocppj.schemas import schema


def _wire_name(field_name: str) -> str:
    return str(snake_to_camel_case({field_name: None}).popitem()[0])


def _overrides(cls: type) -> dict[str, Any]:
    return {f.name: override(rename=_wire_name(f.name)) for f in dataclasses.fields(cls)}


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter()

    def structure_factory(cls: type) -> Callable[[Any, type], Any]:
        return make_dict_structure_fn(cls, converter, **_overrides(cls))

    def unstructure_factory(cls: type) -> Callable[[Any], dict[str, Any]]:
        base: Callable[[Any], dict[str, Any]] = make_dict_unstructure_fn(
            cls, converter, **_overrides(cls)
        )

        def unstructure(obj: Any) -> dict[str, Any]:
            return {k: v for k, v in base(obj).items() if v is not None}

        return unstructure

    def is_enum(cls: Any) -> bool:
        return isinstance(cls, type) and issubclass(cls, enum.Enum)

    # The ocpp enums subclass str, which cattrs would pass through as enum members.
    converter.register_unstructure_hook_func(is_enum, lambda member: member.value)
    converter.register_structure_hook_factory(dataclasses.is_dataclass, structure_factory)
    converter.register_unstructure_hook_factory(dataclasses.is_dataclass, unstructure_factory)
    return converter


converter = _make_converter()


def action_of(request: Any) -> str:
    """The OCPP action a request dataclass stands for (its class name)."""
    return type(request).__name__


@functools.cache
def request_class(action: str) -> type:
    """The ``ocpp.v16.call`` class for ``action``."""
    cls: type = getattr(call, action)
    return cls


@functools.cache
def response_class(action: str) -> type:
    """The ``ocpp.v16.call_result`` class for ``action``."""
    cls: type = getattr(call_result, action)
    return cls


@functools.cache
def _key_order(name: str) -> dict[str, int]:
    return {key: i for i, key in enumerate(schema(name).get("properties", {}))}


def _ordered(name: str, payload: dict[str, Any]) -> dict[str, Any]:
    order = _key_order(name)
    return dict(sorted(payload.items(), key=lambda item: order.get(item[0], len(order))))


def to_payload(message: Any, *, response_to: str | None = None) -> dict[str, Any]:
    """The wire payload of a request or response dataclass, keys in the schema's order.

    Args:
        message: an ``ocpp.v16.call`` or ``ocpp.v16.call_result`` instance.
        response_to: for a response, the action it answers (selects the key order).
    """
    payload: dict[str, Any] = converter.unstructure(message)
    name = f"{response_to}Response" if response_to else action_of(message)
    return _ordered(name, payload)


def request_from_payload(action: str, payload: dict[str, Any]) -> Any:
    """The ``ocpp.v16.call`` instance for a validated CALL payload."""
    return converter.structure(payload, request_class(action))


def response_from_payload(action: str, payload: dict[str, Any]) -> Any:
    """The ``ocpp.v16.call_result`` instance for a validated CALLRESULT payload."""
    return converter.structure(payload, response_class(action))
