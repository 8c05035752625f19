"""What a handler knows: the charge point it serves, the configuration, the domain."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from attrs import field, frozen
from ocpp.v16.datatypes import IdTagInfo
from ocpp.v16.enums import AuthorizationStatus

from csms.authorization import AuthorizationPolicy
from csms.config import CsmsConfig
from csms.domain.state import DomainState
from csms.recorder import Recorder
from csms.registry import Registry
from csms.smart.service import SmartCharging
from ocppj import current_call
from ocppj.session import utc_now
from ocppj.timestamps import format_timestamp

#: A vendor's DataTransfer handler: (messageId, data) → (status, data). It runs in the
#: connection's reader (the CSMS answers CALLs there): it must not wait on that charger
#: (a CALL of ours to it would never have its answer read); start such work elsewhere.
VendorHandler = Callable[[str | None, str | None], Awaitable[tuple[str, str | None]]]


@frozen
class HandlerContext:
    """Per-connection context given to every handler.

    Attributes:
        charge_point_id: the id from the WebSocket path.
        config: the CSMS configuration.
        recorder: applies answered exchanges to the domain and the store.
        policy: which idTags are accepted.
        vendors: DataTransfer handlers by vendorId.
        now: the wall clock.
        smart: smart charging, when on.
        registry: the charger registry (BootNotification's status, pending chargers'
            idTags refused).
    """

    charge_point_id: str
    config: CsmsConfig
    recorder: Recorder
    policy: AuthorizationPolicy = field(factory=AuthorizationPolicy)
    vendors: Mapping[str, VendorHandler] = field(factory=dict)
    now: Callable[[], datetime.datetime] = utc_now
    smart: SmartCharging | None = None
    registry: Registry = field(factory=Registry)

    def id_tag_info(self, id_tag: str) -> IdTagInfo:
        """The idTagInfo for ``id_tag`` now: status, expiryDate and parentIdTag.

        A charge point not accepted (pending registration) may not charge: Invalid.
        """
        if not self.registry.accepted(self.charge_point_id):
            return IdTagInfo(status=AuthorizationStatus.invalid)
        answer = self.policy.answer(id_tag, self.now())
        return IdTagInfo(
            status=AuthorizationStatus(answer.status),
            expiry_date=(
                format_timestamp(answer.expiry_date) if answer.expiry_date is not None else None
            ),
            parent_id_tag=answer.parent_id_tag,
        )

    def start_tag_info(self, id_tag: str, connector_id: int) -> IdTagInfo:
        """The idTagInfo answering a StartTransaction on ``connector_id``: as
        :meth:`id_tag_info`, but ConcurrentTx for an accepted idTag that has an open session
        on another connector, when ``concurrent_tx`` is ``refuse``. (idTags compare
        case-insensitively, as OCPP's IdToken does.)"""
        info = self.id_tag_info(id_tag)
        if self.config.concurrent_tx != "refuse" or info.status != AuthorizationStatus.accepted:
            return info
        here = (self.charge_point_id, connector_id)
        for where in self.state.open_by_tag.get(id_tag.casefold(), ()):
            if where != here:
                return IdTagInfo(status=AuthorizationStatus.concurrent_tx,
                                 expiry_date=info.expiry_date,
                                 parent_id_tag=info.parent_id_tag)
        return info

    @property
    def state(self) -> DomainState:
        """The live domain state (read it; change it only through :meth:`record`)."""
        return self.recorder.state

    def record(self, request: Any, response: Any) -> None:
        """Record the CALL being answered with ``response``.

        Call it last, with no ``await`` between reading the state and recording: the
        decision and its effect are then atomic with respect to other connections.
        """
        info = current_call.get()
        events = self.recorder.exchange(
            self.charge_point_id, info.action, request, response, info.received_at,
            info.tolerated,
        )
        smart = self.smart
        if smart is None:
            return
        if smart.wants_rebalance(events):
            # After the answer: a new session's TxProfile needs the transactionId it carries.
            info.after_answer.append(smart.request_rebalance)
        if smart.wants_setup(self.charge_point_id, events):
            # After the answer: a charger may not take CALLs before its boot is answered.
            info.after_answer.append(functools.partial(smart.request_setup, self.charge_point_id))
