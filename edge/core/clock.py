"""The one clock of the data plane and the runtime: monotonic seconds, injected.

Relays, routers, trackers and the deadline sweep read time through a ``Clock`` they
are given (``loop.time`` in the daemon), never ``time.monotonic`` or ``loop.time``
directly, so a test can hand them a ``FakeClock`` and advance it instead of sleeping.
Wall-clock time (``time.time``) is only for what is shown to people: log lines,
reports, the API.
"""

from __future__ import annotations

from collections.abc import Callable

Clock = Callable[[], float]


class FakeClock:
    """A clock that moves only when told: ``clock()`` reads it, ``advance`` moves it."""

    __slots__ = ("now",)

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError(f"a clock cannot go back ({seconds} s)")
        self.now += seconds
        return self.now
