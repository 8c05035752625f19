"""Secrets that pass through OCPP frames and must not be stored or shown: today the
``AuthorizationKey`` configuration key (security profiles 1 and 2).

A ChangeConfiguration of ours that sets it, or a GetConfiguration answer of a charger
that (against the whitepaper) reports it, is written to the message log with the value
replaced by :data:`REDACTED`. The domain never reads the value (its projection skips
secret keys), so replay is unaffected.
"""

from __future__ import annotations

from typing import Any

import orjson

#: Configuration keys whose values are secret (compared case-insensitively, as 1.6 does).
SECRET_KEYS = frozenset({"authorizationkey"})
#: What a secret value is replaced with in the log.
REDACTED = "<redacted>"


def redact_frame(frame: str) -> str:
    """``frame`` with every secret configuration value replaced (unchanged, and not even
    parsed, when it names no secret key)."""
    # str.lower() and a substring search: ten times faster than a case-blind regex on a
    # MeterValues frame, and every frame in and out passes here.
    lowered = frame.lower()
    if not any(key in lowered for key in SECRET_KEYS):
        return frame
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return frame
    if not _redact(message):
        return frame
    return orjson.dumps(message).decode()


def _redact(node: Any) -> bool:
    changed = False
    if isinstance(node, dict):
        key = node.get("key")
        if isinstance(key, str) and key.lower() in SECRET_KEYS and "value" in node:
            node["value"] = REDACTED
            changed = True
        for child in node.values():
            changed = _redact(child) or changed
    elif isinstance(node, list):
        for child in node:
            changed = _redact(child) or changed
    return changed
