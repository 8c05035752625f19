"""Which charge points may connect, how they must authenticate, and whether they are
accepted: the operator's charger registry and the policy for unknown ids.

Like idTag data, this is operator data kept in its own table, not derived from OCPP
messages: what the CSMS answered (a BootNotification ``Pending``, a refused idTag) is in
the message log, and the domain reads it from there.

A registration says:

* ``status``: ``accepted`` (the charger works), ``pending`` (it may connect; its
  BootNotification is answered Pending and its transactions refused until an operator
  accepts it) or ``disabled`` (refused at the handshake, 403);
* ``security_profile``: 0 (none), 1 (HTTP Basic), 2 (TLS + Basic) or 3 (TLS with a client
  certificate); None: the CSMS's default. A charger never connects with less than its
  profile;
* ``password_hash``: for profiles 1 and 2 (:mod:`csms.passwords`).

An id with no registration is handled by the policy for unknown charge points:
``accept`` (development: as if accepted), ``pending`` (a pending registration is created
at its first connection) or ``reject`` (404 at the handshake).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from attrs import frozen

#: Registration statuses.
STATUSES = ("accepted", "pending", "disabled")
#: Policies for charge points with no registration.
UNKNOWN_POLICIES = ("accept", "pending", "reject")
#: OCPP 1.6 security profiles.
PROFILES = (0, 1, 2, 3)


@frozen
class Registration:
    """One charge point the operator knows (or that registered itself as pending)."""

    charge_point_id: str
    status: str = "accepted"
    security_profile: int | None = None
    password_hash: str | None = None
    updated_at: datetime.datetime | None = None


@frozen
class Refusal:
    """A handshake refused: the HTTP status and the reason (safe to send and log)."""

    status: int
    reason: str


@frozen
class Requirement:
    """What a connecting charge point must show: its security profile and, for
    profiles 1 and 2, the stored password hash (None: no password is set)."""

    profile: int
    password_hash: str | None
    #: The id has no registration and the policy registers it as pending.
    register_pending: bool = False


class Registry:
    """The registrations (``records``, live and changed by the API) and the policies."""

    def __init__(
        self, unknown: str = "accept", default_profile: int = 0,
        records: Iterable[Registration] = (),
    ) -> None:
        if unknown not in UNKNOWN_POLICIES:
            raise ValueError(f"unknown-chargers policy must be one of {UNKNOWN_POLICIES}")
        if default_profile not in PROFILES:
            raise ValueError(f"security profile must be one of {PROFILES}")
        self.unknown = unknown
        self.default_profile = default_profile
        self.records: dict[str, Registration] = {r.charge_point_id: r for r in records}

    def load(self, rows: Iterable[Registration]) -> None:
        """Replace the registrations with ``rows`` (at start, from the store)."""
        self.records = {r.charge_point_id: r for r in rows}

    def profile_of(self, cp_id: str) -> int:
        """The security profile ``cp_id`` must connect with."""
        record = self.records.get(cp_id)
        if record is None or record.security_profile is None:
            return self.default_profile
        return record.security_profile

    def requirement(self, cp_id: str) -> Requirement | Refusal:
        """What the handshake of ``cp_id`` must show, or why it is refused outright."""
        record = self.records.get(cp_id)
        if record is None and self.unknown == "reject":
            return Refusal(404, f"unknown charge point {cp_id!r}")
        if record is not None and record.status == "disabled":
            return Refusal(403, f"charge point {cp_id!r} is disabled")
        return Requirement(
            self.profile_of(cp_id),
            record.password_hash if record is not None else None,
            register_pending=record is None and self.unknown == "pending",
        )

    def accepted(self, cp_id: str) -> bool:
        """Whether ``cp_id`` may charge: accepted, or unknown under the ``accept`` policy."""
        record = self.records.get(cp_id)
        if record is None:
            return self.unknown == "accept"
        return record.status == "accepted"

    def boot_status(self, cp_id: str) -> str:
        """The BootNotification status for ``cp_id``: Accepted, Pending or Rejected."""
        if self.accepted(cp_id):
            return "Accepted"
        record = self.records.get(cp_id)
        return "Pending" if record is not None and record.status == "pending" else "Rejected"
