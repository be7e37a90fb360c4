"""The wait queue for a service whose machines are all at their hard limit.

The platform queues requests when every machine is at ``hard_limit`` and answers 503
after a while. Here a relay that gets ``NoUpstream`` with a ``queue`` hands the queue a
callback; each released slot wakes the oldest waiter, which chooses again. The relay
owns the deadline (``queue_timeout``) and cancels its wait when it gives up or its
client goes away. Nothing here runs unless a service is saturated.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable


class Waiter:
    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False


class WaitQueue:
    """FIFO of connections or requests waiting for a slot on one service."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._waiters: deque[Waiter] = deque()
        self._live = 0

    def __len__(self) -> int:
        return self._live

    def wait(self, callback: Callable[[], None]) -> object:
        """Queue ``callback`` (called once, when a slot may be free); returns a token."""
        waiter = Waiter(callback)
        self._waiters.append(waiter)
        self._live += 1
        return waiter

    def cancel(self, token: object) -> None:
        if isinstance(token, Waiter) and not token.cancelled:
            token.cancelled = True
            self._live -= 1

    def wake_one(self) -> None:
        """A slot was released: let the oldest live waiter choose again."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.cancelled:
                waiter.cancelled = True
                self._live -= 1
                waiter.callback()
                return

    def wake_all(self) -> None:
        """Everyone may choose again (a machine they waited for started, or failed to)."""
        waiters, self._waiters = self._waiters, deque()
        self._live = 0
        for waiter in waiters:
            if not waiter.cancelled:
                waiter.cancelled = True
                waiter.callback()
