"""Charger passwords (OCPP security profiles 1 and 2): stored salted and hashed, never kept
or logged in clear.

The hash is scrypt (the standard library's, memory-hard), in a self-describing text form
``scrypt$<n>$<r>$<p>$<salt>$<hash>`` (base64), so a later change of cost keeps old hashes
readable. Verifying costs ~50 ms of CPU: callers run it on a worker thread.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

#: scrypt cost: 2**14 iterations of 8 blocks of 128 bytes (16 MiB), the usual interactive setting.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
#: AuthorizationKey length in OCPP 1.6's security whitepaper: 16 to 40 bytes.
MIN_PASSWORD, MAX_PASSWORD = 16, 40
_SALT_BYTES, _HASH_BYTES = 16, 32


class BadPassword(ValueError):
    """A password that may not be set (the message says why; it never quotes it)."""


def check_password(password: str) -> str:
    """``password`` when it may be a charger's AuthorizationKey.

    Raises:
        BadPassword: not 16 to 40 printable ASCII characters (what a 1.6 charger takes).
    """
    if not MIN_PASSWORD <= len(password.encode()) <= MAX_PASSWORD:
        raise BadPassword(f"a charger password has {MIN_PASSWORD} to {MAX_PASSWORD} bytes")
    if not (password.isascii() and password.isprintable()):
        raise BadPassword("a charger password is printable ASCII")
    return password


def new_password() -> str:
    """A random password of 40 hex characters (160 bits), for an AuthorizationKey."""
    return secrets.token_hex(MAX_PASSWORD // 2)


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=2 * 128 * n * r * p + 2**20,
                          dklen=_HASH_BYTES)


def hash_password(password: str) -> str:
    """The stored form of ``password`` (a new random salt each time)."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password.encode(), salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str | bytes, stored: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from (constant-time compare)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        raw = password.encode() if isinstance(password, str) else password
        given = _scrypt(raw, base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(given, expected)
