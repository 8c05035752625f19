"""The charger's durable, ordered queue of transaction messages.

StartTransaction, the MeterValues of a transaction and StopTransaction go out one at a
time, in the order they were produced, whatever the connection does: produced offline,
they wait for the next boot. A message the CSMS failed to process (a CALLERROR, or no
answer in time) is sent again with the same content, as OCPP 1.6 has it ("Error
responses to transaction-related messages"): after ``TransactionMessageRetryInterval``
times the number of transmissions so far, until it has gone out
``TransactionMessageAttempts`` times; then it is dropped (logged, counted), and the
queue goes on. Both keys are read at each failure, so the CSMS can change them.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Awaitable, Callable

import trio

from ocppj import CallError, CallTimeout, RpcSession
from sim.charger_state import TxMessage

log = logging.getLogger("sim.charge_point")


class TransactionQueue:
    """Transaction messages not yet answered by the CSMS, oldest first.

    Args:
        name: the charger's id, for the log.
        attempts: how many times a message goes out before it is given up.
        retry_interval: seconds, times the transmissions so far, to wait before a resend.
        sleep: how to wait (the charger's :class:`~sim.wheel.Wheel`).
    """

    def __init__(
        self,
        name: str,
        *,
        attempts: Callable[[], int],
        retry_interval: Callable[[], int],
        sleep: Callable[[float], Awaitable[None]] = trio.sleep,
    ) -> None:
        self._name = name
        self._attempts = attempts
        self._retry_interval = retry_interval
        self._sleep = sleep
        #: Messages given up after ``attempts`` failed transmissions.
        self.dropped = 0
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

    def clear(self) -> int:
        """Forget every queued message (a reboot that lost them); how many there were."""
        lost = len(self._messages)
        self._messages.clear()
        self._idle.set()
        return lost

    async def wait_empty(self) -> None:
        """Return once every queued message has been answered."""
        while self._messages:
            await self._idle.wait()

    async def deliver(
        self, session: RpcSession, ready: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Send the queue over ``session``, in order, until cancelled (the connection ends).
        Each transmission waits for ``ready()`` first (a stalled link writes nothing: what
        waits for it to flow again has not been sent, so it is no failed attempt).

        A message the CSMS failed to process (CALLERROR, or no answer in time) is sent
        again, unchanged, until it has gone out ``attempts`` times (see the module).
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
            if ready is not None:
                await ready()
            message.transmissions += 1
            try:
                result = await session.call_payload(message.action, message.payload)
            except (CallTimeout, CallError) as exc:
                if message.transmissions >= max(self._attempts(), 1):
                    log.warning("%s: %s failed %d times (last: %s); dropped", self._name,
                                message.action, message.transmissions, exc)
                    messages.popleft()
                    self.dropped += 1
                    continue
                await self._sleep(self._retry_interval() * message.transmissions)
                continue
            messages.popleft()
            if message.on_result is not None:
                message.on_result(result)
