"""Keep-alive connections to machines for the HTTP relay, pooled per (host, port).

Idle ``UpstreamConnection``s (``upstream_conn``) wait here between requests, most
recently used first, until ``idle_timeout``; new ones are opened on demand (through the
toxics of ``edge.dataplane.toxics`` when faults act on the machine; such connections are
never pooled).

Neither takes a timer of its own: a connect in progress is a ``PendingConnect`` whose
deadline (kind ``CONNECT``) the loop's one ``DeadlineSweep`` watches, and the pool itself
is watched while it holds idle connections, its deadline being when the oldest expires.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence

from mypy_extensions import mypyc_attr

from edge.core.faults import Fault
from edge.core.relay_decisions import DeadlineKind
from edge.dataplane.contract import connect_failure
from edge.dataplane.deadlines import INF, DeadlineSweep, sweep_for
from edge.dataplane.toxics import open_machine_connection
from edge.dataplane.upstream_conn import ConnectDone, UpstreamConnection

__all__ = ["PendingConnect", "UpstreamConnection", "UpstreamPool"]


class PendingConnect:
    """One connect in progress, given up (its task cancelled) when its deadline passes."""

    __slots__ = ("conn", "deadline", "deadline_kind", "done", "opening", "pool", "timed_out")

    def __init__(
        self,
        pool: UpstreamPool,
        conn: UpstreamConnection,
        opening: asyncio.Future[None],
        deadline: float,
        done: ConnectDone,
    ) -> None:
        self.pool = pool
        self.conn = conn
        self.opening = opening
        self.deadline = deadline
        self.deadline_kind = DeadlineKind.CONNECT
        self.done = done
        self.timed_out = False

    def deadline_passed(self, now: float) -> None:
        if not self.opening.done():
            self.timed_out = True
            self.opening.cancel()

    def finished(self, opening: asyncio.Future[None]) -> None:
        self.pool.opening_finished(self)


# Compiled (mypyc): the playbook tests subclass the pool (tests/playbook.py ScriptedPool).
@mypyc_attr(allow_interpreted_subclasses=True)
class UpstreamPool:
    """Idle keep-alive connections per (host, port), most recently used first."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        idle_timeout: float,
        max_idle_per_host: int = 256,
        sweep: DeadlineSweep | None = None,
    ) -> None:
        self._loop = loop
        self._sweep = sweep if sweep is not None else sweep_for(loop)
        self.idle_timeout = idle_timeout
        self._max_idle = max_idle_per_host
        self._idle: dict[tuple[str, int], deque[UpstreamConnection]] = {}
        self._connecting: set[PendingConnect] = set()
        self.opened = 0  # connections ever opened (tests and metrics)
        # The pool's own deadline (the sweep's): when the oldest idle connection expires.
        self.deadline = INF
        self.deadline_kind = DeadlineKind.IDLE

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
        conn.idle_since = self._sweep.clock()
        idle.append(conn)
        if self.deadline == INF:
            self.deadline = conn.idle_since + self.idle_timeout
            self._sweep.watch(self)

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
        opening = asyncio.ensure_future(
            open_machine_connection(self._loop, conn, host, port, faults), loop=self._loop
        )
        pending = PendingConnect(self, conn, opening, self._sweep.clock() + timeout, done)
        self._connecting.add(pending)
        self._sweep.watch(pending)
        opening.add_done_callback(pending.finished)

    def opening_finished(self, pending: PendingConnect) -> None:
        self._connecting.discard(pending)
        self._sweep.unwatch(pending)
        opening = pending.opening
        if opening.cancelled():
            pending.done(None, "timeout" if pending.timed_out else "cancelled")
            return
        exc = opening.exception()
        if exc is not None:
            pending.done(None, connect_failure(exc))
            return
        self.opened += 1
        pending.done(pending.conn, "")

    def close(self) -> None:
        """Close every idle connection and abandon the connects in progress."""
        for pending in list(self._connecting):
            pending.opening.cancel()
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self.deadline = INF
        self._sweep.unwatch(self)

    def deadline_passed(self, now: float) -> None:
        """The oldest idle connection expired: close every expired one, look again later."""
        oldest_allowed = now - self.idle_timeout
        next_expiry = INF
        for idle in self._idle.values():
            while idle and (idle[0].idle_since <= oldest_allowed or idle[0].closed):
                idle.popleft().close()
            if idle:
                next_expiry = min(next_expiry, idle[0].idle_since + self.idle_timeout)
        self.deadline = next_expiry
        if next_expiry == INF:
            self._sweep.unwatch(self)
