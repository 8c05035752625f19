"""Which idTags are accepted: the operator's authorization data over a configurable policy.

Order of precedence for an idTag:

1. the operator's record (``PUT /api/id-tags/{idTag}``, kept in the store's ``id_tags``
   table): its status, its expiryDate and parentIdTag; an Accepted tag whose expiryDate
   has passed is answered ``Expired``;
2. the ``--id-tag TAG=STATUS`` list of the configuration;
3. ``default``: the answer to an unknown tag (``--unknown-id-tags``): Accepted for the
   library and the simulator's embedded CSMS, Invalid for ``python -m csms``.

This is operator data, not derived from OCPP messages: it is not part of the replayed
domain. What the CSMS answered is in the message log, and the domain reads it from there.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping

from attrs import field, frozen

from csms.storage.base import IdTagRow

#: idTagInfo statuses of OCPP 1.6.
STATUSES = frozenset({"Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"})


@frozen
class IdTagAnswer:
    """The idTagInfo to send: status, expiryDate and parentIdTag (None: left out)."""

    status: str
    expiry_date: datetime.datetime | None = None
    parent_id_tag: str | None = None


@frozen
class AuthorizationPolicy:
    """Tags the operator set (``records``) first, then ``id_tags``, then ``default``.

    ``records`` is the live, mutable table the API changes; ``id_tags`` come from the
    configuration.
    """

    id_tags: Mapping[str, str] = field(factory=dict)
    default: str = "Accepted"
    records: dict[str, IdTagRow] = field(factory=dict)

    def status(self, id_tag: str, now: datetime.datetime | None = None) -> str:
        """The idTagInfo status for ``id_tag`` (expiry checked against ``now`` if given)."""
        return self.answer(id_tag, now).status

    def answer(self, id_tag: str, now: datetime.datetime | None = None) -> IdTagAnswer:
        """The idTagInfo for ``id_tag`` as of ``now``."""
        record = self.records.get(id_tag)
        if record is None:
            return IdTagAnswer(self.id_tags.get(id_tag, self.default))
        status = record.status
        if (
            status == "Accepted"
            and record.expiry_date is not None
            and now is not None
            and now >= record.expiry_date
        ):
            status = "Expired"
        return IdTagAnswer(status, record.expiry_date, record.parent_id_tag)

    def load(self, rows: Iterable[IdTagRow]) -> None:
        """Replace the operator's records with ``rows`` (at start, from the store)."""
        self.records.clear()
        self.records.update((row.id_tag, row) for row in rows)
