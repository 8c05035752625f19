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
import types
import typing
from collections.abc import Callable
from typing import Any

import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from ocpp.charge_point import snake_to_camel_case
from ocpp.v16 import call, call_result
from ocpp.v16 import enums as ocpp_enums

from ocppj.schemas import schema


def _wire_name(field_name: str) -> str:
    return str(snake_to_camel_case({field_name: None}).popitem()[0])


def _overrides(cls: type) -> dict[str, Any]:
    return {f.name: override(rename=_wire_name(f.name)) for f in dataclasses.fields(cls)}


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter()

    def structure_factory(cls: type) -> Callable[[Any, type], Any]:
        # A key missing from a validated payload is optional on the wire, even where the
        # ocpp package gave its field no default (SecurityEventNotification.tech_info,
        # LogStatusNotification.request_id): such a field is structured as None.
        hints = typing.get_type_hints(cls)
        overrides = _overrides(cls)
        undefaulted: list[str] = []
        for f in dataclasses.fields(cls):
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                undefaulted.append(_wire_name(f.name))
                overrides[f.name] = override(
                    rename=_wire_name(f.name), struct_hook=none_or(hints[f.name])
                )
        base: Callable[[Any, type], Any] = make_dict_structure_fn(cls, converter, **overrides)

        def structure(obj: Any, cl: type) -> Any:
            missing = [name for name in undefaulted if name not in obj]
            return base({**obj, **dict.fromkeys(missing)} if missing else obj, cl)

        return structure

    def none_or(hint: Any) -> Callable[[Any, Any], Any]:
        def structure(value: Any, _: Any) -> Any:
            return None if value is None else converter.structure(value, hint)

        return structure

    def unstructure_factory(cls: type) -> Callable[[Any], dict[str, Any]]:
        base: Callable[[Any], dict[str, Any]] = make_dict_unstructure_fn(
            cls, converter, **_overrides(cls)
        )

        def unstructure(obj: Any) -> dict[str, Any]:
            return {k: v for k, v in base(obj).items() if v is not None}

        return unstructure

    def is_enum(cls: Any) -> bool:
        return isinstance(cls, type) and issubclass(cls, enum.Enum)

    def typed_union(cls: Any) -> bool:
        return _union_dataclass(cls) is not None

    def structure_union(cls: Any) -> Callable[[Any, Any], Any]:
        target: Any = _union_dataclass(cls)

        def structure(obj: Any, _: Any) -> Any:
            return None if obj is None else converter.structure(obj, target)

        return structure

    # The ocpp package types some fields `Union[SomeDataclass, Dict]`: the wire always
    # carries the object, so it becomes the dataclass.
    converter.register_structure_hook_factory(typed_union, structure_union)
    # The ocpp enums subclass str, and cattrs's class dispatch would pick str's
    # pass-through (an enum member in the payload) over a predicate hook: register the
    # value hook on every enum class itself.
    for module in (ocpp_enums,):
        for member in vars(module).values():
            if is_enum(member):
                converter.register_unstructure_hook(member, _enum_value)
    converter.register_structure_hook_factory(dataclasses.is_dataclass, structure_factory)
    converter.register_unstructure_hook_factory(dataclasses.is_dataclass, unstructure_factory)
    return converter


def _enum_value(member: enum.Enum | str) -> Any:
    # A field typed with an enum may hold the plain OCPP string (``type="Soft"``).
    return member.value if isinstance(member, enum.Enum) else member


def _union_dataclass(cls: Any) -> type | None:
    """The dataclass member of a Union annotation, if it has one."""
    if typing.get_origin(cls) not in (typing.Union, types.UnionType):
        return None
    members = [arg for arg in typing.get_args(cls) if dataclasses.is_dataclass(arg)]
    return members[0] if len(members) == 1 and isinstance(members[0], type) else None


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


def _ordered(name: str, payload: dict[str, Any]) -> dict[str, Any]:
    ordered: dict[str, Any] = _orderer(name)(payload)
    return ordered


#: Puts one JSON value in a schema node's order (see :func:`_plan`).
_Orderer = Callable[[Any], Any]


def _keep(value: Any) -> Any:
    return value


def _plan(node: dict[str, Any]) -> _Orderer | None:
    """How to order a value ``node`` describes, worked out once per schema node; None
    when nothing below the node has properties to order."""
    properties: dict[str, Any] = node.get("properties") or {}
    if properties:
        keys = tuple((key, _plan(child)) for key, child in properties.items())

        def order_object(value: Any) -> Any:
            if type(value) is not dict:
                return value
            ordered = {}
            for key, child in keys:
                if key in value:
                    item = value[key]
                    ordered[key] = item if child is None else child(item)
            if len(ordered) != len(value):
                # Keys the schema does not list keep their relative order, after the
                # listed ones (a payload that breaks the schema is reordered, not fixed).
                for key, item in value.items():
                    if key not in ordered:
                        ordered[key] = item
            return ordered

        return order_object
    items = node.get("items")
    if isinstance(items, dict):
        each = _plan(items)
        if each is not None:

            def order_array(value: Any) -> Any:
                if type(value) is not list:
                    return value
                return [each(item) for item in value]

            return order_array
    return None


@functools.cache
def _orderer(name: str) -> _Orderer:
    return _plan(schema(name)) or _keep


def in_schema_order(
    action: str, payload: dict[str, Any], *, response: bool = False
) -> dict[str, Any]:
    """A wire payload with its keys in the order the OCPP 1.6 schema lists them.

    Top level and nested, wherever the schema gives ``properties`` (an object) or
    ``items`` (an array of objects). The values are unchanged; the dict is a new one.

    Args:
        action: the OCPP action.
        payload: the CALL payload (or, with ``response``, the CALLRESULT payload).
        response: order by ``{action}Response`` instead.
    """
    return _ordered(f"{action}Response" if response else action, payload)


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
