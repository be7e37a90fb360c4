"""Live connections of a listener, so the runtime can count them and drain them.

``ConnectionTracker`` is what every relay shares: add, discard, abort all, and
``drain(timeout)`` (wait for the connections to end, then abort the rest). The HTTP
relay extends it with per-connection deadlines and closing idle keep-alive connections
(``edge.dataplane.http_tracker``).
"""

from __future__ import annotations

import asyncio
from typing import Generic, Protocol, TypeVar


class Closable(Protocol):
    def abort(self) -> None: ...


C = TypeVar("C", bound=Closable)


class ConnectionTracker(Generic[C]):
    """Live connections of a listener, so the runtime can drain them at shutdown."""

    def __init__(self) -> None:
        self._live: set[C] = set()
        self._empty: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._live)

    def add(self, conn: C) -> None:
        self._live.add(conn)

    def discard(self, conn: C) -> None:
        self._live.discard(conn)
        if not self._live and self._empty is not None and not self._empty.done():
            self._empty.set_result(None)

    def close_all(self) -> int:
        """Abort every live connection now; returns how many there were."""
        live = list(self._live)
        for conn in live:
            conn.abort()
        return len(live)

    async def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for connections to end, abort the rest; returns that count."""
        if self._live:
            self._empty = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._empty), timeout)
            except TimeoutError:
                pass
            finally:
                self._empty = None
        return self.close_all()
