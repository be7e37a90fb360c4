"""One deadline mechanism per event loop: a sweep over the things that are timed.

A timer per request or per connect costs a handle, a heap push and a cancel on the hot
path; setting a float costs nothing. So each timed thing (an HTTP client connection, a
TCP relay's connect, a pooled connect) keeps one ``deadline`` (``INF`` when nothing is
timed) and its ``deadline_kind``, and the loop's one ``DeadlineSweep`` looks at all of
them every ``tick`` seconds: a timeout fires at most one tick late. The sweep reads the
injected clock, so a test with a ``FakeClock`` advances it and calls ``sweep()``.
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
        expired = [item for item in self._watched if item.deadline <= now]
        for item in expired:
            if item.deadline <= now:  # an earlier one in this sweep may have moved it
                item.deadline = INF
                item.deadline_passed(now)
        return len(expired)

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
