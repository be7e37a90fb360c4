"""The data plane's connection limit (``edge.max_connections``) and the edge's own state.

``ConnectionGate`` counts the client connections of every data-plane listener (each
router reports ``opened``/``closed``). At the limit it asks the listeners to stop
accepting; new connections then wait in the kernel's accept queue and are served once
the count drops below ``limits.resume_below``. The descriptors above the limit stay
free for health checks and the control plane. When the edge runs out of descriptors
anyway (``EMFILE``/``ENFILE``), that is recorded here, as the edge's state, and no
machine is blamed for it.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from edge.core import limits

LOG = logging.getLogger("edge.limits")
LOG_EVERY = 10.0  # seconds between two log lines about descriptor exhaustion


def nofile_soft_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return limits.NOFILE_CAP if soft == resource.RLIM_INFINITY else soft


class ConnectionGate:
    """Open client connections of the data plane, against ``max_connections``."""

    def __init__(self, limit: int | None, registry: CollectorRegistry | None = None) -> None:
        self.nofile = nofile_soft_limit()
        self.limit = limit if limit is not None else limits.default_max_connections(self.nofile)
        self.open = 0
        self.paused = False
        self.pauses = 0
        self.exhausted = 0  # EMFILE/ENFILE met by the edge itself
        self.last_exhausted: tuple[float, str] | None = None  # (unix time, where)
        self._on_change: Callable[[bool], None] | None = None
        self._metrics(registry)

    def _metrics(self, registry: CollectorRegistry | None) -> None:
        self._open_gauge = self._paused_gauge = None
        self._exhausted_counter = None
        if registry is None:
            return
        Gauge(
            "edge_dataplane_max_connections", "edge.max_connections in force", registry=registry
        ).set(self.limit)
        self._open_gauge = Gauge(
            "edge_dataplane_connections", "Client connections open on the data plane",
            registry=registry,
        )  # fmt: skip
        self._paused_gauge = Gauge(
            "edge_dataplane_accept_paused",
            "1 while the data plane does not accept (at edge.max_connections)",
            registry=registry,
        )
        self._exhausted_counter = Counter(
            "edge_fd_exhaustion", "Times the edge itself ran out of file descriptors",
            ["where"], registry=registry,
        )  # fmt: skip

    def on_change(self, callback: Callable[[bool], None]) -> None:
        """``callback(accepting)`` whenever accepting pauses or resumes."""
        self._on_change = callback

    def opened(self) -> None:
        self.open += 1
        self._update()

    def closed(self) -> None:
        self.open -= 1
        self._update()

    def _update(self) -> None:
        if self._open_gauge is not None:
            self._open_gauge.set(self.open)
        accepting = limits.accepting(self.open, self.limit, self.paused)
        if accepting != self.paused:
            return
        self.paused = not accepting
        if self._paused_gauge is not None:
            self._paused_gauge.set(1 if self.paused else 0)
        if self.paused:
            self.pauses += 1
            LOG.warning(
                "data plane at edge.max_connections (%d): not accepting until below %d",
                *(self.limit, limits.resume_below(self.limit)),
            )
        else:
            LOG.info("data plane below edge.max_connections: accepting again")
        if self._on_change is not None:
            self._on_change(accepting)

    def exhaustion(self, where: str) -> None:
        """The edge met EMFILE/ENFILE in ``where`` (health_check, connect, ...)."""
        self.exhausted += 1
        now = time.time()
        logged = self.last_exhausted is not None and now - self.last_exhausted[0] < LOG_EVERY
        self.last_exhausted = (now, where)
        if self._exhausted_counter is not None:
            self._exhausted_counter.labels(where).inc()
        if logged:
            return  # once per LOG_EVERY seconds is enough to tell
        LOG.warning(
            "the edge ran out of file descriptors (%s; %d connections open, limit %d of %d "
            "descriptors): not counted against any machine",
            *(where, self.open, self.limit, self.nofile),
        )

    def view(self) -> dict[str, Any]:
        """The edge's own state, for ``edgectl status``."""
        last = self.last_exhausted
        return {
            "connections": self.open,
            "max_connections": self.limit,
            "accepting": not self.paused,
            "nofile_limit": self.nofile,
            "fd_exhaustion": self.exhausted,
            "last_fd_exhaustion": None if last is None else {"at": last[0], "where": last[1]},
        }
