"""One deadline mechanism per event loop: a sweep over the things that are timed.

A timer per request or per connect costs a handle, a heap push and a cancel on the hot
path; setting a float costs nothing. So each timed thing (an HTTP client connection, a
TCP relay's connect, a pooled connect) keeps one ``deadline`` (``INF`` when nothing is
timed) and its ``deadline_kind``, and the loop's one ``DeadlineSweep`` looks at all of
them every ``tick`` seconds: a timeout fires at most one tick late. The sweep reads the
injected clock, so a test with a ``FakeClock`` advances it and calls ``sweep()``.

Users: the HTTP client connections (``HttpConnectionTracker`` watches them while they
live, and itself while it drains), the TCP relay while it connects (``TcpRelay``), the
connects of the HTTP upstream pool and its idle connections (``UpstreamPool``), a
connection that owes its PROXY header (``ProxyHeaderGate``).

Before ``deadline_passed`` is called the deadline is reset to ``INF`` (the kind is left
as it was, so the callback knows what passed); the callback may set a new one. A thing
unwatched during a sweep (closed by an earlier callback) is not called. A callback that
raises is reported to the loop's exception handler and the sweep goes on: one broken
connection must not stop every other timeout on the loop.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Final, Protocol

from edge.core.clock import Clock
from edge.core.relay_decisions import DeadlineKind

INF: Final = float("inf")
TICK: Final = 0.05  # seconds between sweeps: the resolution of every timeout


class Timed(Protocol):
    """Something with at most one pending deadline."""

    deadline: float
    deadline_kind: DeadlineKind

    def deadline_passed(self, now: float) -> None:
        """The deadline passed (it was reset to ``INF`` first): act on its kind."""
        ...


class DeadlineSweep:
    """The timed things of one loop, checked every ``tick`` seconds while there are any."""

    __slots__ = ("__weakref__", "_loop", "_tick", "_timer", "_watched", "clock")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, clock: Clock | None = None, tick: float = TICK
    ) -> None:
        self._loop = loop
        self.clock: Clock = clock if clock is not None else loop.time
        self._tick = tick
        self._watched: set[Timed] = set()
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._watched)

    def watch(self, item: Timed) -> None:
        self._watched.add(item)
        if self._timer is None:
            self._timer = self._loop.call_later(self._tick, self._on_tick)

    def unwatch(self, item: Timed) -> None:
        self._watched.discard(item)

    def sweep(self) -> int:
        """Act on every deadline that has passed by the clock; returns how many."""
        now = self.clock()
        watched = self._watched
        expired = [item for item in watched if item.deadline <= now]
        fired = 0
        for item in expired:
            # An earlier callback in this sweep may have moved its deadline or unwatched it.
            if item.deadline <= now and item in watched:
                item.deadline = INF
                fired += 1
                try:
                    item.deadline_passed(now)
                except Exception as exc:  # reported below; the sweep goes on
                    self._loop.call_exception_handler(
                        {"message": f"deadline_passed of {item!r} failed", "exception": exc}
                    )
        return fired

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._watched.clear()

    def _on_tick(self) -> None:
        self._timer = None
        self.sweep()
        if self._watched:
            self._timer = self._loop.call_later(self._tick, self._on_tick)


_SWEEPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, DeadlineSweep] = (
    weakref.WeakKeyDictionary()
)


def sweep_for(loop: asyncio.AbstractEventLoop) -> DeadlineSweep:
    """The loop's one sweep, made on first use."""
    sweep = _SWEEPS.get(loop)
    if sweep is None:
        sweep = _SWEEPS[loop] = DeadlineSweep(loop)
    return sweep
