"""Keep-alive connections to machines for the HTTP relay, pooled per (host, port).

Idle ``UpstreamConnection``s (``upstream_conn``) wait here between requests, most
recently used first, until ``idle_timeout``; new ones are opened on demand (through the
toxics of ``edge.dataplane.toxics`` when faults act on the machine; such connections are
never pooled).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence

from edge.core.faults import Fault
from edge.dataplane.contract import connect_failure
from edge.dataplane.toxics import open_machine_connection
from edge.dataplane.upstream_conn import ConnectDone, UpstreamConnection

__all__ = ["UpstreamConnection", "UpstreamPool"]


class UpstreamPool:
    """Idle keep-alive connections per (host, port), most recently used first."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, idle_timeout: float, max_idle_per_host: int = 256
    ) -> None:
        self._loop = loop
        self.idle_timeout = idle_timeout
        self._max_idle = max_idle_per_host
        self._idle: dict[tuple[str, int], deque[UpstreamConnection]] = {}
        self._connecting: set[asyncio.Future[None]] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self.opened = 0  # connections ever opened (tests and metrics)

    def idle_count(self) -> int:
        return sum(len(idle) for idle in self._idle.values())

    def take(self, host: str, port: int) -> UpstreamConnection | None:
        idle = self._idle.get((host, port))
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    def put(self, conn: UpstreamConnection) -> None:
        """Keep a connection whose last response ended cleanly."""
        idle = self._idle.get(conn.key)
        if idle is None:
            idle = self._idle[conn.key] = deque()
        if conn.closed or not conn.shareable or len(idle) >= self._max_idle:
            conn.close()
            return
        conn.idle_since = self._loop.time()
        idle.append(conn)
        if self._sweeper is None:
            self._arm_sweeper()

    def forget(self, conn: UpstreamConnection) -> None:
        """The machine closed an idle connection."""
        idle = self._idle.get(conn.key)
        if idle is not None and conn in idle:
            idle.remove(conn)

    def connect(
        self,
        host: str,
        port: int,
        timeout: float,
        done: ConnectDone,
        faults: Sequence[Fault] = (),
    ) -> None:
        """Open a new connection; ``done(conn, "")`` or ``done(None, reason)`` follows.

        A connection with ``faults`` (toxics, see ``edge.dataplane.toxics``) is never
        pooled: other requests to the machine must not inherit its faults.
        """
        conn = UpstreamConnection(self, (host, port))
        conn.shareable = not faults
        # create_connection is a coroutine: this future per new connection is the pool's
        # only task, referenced in _connecting until it is done.
        opening = asyncio.ensure_future(self._open(conn, timeout, faults), loop=self._loop)
        self._connecting.add(opening)
        opening.add_done_callback(lambda fut: self._opened(fut, conn, done))

    async def _open(
        self, conn: UpstreamConnection, timeout: float, faults: Sequence[Fault]
    ) -> None:
        async with asyncio.timeout(timeout):
            await open_machine_connection(self._loop, conn, *conn.key, faults)

    def _opened(
        self, opening: asyncio.Future[None], conn: UpstreamConnection, done: ConnectDone
    ) -> None:
        self._connecting.discard(opening)
        if opening.cancelled():
            done(None, "cancelled")
            return
        exc = opening.exception()
        if exc is not None:
            done(None, connect_failure(exc))
            return
        self.opened += 1
        done(conn, "")

    def close(self) -> None:
        """Close every idle connection and abandon the connects in progress."""
        for opening in list(self._connecting):
            opening.cancel()
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def _arm_sweeper(self) -> None:
        tick = min(max(self.idle_timeout / 4, 0.05), 1.0)
        self._sweeper = self._loop.call_later(tick, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        oldest_allowed = self._loop.time() - self.idle_timeout
        for idle in self._idle.values():
            while idle and (idle[0].idle_since <= oldest_allowed or idle[0].closed):
                idle.popleft().close()
        if any(self._idle.values()):
            self._arm_sweeper()
