"""The change feed of a PostgreSQL control plane, as one node follows it.

Every committed change appends a row to ``changes`` (its id is the version it made)
and sends ``NOTIFY edge_changes, '<id>'`` in the same transaction
(``edge.store.postgres``). A node keeps one dedicated connection that ``LISTEN``s; on
every (re)connect it first reads the changes after the last version it applied, so a
change made while it was away is never missed, then applies each notified version
newer than what it has. The connection is pinged every ``PING_INTERVAL`` (TCP
keepalives too), so a vanished control plane is noticed within about a second and
the node reports itself degraded until it is back. Applying a change means reading
one consistent snapshot and swapping it in whole; nothing is applied twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from edge.errors import EdgeError
from edge.store.postgres import CHANNEL, first_line, redact

LOG = logging.getLogger("edge.cluster")
PING_INTERVAL = 0.5  # seconds of silence before the feed checks its connection
CONNECT_TIMEOUT = 2  # seconds (libpq's connect_timeout is whole seconds)
RETRY_DELAYS = (0.1, 0.2, 0.5, 1.0)  # between reconnects, the last one repeated


@dataclass(slots=True)
class FeedState:
    """What a node knows of its link to the control plane (for status and metrics)."""

    connected: bool = False
    since: float = field(default_factory=time.time)  # when ``connected`` last changed
    last_contact: float = 0.0  # the last answer from the database
    last_error: str | None = None
    caught_up: int = 0  # changes read on reconnects, in all


class ChangeFeed:
    """Follow ``url``'s changes: call ``refresh`` when one newer than ``applied()`` lands."""

    def __init__(
        self,
        url: str,
        node: str,
        applied: Callable[[], int],
        refresh: Callable[[], Awaitable[object]],
        on_link: Callable[[bool], None],
    ) -> None:
        self.url = url
        self.node = node
        self._applied = applied
        self._refresh = refresh
        self._on_link = on_link
        self.state = FeedState()

    async def run(self) -> None:
        attempt = 0
        while True:
            try:
                await self._follow()
            except (psycopg.Error, OSError) as exc:
                self._set_link(False, first_line(exc))
            delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
            attempt = 0 if self.state.connected else attempt + 1
            await asyncio.sleep(delay)

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(
            self.url,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT,
            application_name=f"edge-feed-{self.node}",
            keepalives=1,
            keepalives_idle=1,
            keepalives_interval=1,
            keepalives_count=2,
        )

    async def _follow(self) -> None:
        async with await self._connect() as conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            self._set_link(True, None)
            await self._catch_up(conn)
            while True:
                newest = 0
                notes = conn.notifies(timeout=PING_INTERVAL, stop_after=1)
                async for note in notes:
                    newest = max(newest, _version(note.payload))
                if newest == 0:  # quiet: make sure the link is alive
                    await conn.execute("SELECT 1")
                self.state.last_contact = time.time()
                if newest > self._applied():
                    await self._apply()

    async def _apply(self) -> None:
        """Read and swap in the newest snapshot; a failure reconnects (and catches up)."""
        try:
            await self._refresh()
        except EdgeError as exc:
            raise OSError(exc.message) from exc

    async def _catch_up(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Apply what was committed after the version this node last applied."""
        applied = self._applied()
        cursor = await conn.execute("SELECT id FROM changes WHERE id > %s ORDER BY id", (applied,))
        missed = [int(row[0]) for row in await cursor.fetchall()]
        self.state.last_contact = time.time()
        if missed:
            self.state.caught_up += len(missed)
            LOG.info(
                "catching up with the control plane",
                extra={"changes": len(missed), "from": applied, "to": missed[-1]},
            )
            await self._refresh()

    def _set_link(self, connected: bool, error: str | None) -> None:
        self.state.last_error = error
        if connected == self.state.connected:
            return
        self.state.connected = connected
        self.state.since = time.time()
        self._on_link(connected)
        if connected:
            LOG.info("control plane connected", extra={"store": redact(self.url)})
        else:
            LOG.warning(
                "control plane unreachable: serving from the last state, refusing changes",
                extra={"store": redact(self.url), "error": error},
            )


def _version(payload: str) -> int:
    try:
        return int(payload)
    except ValueError:
        return 0
