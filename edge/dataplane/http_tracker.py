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


class TrackedConnection(Protocol):
    deadline: float

    @property
    def idle(self) -> bool: ...

    def deadline_passed(self, now: float) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class HttpConnectionTracker:
    """The connections of one (or more) HTTP listeners."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tick: float = 0.1) -> None:
        self._loop = loop
        self._tick = tick
        self._live: set[TrackedConnection] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._empty: asyncio.Future[None] | None = None
        self.draining = False  # no more keep-alive: each connection closes after its response

    def __len__(self) -> int:
        return len(self._live)

    def add(self, conn: TrackedConnection) -> None:
        self._live.add(conn)
        if self._timer is None:
            self._timer = self._loop.call_later(self._tick, self._sweep)

    def discard(self, conn: TrackedConnection) -> None:
        self._live.discard(conn)
        if not self._live:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._empty is not None and not self._empty.done():
                self._empty.set_result(None)

    def close_idle(self) -> int:
        """Close the connections with no request in flight; returns how many."""
        idle = [conn for conn in self._live if conn.idle]
        for conn in idle:
            conn.close()
        return len(idle)

    def close_all(self) -> int:
        """Abort every live connection now; returns how many there were."""
        live = list(self._live)
        for conn in live:
            conn.abort()
        return len(live)

    async def drain(self, timeout: float) -> int:
        """Stop keep-alive, close idle connections, let requests in flight finish for up
        to ``timeout`` seconds, then abort the rest; returns how many were aborted."""
        self.draining = True
        self.close_idle()
        if self._live:
            self._empty = self._loop.create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._empty), timeout)
            except TimeoutError:
                pass
            finally:
                self._empty = None
        return self.close_all()

    def _sweep(self) -> None:
        now = self._loop.time()
        expired = [conn for conn in self._live if conn.deadline <= now]
        for conn in expired:
            conn.deadline_passed(now)
        if self.draining:
            self.close_idle()
        self._timer = self._loop.call_later(self._tick, self._sweep) if self._live else None
