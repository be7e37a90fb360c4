"""What every connection of one HTTP listener shares: router, pool, settings, tracker,
request ids and the endings of the response heads (``Tails``)."""

from __future__ import annotations

import asyncio
from typing import Protocol

from edge.core.clock import Clock
from edge.core.replay_cache import EMPTY as EMPTY_REPLAY_CACHE
from edge.dataplane.contract import ListenerRouter
from edge.dataplane.http_tracker import HttpConnectionTracker
from edge.dataplane.request_id import UlidSource
from edge.dataplane.upstream_pool import UpstreamPool


class HttpSettings(Protocol):
    """The ``http`` section of edge.yaml (``edge.config.model.HttpSpec`` fits)."""

    @property
    def headers_read_timeout(self) -> float: ...

    @property
    def max_header_bytes(self) -> int: ...

    @property
    def idle_timeout(self) -> float: ...

    @property
    def upstream_idle_timeout(self) -> float: ...


class HttpListener:
    """What every connection of one listener shares."""

    def __init__(
        self,
        router: ListenerRouter,
        settings: HttpSettings,
        pool: UpstreamPool,
        loop: asyncio.AbstractEventLoop,
        tracker: HttpConnectionTracker,
        clock: Clock | None = None,
    ) -> None:
        self.router = router
        self.pool = pool
        self.loop = loop
        self.clock: Clock = clock if clock is not None else loop.time  # every relay's time
        self.tracker = tracker
        self.headers_read_timeout = settings.headers_read_timeout
        self.max_head = settings.max_header_bytes
        # A port's http_options.idle_timeout wins over edge.yaml's http.idle_timeout.
        self.idle_timeout = router.policy.idle_timeout or settings.idle_timeout
        self.replay_cache = EMPTY_REPLAY_CACHE  # fly-replay's cache: swapped whole on change
        self.ulids = UlidSource()
        self._tails: dict[str, Tails] = {}

    def tails(self, pop: str) -> Tails:
        """The endings of response heads for clients that landed on ``pop``."""
        tails = self._tails.get(pop)
        if tails is None:
            tails = self._tails[pop] = Tails(pop)
        return tails


class Tails:
    """What follows the ULID in a response head: the rest of the Fly-Request-Id line
    (``-<pop>``), Via, maybe Connection, and the blank line."""

    __slots__ = ("close", "http10", "keep", "pop", "upgrade")

    def __init__(self, pop: str) -> None:
        self.pop = pop
        via = b"-%s\r\nVia: 1.1 edge\r\n" % pop.encode()
        self.keep = via + b"\r\n"
        self.close = via + b"Connection: close\r\n\r\n"
        self.http10 = via + b"Connection: keep-alive\r\n\r\n"
        self.upgrade = via + b"Connection: upgrade\r\n\r\n"
