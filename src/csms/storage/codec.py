"""Domain records ↔ JSON text, for the projection tables. One configured converter."""

from __future__ import annotations

import datetime
from typing import Any, TypeVar

import cattrs
import orjson

T = TypeVar("T")

converter = cattrs.Converter()
converter.register_unstructure_hook(datetime.datetime, lambda moment: moment.isoformat())
converter.register_structure_hook(
    datetime.datetime, lambda value, _: datetime.datetime.fromisoformat(value)
)


def dumps(record: Any) -> str:
    """A domain record as compact JSON text."""
    return orjson.dumps(converter.unstructure(record)).decode()


def loads(text: str | bytes, cls: type[T]) -> T:
    """A domain record of type ``cls`` from :func:`dumps` output."""
    return converter.structure(orjson.loads(text), cls)
