"""The wait queue for a service whose machines are all at their hard limit.

The platform queues requests when every machine is at ``hard_limit`` and answers 503
after a while. Here a relay that gets ``NoUpstream`` with a ``queue`` hands the queue a
callback; each released slot wakes the oldest waiter, which chooses again. The relay
owns the timer and cancels its wait when it gives up or its client goes away; the queue
says when each wait runs out (``deadline``, ``remaining``, by its injected clock: the
routing clock, monotonic seconds). Nothing here runs unless a service is saturated.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from edge.core.clock import Clock


class Waiter:
    __slots__ = ("callback", "cancelled", "deadline")

    def __init__(self, callback: Callable[[], None], deadline: float) -> None:
        self.callback = callback
        self.cancelled = False
        self.deadline = deadline  # by the queue's clock: when this wait runs out


class WaitQueue:
    """FIFO of connections or requests waiting for a slot on one service."""

    def __init__(self, timeout: float, clock: Clock = time.monotonic) -> None:
        self.timeout = timeout
        self.clock = clock
        self._waiters: deque[Waiter] = deque()
        self._live = 0

    def __len__(self) -> int:
        return self._live

    def wait(self, callback: Callable[[], None]) -> object:
        """Queue ``callback`` (called once, when a slot may be free); returns a token."""
        waiter = Waiter(callback, self.clock() + self.timeout)
        self._waiters.append(waiter)
        self._live += 1
        return waiter

    def deadline(self, token: object) -> float:
        """When the wait of ``token`` runs out (the timeout at the time it began)."""
        assert isinstance(token, Waiter)
        return token.deadline

    def remaining(self, token: object) -> float:
        """Seconds left of that wait: 0 once it ran out (then the relay answers 503)."""
        return max(0.0, self.deadline(token) - self.clock())

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
