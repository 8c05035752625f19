"""Shared test configuration: hypothesis profiles, and the virtual clock fixture.

``ci`` (the default) is bounded and deterministic; ``fuzz`` runs long:
``pytest --hypothesis-profile=fuzz``.
"""

from __future__ import annotations

import os

import pytest
import trio.testing
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=100,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz",
    max_examples=100_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def virtual_clock() -> trio.testing.MockClock:
    """pytest-trio runs the test on this clock: no autojump, drive_virtual_clock drives it
    (see ``fleet_helpers``)."""
    return trio.testing.MockClock()
