"""Splitting one fleet over several simulator processes (``start-sim --shard K/N``). Pure.

Shard ``K`` of ``N`` runs a contiguous run of the fleet's charger numbers, the shards of
near-equal size (the first ``total % N`` one larger), so that N processes started with the
same ``--chargers`` run every charger exactly once and no id twice.
"""

from __future__ import annotations

import re


class ShardError(ValueError):
    """A ``K/N`` that names no shard of the fleet."""


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` → ``(2, 4)``.

    Raises:
        ShardError: not ``K/N`` with 1 ≤ K ≤ N.
    """
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None:
        raise ShardError(f"--shard: expected K/N such as 2/4, got {text!r}")
    k, n = int(match[1]), int(match[2])
    if not 1 <= k <= n:
        raise ShardError(f"--shard: K must be between 1 and N, got {k}/{n}")
    return k, n


def shard_numbers(total: int, k: int, n: int) -> range:
    """The charger numbers (1-based) of shard ``k`` of ``n`` in a fleet of ``total``.

    Raises:
        ShardError: more shards than chargers (a shard would be empty).
    """
    if n > total:
        raise ShardError(f"--shard: {n} shards for {total} chargers leaves some empty")
    size, extra = divmod(total, n)
    first = (k - 1) * size + min(k - 1, extra)
    return range(first + 1, first + size + (1 if k <= extra else 0) + 1)
