"""The charge point identity in the WebSocket URL: its check, its decoding, its encoding.

OCPP-J puts the identity in the last path segment, percent-encoded. The CSMS's OCPP
server, its operator API and the simulator all go through this module, so an id is
decoded exactly once and the same way everywhere.

Two character sets:

* strict (the default): RFC 3986's unreserved characters (letters, digits, ``-._~``)
  plus ``*=:+|@``, the set OCPP 2.0.1 states and 1.6 chargers keep to;
* relaxed, for legacy ids: any printable character but ``/``, not starting or ending with
  white space.

Both allow at most 48 characters (1.6's chargeBoxIdentity is a CiString48).
"""

from __future__ import annotations

import base64
import string
import urllib.parse

#: Longest charge point identity.
MAX_ID_LENGTH = 48
#: The strict set: RFC 3986 unreserved plus the few others chargers use.
STRICT_ID_CHARS = frozenset(string.ascii_letters + string.digits + "-._~" + "*=:+|@")


class BadChargePointId(ValueError):
    """An identity that is not valid; the message says why (safe to show and log)."""


def check_charge_point_id(cp_id: str, *, relaxed: bool = False) -> str:
    """``cp_id`` when it is a valid identity (already decoded).

    Raises:
        BadChargePointId: saying what is wrong with it.
    """
    if not cp_id:
        raise BadChargePointId("the charge point id is empty")
    if len(cp_id) > MAX_ID_LENGTH:
        raise BadChargePointId(
            f"the charge point id {cp_id[:MAX_ID_LENGTH]!r}… has {len(cp_id)} characters, "
            f"at most {MAX_ID_LENGTH} allowed"
        )
    if relaxed:
        if "/" in cp_id or not cp_id.isprintable() or cp_id != cp_id.strip():
            raise BadChargePointId(
                f"the charge point id {cp_id!r} has a '/', a control character or "
                "surrounding white space"
            )
        return cp_id
    bad = sorted(set(cp_id) - STRICT_ID_CHARS)
    if bad:
        raise BadChargePointId(
            f"the charge point id {cp_id!r} has characters outside letters, digits and "
            f"-._~*=:+|@: {''.join(bad)!r}"
        )
    return cp_id


def decode_charge_point_id(segment: str, *, relaxed: bool = False) -> str:
    """The identity in a raw (still percent-encoded) path segment, decoded once and checked.

    Raises:
        BadChargePointId: the segment is not valid percent-encoded UTF-8, or the identity
            it decodes to is not valid.
    """
    try:
        cp_id = urllib.parse.unquote(segment, errors="strict")
    except UnicodeDecodeError:
        raise BadChargePointId(
            f"the charge point id {segment!r} is not percent-encoded UTF-8"
        ) from None
    return check_charge_point_id(cp_id, relaxed=relaxed)


def encode_charge_point_id(cp_id: str) -> str:
    """``cp_id`` as a path segment (every character outside the unreserved set encoded)."""
    return urllib.parse.quote(cp_id, safe="")


def charge_point_url(base: str, cp_id: str) -> str:
    """The URL a charge point connects to: ``base`` (``ws://host:port/ocpp``) and its id."""
    return f"{base.rstrip('/')}/{encode_charge_point_id(cp_id)}"


def basic_authorization(cp_id: str, password: str) -> tuple[bytes, bytes]:
    """The HTTP Basic ``Authorization`` header of security profiles 1 and 2: user = the
    charge point id, password = its AuthorizationKey."""
    token = base64.b64encode(f"{cp_id}:{password}".encode())
    return b"Authorization", b"Basic " + token
