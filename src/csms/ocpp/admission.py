"""Who may open a charge point connection: the handshake's checks after the id's.

For each handshake, :class:`Gate` asks the :class:`~csms.registry.Registry` what the id
needs (refused outright when unknown under ``reject`` or disabled), then checks the
credentials its security profile demands:

* profile 0: nothing;
* profile 1: HTTP Basic, user = the charge point id, password = its AuthorizationKey,
  checked against the stored hash; 401 with ``WWW-Authenticate: Basic`` otherwise;
* profile 2: the same, over TLS; 403 on a plain connection;
* profile 3: TLS with a client certificate that chains to the client CA (checked in the
  TLS handshake) and whose subject commonName is the charge point id; 403 otherwise.

A wrong password is logged (the id and the address, never the password). Only after
every check passes is the connection handed over, so a second connection under a live
id replaces the first only when it authenticates. Under the ``pending`` policy, an
unknown id's first admitted connection registers it as pending.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable, Sequence

import trio

from csms.passwords import verify_password
from csms.registry import Refusal, Registration, Registry
from csms.storage.base import Store

log = logging.getLogger("csms.server")

#: Passwords verified at once on worker threads (scrypt takes ~50 ms and 16 MiB each).
VERIFY_THREADS = 2
BASIC_CHALLENGE = (b"WWW-Authenticate", b'Basic realm="OCPP", charset="UTF-8"')


def basic_password(headers: Sequence[tuple[bytes, bytes]], cp_id: str) -> bytes | None:
    """The password of an ``Authorization: Basic`` header whose user is ``cp_id``.

    The id may itself contain ``:`` (the strict id set allows it), so the user is matched
    as a prefix rather than split at the first colon.
    """
    for name, value in headers:
        if name.lower() != b"authorization":
            continue
        scheme, _, encoded = value.strip().partition(b" ")
        if scheme.lower() != b"basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except ValueError:
            return None
        user = cp_id.encode() + b":"
        return decoded[len(user):] if decoded.startswith(user) else None
    return None


class Gate:
    """The handshake's authentication and registration checks for one CSMS.

    Args:
        registry: the registrations and policies.
        store: where a new pending registration is stored (and flushed) before admission.
        clock: the wall clock (registration times).
    """

    def __init__(
        self, registry: Registry, store: Store, clock: Callable[[], datetime.datetime],
    ) -> None:
        self.registry, self.store, self.clock = registry, store, clock
        self._limiter = trio.CapacityLimiter(VERIFY_THREADS)
        # A password verified once is recognised again without scrypt (a fleet
        # reconnecting after a restart must not cost a minute of CPU): per id, the
        # stored hash it matched and a keyed digest of it, valid only in this process.
        self._key = secrets.token_bytes(32)
        self._verified: dict[str, tuple[str, bytes]] = {}

    async def admit(
        self, cp_id: str, headers: Sequence[tuple[bytes, bytes]], remote: str, *,
        tls: bool = False, certificate_name: str | None = None,
    ) -> Refusal | None:
        """None when the connection may proceed; else why it is refused.

        ``tls``: the connection is TLS; ``certificate_name``: the subject commonName of
        the client certificate it presented (already verified against the client CA).
        """
        need = self.registry.requirement(cp_id)
        if isinstance(need, Refusal):
            return need
        if need.profile >= 2 and not tls:
            return Refusal(403, f"charge point {cp_id!r} must connect over TLS "
                                f"(security profile {need.profile})")
        if need.profile == 3 and certificate_name != cp_id:
            shown = "no client certificate" if certificate_name is None else (
                f"a client certificate for {certificate_name!r}")
            return Refusal(403, f"charge point {cp_id!r} presented {shown} "
                                "(security profile 3)")
        if need.profile in (1, 2):
            password = basic_password(headers, cp_id)
            if password is None:
                return Refusal(401, f"charge point {cp_id!r} sent no Basic credentials "
                                    "for itself")
            if need.password_hash is None or not await self._verify(
                cp_id, password, need.password_hash
            ):
                return Refusal(401, f"wrong password for charge point {cp_id!r}")
        if need.register_pending:
            registration = Registration(cp_id, "pending", updated_at=self.clock())
            self.registry.records[cp_id] = registration
            self.store.put_registration(registration)
            await self.store.flush()
            log.info("%s (%s): unknown charge point registered as pending", cp_id, remote)
        return None

    async def _verify(self, cp_id: str, password: bytes, stored: str) -> bool:
        digest = hmac.new(self._key, password, hashlib.sha256).digest()
        known = self._verified.get(cp_id)
        if known is not None and known[0] == stored and hmac.compare_digest(known[1], digest):
            return True
        ok = await trio.to_thread.run_sync(
            verify_password, password, stored, limiter=self._limiter
        )
        if ok:
            self._verified[cp_id] = (stored, digest)
        return ok
