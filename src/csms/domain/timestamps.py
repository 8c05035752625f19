"""Lenient parsing of the timestamps chargers send (shared with the simulator: ocppj)."""

from __future__ import annotations

from ocppj.timestamps import parse_timestamp

__all__ = ["parse_timestamp"]
