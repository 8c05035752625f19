"""The garbage-collector tuning of ``python -m csms`` (csms.gc_policy)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from csms import gc_policy


class Node:
    pass


@pytest.fixture(autouse=True)
def _restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_start_up_objects_are_frozen_and_young_collections_are_rarer() -> None:
    _, middle, old = gc.get_threshold()
    gc_policy.tune_after_startup()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (gc_policy.YOUNG_THRESHOLD, middle, old)


def test_a_frozen_object_is_still_freed_by_reference_counting() -> None:
    node = Node()
    alive = weakref.ref(node)
    gc_policy.tune_after_startup()
    del node
    assert alive() is None
