"""What API handlers reach: the daemon's parts, injected once at start (``CONTEXT``)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from edge.config.load import validate
from edge.config.model import AppSpec, EdgeConfig
from edge.core.apps import Machine
from edge.core.regions import RegionCatalogue
from edge.errors import BadRequest, ConfigError, EdgeError
from edge.runtime.dataplane import DataPlane
from edge.runtime.metrics import ERROR, OK, Metrics, error_reason
from edge.runtime.store_runner import StoreRunner


@dataclass(frozen=True, slots=True)
class ListenerReport:
    """The listeners after a change: per address, what is bound and what failed."""

    by_address: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def for_addresses(self, addresses: Iterable[str]) -> list[dict[str, Any]]:
        return [entry for a in addresses for entry in self.by_address.get(a, [])]


def _no_dataplane() -> DataPlane:
    raise BadRequest("this API serves no data plane")


async def _no_listeners() -> ListenerReport:
    return ListenerReport()


@dataclass(slots=True)
class ApiContext:
    metrics: Metrics
    config: EdgeConfig
    catalogue: RegionCatalogue
    store: StoreRunner
    # Called after every committed change: rebuild routing, reconcile listeners.
    changed: Callable[[], Awaitable[ListenerReport]] = _no_listeners
    status: Callable[[], dict[str, Any]] = dict
    # What the running edge knows of a machine: where it listens, its load and health.
    live_machine: Callable[[Machine], dict[str, Any]] = lambda machine: {}
    started_at: float = field(default_factory=time.time)
    dataplane: Callable[[], DataPlane] = _no_dataplane
    token_path: Path | None = None  # the admin token file (shown on the dashboard's login)
    # In a cluster (a PostgreSQL store): this node and every other, for /v1/status.
    cluster: Callable[[], Awaitable[dict[str, Any]]] | None = None
    # With worker processes: /metrics merged over all of them (None: this one only).
    merged_metrics: Callable[[], Awaitable[bytes | None]] | None = None

    @contextlib.contextmanager
    def counting(self, op: str) -> Iterator[None]:
        """Count an IPAM operation: result ok, or error with the error's kind as reason."""
        try:
            yield
        except EdgeError as exc:
            self.metrics.ipam_operations.labels(op, ERROR, error_reason(exc)).inc()
            raise
        self.metrics.ipam_operations.labels(op, OK, "").inc()

    def declares(self, app: str) -> bool:
        """Whether the daemon's config file declares ``app`` (see edge.runtime.bootstrap)."""
        return any(spec.app == app for spec in self.config.apps)

    def validate_app(self, data: dict[str, Any], renames: dict[str, str]) -> AppSpec:
        """An AppSpec from API input; a 400 naming the request's field when it is wrong."""
        try:
            return validate(AppSpec, data, self.catalogue, "request body")
        except ConfigError as exc:
            problems = []
            for problem in exc.problems:
                path, sep, message = problem.partition(": ")
                problems.append(f"{renames.get(path, path)}{sep}{message}")
            raise BadRequest("; ".join(problems)) from None


CONTEXT = web.AppKey("context", ApiContext)
