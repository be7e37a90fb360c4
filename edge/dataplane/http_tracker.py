"""Live HTTP connections of a listener: their timeouts, and closing them at drain.

Per-request timers would cost an allocation and a heap operation on every request, so
each connection keeps one ``deadline`` (a float, ``inf`` when nothing is timed) and the
tracker looks at all of them every ``tick`` seconds; a timeout fires at most one tick
late. The same set of live connections lets the runtime count them and drain a
listener: idle keep-alive connections close at once, busy ones after their response.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from edge.dataplane.tracker import ConnectionTracker


class TrackedConnection(Protocol):
    deadline: float

    @property
    def idle(self) -> bool: ...

    def deadline_passed(self, now: float) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class HttpConnectionTracker(ConnectionTracker[TrackedConnection]):
    """The connections of one (or more) HTTP listeners."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tick: float = 0.1) -> None:
        super().__init__()
        self._loop = loop
        self._tick = tick
        self._timer: asyncio.TimerHandle | None = None
        self.draining = False  # no more keep-alive: each connection closes after its response

    def add(self, conn: TrackedConnection) -> None:
        super().add(conn)
        if self._timer is None:
            self._timer = self._loop.call_later(self._tick, self._sweep)

    def discard(self, conn: TrackedConnection) -> None:
        super().discard(conn)
        if not self._live and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close_idle(self) -> int:
        """Close the connections with no request in flight; returns how many."""
        idle = [conn for conn in self._live if conn.idle]
        for conn in idle:
            conn.close()
        return len(idle)

    async def drain(self, timeout: float) -> int:
        """Stop keep-alive, close idle connections, let requests in flight finish for up
        to ``timeout`` seconds, then abort the rest; returns how many were aborted."""
        self.draining = True
        self.close_idle()
        return await super().drain(timeout)

    def _sweep(self) -> None:
        now = self._loop.time()
        expired = [conn for conn in self._live if conn.deadline <= now]
        for conn in expired:
            conn.deadline_passed(now)
        if self.draining:
            self.close_idle()
        self._timer = self._loop.call_later(self._tick, self._sweep) if self._live else None
