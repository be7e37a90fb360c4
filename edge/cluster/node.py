"""One edge node of a cluster (or one worker of a node): what it shares with the others.

``ClusterLink`` publishes the node's heartbeat (its PoPs, API, the version it serves)
every ``HEARTBEAT_INTERVAL`` and shares health and load (``edge.cluster.sharing``)
through ``SharedTables``. On a PostgreSQL store it also follows the change feed
(``edge.cluster.feed``) and tells the store when the control plane is unreachable
(changes are then refused at once with a 503 while the data plane keeps serving its
last snapshot). It reports all of it for ``/healthz``, ``/v1/status`` and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from edge.cluster.feed import ChangeFeed
from edge.cluster.sharing import ClusterSharing
from edge.cluster.tables import NodeRow, SharedTables
from edge.core.cluster import NODE_STALE_AFTER
from edge.errors import EdgeError
from edge.runtime.dataplane import DataPlane
from edge.runtime.tasks import spawn
from edge.store.postgres import PostgresStore, redact

LOG = logging.getLogger("edge.cluster")
HEARTBEAT_INTERVAL = 1.0  # seconds between a node's heartbeats


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    name: str
    pops: tuple[str, ...]
    api: str  # where its API (and, for a worker, its own /metrics) answers


class ClusterLink:
    def __init__(
        self,
        me: NodeIdentity,
        tables: SharedTables,
        store: PostgresStore | None,
        registry: CollectorRegistry,
        applied: Callable[[], int],
        refresh: Callable[[], Awaitable[object]],
        serving: Callable[[], str],
        dataplane: DataPlane,
    ) -> None:
        self.me = me
        self.node = me.name
        self.store = store
        self.started_at = time.time()
        self.tables = tables
        self._applied = applied
        self._serving = serving
        self.feed = (
            None
            if store is None
            else ChangeFeed(store.url, me.name, applied, refresh, self._link_changed)
        )
        self.sharing = ClusterSharing(tables, me.name, me.pops, dataplane, self.connected)
        # Nothing is checked until the first exchange says which machines are this node's
        # (half a second): a node joining a cluster must not check what others do.
        dataplane.health.set_ownership(lambda key: False)
        self._last_nodes: tuple[NodeRow, ...] = ()
        self._tasks: list[asyncio.Task[None]] = []
        if store is not None:
            self._connected = Gauge(
                "edge_control_plane_connected",
                "1 while this node follows the control plane's change feed, 0 while it "
                "serves from its last state (degraded)",
                registry=registry,
            )
            applied_version = Gauge(
                "edge_store_applied_version",
                "The store version this node serves",
                registry=registry,
            )
            applied_version.set_function(lambda: float(self._applied()))

    def connected(self) -> bool:
        return self.feed is None or self.feed.state.connected

    def start(self) -> None:
        self._tasks = [
            spawn(self._beat(), name="node-heartbeat"),
            spawn(self.sharing.run(), name="cluster-sharing"),
        ]
        if self.feed is not None:
            self._tasks.append(spawn(self.feed.run(), name="change-feed"))

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()

    def _link_changed(self, connected: bool) -> None:
        assert self.store is not None
        self.store.reachable = connected
        self._connected.set(1 if connected else 0)

    @property
    def degraded(self) -> bool:
        return not self.connected()

    async def _beat(self) -> None:
        while True:
            if self.connected():
                row = NodeRow(
                    self.me.name,
                    self.me.pops,
                    self.me.api,
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
        """Every node the shared tables know, and whether the list is fresh (False: the
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
                "stale": now - n.last_seen > NODE_STALE_AFTER,
                "applied_version": n.applied_version,
                "serving": n.serving,
                "self": n.name == self.me.name,
            }
            for n in self._last_nodes
        ]
        return rows, fresh

    async def view(self) -> dict[str, Any]:
        """This node's link and every node, for ``/v1/status`` and ``edgectl status``."""
        nodes, fresh = await self.nodes()
        return {**self.status(), "nodes": nodes, "nodes_fresh": fresh}

    def health(self) -> dict[str, Any]:
        """For the public ``/healthz``: the node and its link, not where the store is."""
        detail = self.status()
        detail.get("control_plane", {}).pop("store", None)
        return detail

    def status(self) -> dict[str, Any]:
        if self.feed is None or self.store is None:
            return {"node": self.me.name}
        state = self.feed.state
        contact = round(time.time() - state.last_contact, 3) if state.last_contact else None
        return {
            "node": self.me.name,
            "control_plane": {
                "store": redact(self.store.url),
                "connected": state.connected,
                "since": round(state.since, 3),
                "last_contact_seconds": contact,
                "last_error": state.last_error,
                "applied_version": self._applied(),
                "changes_caught_up": state.caught_up,
                "changes": "refused (503) until the control plane is back"
                if self.degraded
                else "accepted",
            },
        }
