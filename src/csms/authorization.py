"""Which idTags are accepted: a configurable policy (default: every tag is accepted)."""

from __future__ import annotations

from collections.abc import Mapping

from attrs import field, frozen

#: idTagInfo statuses of OCPP 1.6.
STATUSES = frozenset({"Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"})


@frozen
class AuthorizationPolicy:
    """Tags listed in ``id_tags`` get their status; others get ``default``."""

    id_tags: Mapping[str, str] = field(factory=dict)
    default: str = "Accepted"

    def status(self, id_tag: str) -> str:
        """The idTagInfo status for ``id_tag``."""
        return self.id_tags.get(id_tag, self.default)
