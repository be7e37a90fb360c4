"""One edge node of a cluster: its link to the shared control plane.

``ClusterLink`` follows the change feed (``edge.cluster.feed``), tells the store when
the control plane is unreachable (changes are then refused at once with a 503 while
the data plane keeps serving its last snapshot), publishes the node's heartbeat (its
PoPs, API, the version it serves) every ``HEARTBEAT_INTERVAL``, and reports all of it
for ``/healthz``, ``/v1/status`` and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from edge.cluster.feed import ChangeFeed
from edge.cluster.sharing import ClusterSharing
from edge.errors import EdgeError
from edge.runtime.dataplane import DataPlane
from edge.runtime.tasks import spawn
from edge.store.postgres import ClusterTables, NodeRow, PostgresStore, redact

LOG = logging.getLogger("edge.cluster")
HEARTBEAT_INTERVAL = 1.0  # seconds between a node's heartbeats
STALE_AFTER = 5.0  # a node not heard of for this long is shown as stale


class ClusterLink:
    def __init__(
        self,
        store: PostgresStore,
        node: str,
        pops: tuple[str, ...],
        api: str,
        registry: CollectorRegistry,
        applied: Callable[[], int],
        refresh: Callable[[], Awaitable[object]],
        serving: Callable[[], str],
        dataplane: DataPlane,
    ) -> None:
        self.store = store
        self.node = node
        self.pops = pops
        self.api = api
        self.started_at = time.time()
        self.tables = ClusterTables(store)
        self._applied = applied
        self._serving = serving
        self.feed = ChangeFeed(store.url, node, applied, refresh, self._link_changed)
        self.sharing = ClusterSharing(
            self.tables, node, pops, dataplane, lambda: self.feed.state.connected
        )
        self._connected = Gauge(
            "edge_control_plane_connected",
            "1 while this node follows the control plane's change feed, 0 while it serves "
            "from its last state (degraded)",
            registry=registry,
        )
        self._version = Gauge(
            "edge_store_applied_version", "The store version this node serves", registry=registry
        )
        self._version.set_function(lambda: float(self._applied()))
        self._last_nodes: tuple[NodeRow, ...] = ()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            spawn(self.feed.run(), name="change-feed"),
            spawn(self._beat(), name="node-heartbeat"),
            spawn(self.sharing.run(), name="cluster-sharing"),
        ]

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()

    def _link_changed(self, connected: bool) -> None:
        self.store.reachable = connected
        self._connected.set(1 if connected else 0)

    @property
    def degraded(self) -> bool:
        return not self.feed.state.connected

    async def _beat(self) -> None:
        while True:
            if self.feed.state.connected:
                row = NodeRow(
                    self.node,
                    self.pops,
                    self.api,
                    self.started_at,
                    time.time(),
                    self._applied(),
                    self._serving(),
                )
                try:
                    await asyncio.to_thread(self.tables.heartbeat, row)
                except EdgeError as exc:
                    LOG.debug("heartbeat failed", extra={"error": exc.message})
            await asyncio.sleep(HEARTBEAT_INTERVAL)

    async def nodes(self) -> tuple[list[dict[str, Any]], bool]:
        """Every node the control plane knows, and whether the list is fresh (False: the
        last list this node read, the control plane being unreachable)."""
        fresh = True
        try:
            self._last_nodes = await asyncio.to_thread(self.tables.nodes)
        except EdgeError:
            fresh = False
        now = time.time()
        rows = [
            {
                "name": n.name,
                "pops": list(n.pops),
                "api": n.api,
                "last_contact_seconds": round(now - n.last_seen, 3),
                "stale": now - n.last_seen > STALE_AFTER,
                "applied_version": n.applied_version,
                "serving": n.serving,
                "self": n.name == self.node,
            }
            for n in self._last_nodes
        ]
        return rows, fresh

    async def view(self) -> dict[str, Any]:
        """This node's link and every node, for ``/v1/status`` and ``edgectl status``."""
        nodes, fresh = await self.nodes()
        return {**self.status(), "nodes": nodes, "nodes_fresh": fresh}

    def status(self) -> dict[str, Any]:
        state = self.feed.state
        return {
            "node": self.node,
            "control_plane": {
                "store": redact(self.store.url),
                "connected": state.connected,
                "since": round(state.since, 3),
                "last_contact_seconds": round(time.time() - state.last_contact, 3)
                if state.last_contact
                else None,
                "last_error": state.last_error,
                "applied_version": self._applied(),
                "changes_caught_up": state.caught_up,
                "changes": "refused (503) until the control plane is back"
                if self.degraded
                else "accepted",
            },
        }
