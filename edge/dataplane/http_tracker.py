"""Live HTTP connections of a listener: their timeouts, and closing them at drain.

Per-request timers would cost an allocation and a heap operation on every request, so
each connection keeps one ``deadline`` (a float, ``inf`` when nothing is timed) with its
``deadline_kind``, and the loop's one ``DeadlineSweep`` (``edge.dataplane.deadlines``)
watches it from ``add`` to ``discard``: a timeout fires at most one tick late. The same
set of live connections lets the runtime count them and drain a listener: idle
keep-alive connections close at once, busy ones after their response; while draining
the tracker is itself watched by the sweep, and closes what has become idle every tick.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from edge.core.relay_decisions import DeadlineKind
from edge.dataplane.deadlines import INF, DeadlineSweep, sweep_for
from edge.dataplane.tracker import ConnectionTracker


class TrackedConnection(Protocol):
    deadline: float
    deadline_kind: DeadlineKind

    @property
    def idle(self) -> bool: ...

    def deadline_passed(self, now: float) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class HttpConnectionTracker(ConnectionTracker[TrackedConnection]):
    """The connections of one (or more) HTTP listeners."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sweep: DeadlineSweep | None = None) -> None:
        super().__init__()
        self._sweep = sweep if sweep is not None else sweep_for(loop)
        self.draining = False  # no more keep-alive: each connection closes after its response
        # The tracker's own deadline: the next look for idle connections while draining.
        self.deadline = INF
        self.deadline_kind = DeadlineKind.NONE

    def add(self, conn: TrackedConnection) -> None:
        super().add(conn)
        self._sweep.watch(conn)

    def discard(self, conn: TrackedConnection) -> None:
        super().discard(conn)
        self._sweep.unwatch(conn)
        if not self._live:
            self._sweep.unwatch(self)

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
        self._look_again()
        try:
            return await super().drain(timeout)
        finally:
            self._sweep.unwatch(self)

    def deadline_passed(self, now: float) -> None:
        """Draining: close what became idle since the last look (a connection that ended
        its request without closing, one that never sent a request)."""
        self.close_idle()
        self._look_again()

    def _look_again(self) -> None:
        if self.draining and self._live:
            self.deadline = self._sweep.clock()  # due at the next tick
            self.deadline_kind = DeadlineKind.IDLE
            self._sweep.watch(self)
