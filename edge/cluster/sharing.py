"""Health verdicts and load, shared between the nodes of a cluster through the store.

Every ``SHARE_INTERVAL`` a node, in one transaction, publishes the verdicts of the
machines it checks and its own in-flight count per (machine, service), and reads the
other nodes' (``edge.cluster.tables``: in PostgreSQL, or for the workers of one node on SQLite in
``STATE_DIR/workers.db``). The decisions are pure
(``edge.core.cluster``): who checks what, how fresh a verdict must be, what load to add.
So a verdict reaches the other nodes within about one interval after the checker's
checks settle (plus the checks' own interval), and the load a node routes on is its own
exact count plus the others' counts, each at most ``SHARE_INTERVAL`` + one round trip
old (rows older than ``LOAD_STALE_AFTER`` are ignored).

While the control plane is unreachable nothing is exchanged: the last verdicts stay in
use within the PM11-style window, then this node checks those machines itself; the
others' load is forgotten after ``LOAD_STALE_AFTER`` (each node then routes on its own).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from edge.cluster.tables import Exchange, SharedTables
from edge.core import cluster
from edge.core.cluster import Key, LoadRow, NodeView, SharedVerdict
from edge.core.health import HealthState
from edge.errors import EdgeError
from edge.runtime.dataplane import DataPlane

LOG = logging.getLogger("edge.cluster")
SHARE_INTERVAL = 0.5  # seconds between exchanges: the bound on the rate of writes


class ClusterSharing:
    def __init__(
        self,
        tables: SharedTables,
        node: str,
        pops: tuple[str, ...],
        dataplane: DataPlane,
        connected: Callable[[], bool],
    ) -> None:
        self.tables = tables
        self.node = node
        self.pops = pops
        self.dataplane = dataplane
        self._connected = connected
        self._published: dict[Key, int] = {}
        self._verdicts: dict[Key, SharedVerdict] = {}
        self._loads: tuple[LoadRow, ...] = ()
        self._nodes: tuple[NodeView, ...] = ()
        self._first_seen: dict[Key, float] = {}
        self._owned: dict[Key, bool] = {}
        self.checker: dict[Key, str] = {}  # who checks each (machine, service), for status

    async def run(self) -> None:
        while True:
            await asyncio.sleep(SHARE_INTERVAL)
            if self._connected():
                try:
                    await self._exchange()
                except EdgeError as exc:
                    LOG.debug("cannot share health and load", extra={"error": exc.message})
            self._apply(time.time())

    def _local_load(self) -> dict[Key, int]:
        stats = self.dataplane.state.endpoint_stats()
        return {key: s.active - s.remote for key, s in stats.items()}

    async def _exchange(self) -> None:
        health = self.dataplane.health
        local = self._local_load()
        rows = cluster.load_to_publish(local, self._published)
        now = time.time()
        got = await asyncio.to_thread(
            self.tables.exchange, self.node, now, health.owned_verdicts(), rows
        )
        self._published = local
        self._remember(got)

    def _remember(self, got: Exchange) -> None:
        self._nodes = tuple(NodeView(n.name, n.pops, n.last_seen) for n in got.nodes)
        latest: dict[Key, SharedVerdict] = {}
        for node, app, machine, port, passing, at in got.health:
            key = (app, machine, port)
            if key not in latest or latest[key].checked_at < at:
                latest[key] = SharedVerdict(node, passing, at)
        self._verdicts = latest
        self._loads = tuple(
            LoadRow(node, (app, machine, port), count, at)
            for node, app, machine, port, count, at in got.load
        )

    def _apply(self, now: float) -> None:
        health, state = self.dataplane.health, self.dataplane.state
        live = [n for n in cluster.live_nodes(self._nodes, now) if n.name != self.node]
        live.append(NodeView(self.node, self.pops, now))
        owns: dict[Key, bool] = {}
        adopted: dict[Key, tuple[HealthState, str]] = {}
        for key, region in health.watched().items():
            since = self._first_seen.setdefault(key, now)
            checker = cluster.checker_of(region, live, state.model.rtt)
            self.checker[key] = checker or self.node
            verdict = self._verdicts.get(key)
            owns[key] = cluster.must_check(self.node, checker, verdict, since, now)
            shared = cluster.shared_state(verdict, now)
            if shared is not None:
                adopted[key] = shared
        for key in [k for k in self._first_seen if k not in owns]:
            del self._first_seen[key]
        if owns != self._owned:
            mine = sorted("/".join(map(str, key)) for key, own in owns.items() if own)
            LOG.debug("checks this node runs", extra={"checks": ", ".join(mine) or "none"})
            self._owned = owns
        health.set_ownership(lambda key: owns.get(key, True))
        health.adopt(adopted)
        self._apply_load(cluster.remote_load(self._loads, self.node, now))

    def _apply_load(self, remote: dict[Key, int]) -> None:
        for key, stats in self.dataplane.state.endpoint_stats().items():
            new = remote.get(key, 0)
            if new != stats.remote:
                stats.active += new - stats.remote
                stats.remote = new
