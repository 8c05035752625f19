"""The charger's durable, ordered queue of transaction messages.

StartTransaction, the MeterValues of a transaction and StopTransaction go out one at a
time, in the order they were produced, whatever the connection does: produced offline,
they wait for the next boot; one whose answer never came is sent again with the same
content (OCPP 1.6, 4.7 "Transaction-related messages").
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable

import trio

from ocppj import CallError, CallTimeout, RpcSession
from sim.charger_state import TxMessage

log = logging.getLogger("sim.charge_point")


class TransactionQueue:
    """Transaction messages not yet answered by the CSMS, oldest first.

    Args:
        name: the charger's id, for the log.
        retry_interval: seconds to wait after an unanswered message before sending it
            again (read at each failure: the CSMS can change it).
    """

    def __init__(self, name: str, *, retry_interval: Callable[[], int]) -> None:
        self._name = name
        self._retry_interval = retry_interval
        self._messages: collections.deque[TxMessage] = collections.deque()
        self._changed = trio.Event()
        self._idle = trio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._messages)

    def put(self, message: TxMessage) -> None:
        """Queue ``message`` behind the others."""
        self._messages.append(message)
        self._idle = trio.Event()
        self._changed.set()

    async def wait_empty(self) -> None:
        """Return once every queued message has been answered."""
        while self._messages:
            await self._idle.wait()

    async def deliver(self, session: RpcSession) -> None:
        """Send the queue over ``session``, in order, until cancelled (the connection ends).

        A message the CSMS did not answer in time is sent again, unchanged, after the retry
        interval; one it refused with a CALLERROR is dropped (logged).
        """
        messages = self._messages
        while True:
            while not messages:
                self._idle.set()
                await self._changed.wait()
                self._changed = trio.Event()
            message = messages[0]
            if message.payload is None:
                # Built once: a message whose answer never came is sent again unchanged.
                message.payload = message.build()
            try:
                result = await session.call_payload(message.action, message.payload)
            except CallTimeout:
                await trio.sleep(self._retry_interval())
                continue
            except CallError as exc:
                log.warning("%s: %s refused (%s); dropped", self._name, message.action, exc)
                messages.popleft()
                continue
            messages.popleft()
            if message.on_result is not None:
                message.on_result(result)
