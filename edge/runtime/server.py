"""The daemon's lifecycle: startup -> run until a signal -> drain -> shutdown.

``EdgeDaemon`` owns every long-lived part (state directory, metrics, the API site,
and, as later parts land, the store, listeners and health runners). Startup
failures are ``StartupError``s that the CLI prints as one line with exit code 2.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from edge.api.app import build_api
from edge.api.app_context import ApiContext, ListenerReport
from edge.api.auth import TokenCheck
from edge.build import describe as describe_build
from edge.cluster.metrics_merge import merged_scrape
from edge.cluster.node import ClusterLink, NodeIdentity
from edge.cluster.tables import PgSharedTables, SharedTables, SqliteSharedTables
from edge.config.model import EdgeConfig
from edge.config.types import split_host_port
from edge.core.ipam import IpamPolicy
from edge.core.regions import RegionCatalogue
from edge.errors import EdgeError, StartupError
from edge.runtime.bootstrap import TOKEN_FILE, bootstrap, ensure_metrics_token
from edge.runtime.dataplane import DataPlane
from edge.runtime.gauges import register_gauges
from edge.runtime.listeners import bind_socket
from edge.runtime.logs import log_loop_exception
from edge.runtime.machine_control import DaemonMachineControl
from edge.runtime.metrics import Metrics
from edge.runtime.statedir import prepare_state_dir
from edge.runtime.store_runner import StoreRunner
from edge.runtime.tasks import spawn
from edge.store import Store, open_store
from edge.store.postgres import PostgresStore

LOG = logging.getLogger("edge")
STORE_POLL_INTERVAL = 1.0  # seconds between checks for changes made by other processes


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """What ``edge serve`` was asked, after defaults were applied."""

    config_path: Path | None
    state_dir: Path
    api_listen: str
    drain_timeout: float
    store_url: str | None = None  # postgresql://...: a control plane shared by nodes
    node: str | None = None  # this node's name in a cluster
    reuse_port: bool = False  # share listeners with other nodes/workers (SO_REUSEPORT)
    workers: int = 1  # processes of this node (edge.cluster.workers starts them)
    worker: int | None = None  # this process's index among them
    ready_fd: int | None = None  # a worker says "ready" here once it serves


def describe_bind_error(what: str, address: str, exc: OSError) -> str:
    causes = {
        errno.EADDRINUSE: "address already in use (is another edge running? pick another port)",
        errno.EADDRNOTAVAIL: "address not available on this machine",
        errno.EACCES: "permission denied (ports below 1024 need privileges)",
    }
    cause = causes.get(exc.errno or 0, exc.strerror or str(exc))
    return f"cannot listen on {address} ({what}): {cause}"


def dashboard_url(api_listen: str) -> str:
    """Where a browser on this machine finds the dashboard (a wildcard is loopback)."""
    host, port = split_host_port(api_listen)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/ui"


class EdgeDaemon:
    def __init__(
        self, config: EdgeConfig, options: ServeOptions, catalogue: RegionCatalogue
    ) -> None:
        self.config = config
        self.options = options
        self.catalogue = catalogue
        self.metrics = Metrics()
        self.stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._site: web.SockSite | None = None
        self._api_socket: socket.socket | None = None
        self._store: StoreRunner | None = None
        self.dataplane = DataPlane(
            config, catalogue, options.state_dir, options.drain_timeout, self.metrics
        )
        self.dataplane.listeners.reuse_port = options.reuse_port
        register_gauges(self.metrics, self.dataplane)
        self._refresh_lock = asyncio.Lock()
        self._applied_version = -1
        self._watcher: asyncio.Task[None] | None = None
        self._autostop: asyncio.Task[None] | None = None
        self.cluster: ClusterLink | None = None

    def status(self) -> dict[str, Any]:
        """What the public ``/healthz`` adds to its status: nothing about the state directory,
        apps or addresses (anyone can read it), just whether every listener is bound and, in
        a cluster, whether the control plane is reachable (not where it is)."""
        reasons = []
        unbound = sum(1 for row in self.dataplane.listeners.reports() if not row["bound"])
        if unbound:
            reasons.append(f"{unbound} listener(s) not bound (edgectl status shows which)")
        body: dict[str, Any] = {"pops": list(self.config.edge.pops)}
        if self.cluster is not None:
            body |= self.cluster.health()
            if self.cluster.degraded:
                reasons.append("control plane unreachable: serving from the last state")
        if not reasons:
            return {"status": "ok", **body}
        return {"status": "degraded", "reason": "; ".join(reasons), **body}

    async def start(self) -> None:
        prepare_state_dir(self.options.state_dir)
        self.metrics.start_time.set(time.time())
        # Take the API address first: if it is in use, nothing else has been touched.
        api_socket = self._bind_api()
        store = await self._open_store()
        private = self._private_api_socket()
        # Before the first snapshot: a node in a cluster checks only its own machines.
        self.cluster = self._cluster_link(store.store, private)
        admin_hash = await store.call(bootstrap, store.store, self.options.state_dir, self.config)
        self._control_machines(store)
        await self.refresh()
        await self._start_api(store, admin_hash, api_socket, private)
        if self.cluster is not None:
            self.cluster.start()
        if self.cluster is None or self.cluster.feed is None:
            self._watcher = spawn(self._watch_store(), name="store-watcher")
        self._autostop = spawn(self.dataplane.autostop.run(), name="autostop")
        LOG.info(
            "edge started",
            extra={"api": self.options.api_listen, "state_dir": str(self.options.state_dir)},
        )
        LOG.info("hot path: %s", describe_build())  # compiled (mypyc) or pure Python
        LOG.info(
            "dashboard at %s (sign in with `edgectl ui`, or the token in %s)",
            dashboard_url(self.options.api_listen),
            self.options.state_dir / TOKEN_FILE,
        )
        if self.options.ready_fd is not None:
            os.write(self.options.ready_fd, b"ready\n")
            os.close(self.options.ready_fd)

    def _private_api_socket(self) -> socket.socket | None:
        """A worker's own API address (127.0.0.1, any port): for its part of /metrics."""
        if self.options.worker is None:
            return None
        return bind_socket("127.0.0.1", 0)

    def _control_machines(self, store: StoreRunner) -> None:
        """Autostart, autostop and the supervisor change machines through the store."""
        plane = self.dataplane
        control = DaemonMachineControl(
            store, self.refresh, self.metrics, plane.region_of, plane.state_reasons
        )
        self.dataplane.hooks = control
        self.dataplane.autostart.control = control
        self.dataplane.autostop.control = control

    async def _open_store(self) -> StoreRunner:
        try:
            policy = IpamPolicy.from_spec(self.config.ipam)
            store = await asyncio.to_thread(
                open_store,
                self.options.state_dir,
                policy,
                self.catalogue.codes(),
                url=self.options.store_url,
                node=self.node_name,
            )
        except StartupError:
            raise
        except EdgeError as exc:
            raise StartupError(f"cannot open the state database: {exc.message}") from None
        self._store = StoreRunner(store)
        return self._store

    @property
    def node_name(self) -> str:
        name = self.options.node or socket.gethostname()
        return name if self.options.worker is None else f"{name}#{self.options.worker}"

    def _cluster_link(self, store: Store, private: socket.socket | None) -> ClusterLink | None:
        """What this node shares: on PostgreSQL with the other nodes (and its workers),
        on SQLite with its other workers only (STATE_DIR/workers.db)."""
        tables: SharedTables
        if isinstance(store, PostgresStore):
            tables = PgSharedTables(store)
        elif self.options.worker is not None:
            tables = SqliteSharedTables(self.options.state_dir / SqliteSharedTables.FILE)
        else:
            return None
        api = self.options.api_listen
        if private is not None:
            api = f"127.0.0.1:{private.getsockname()[1]}"

        def serving() -> str:
            snapshot = self.dataplane.last_snapshot
            apps = 0 if snapshot is None else len(snapshot.apps)
            bound = sum(self.dataplane.listeners.counts().values())
            return f"{bound} listeners, {apps} apps"

        return ClusterLink(
            NodeIdentity(self.node_name, self.config.edge.pops, api),
            tables,
            store if isinstance(store, PostgresStore) else None,
            self.metrics.registry,
            lambda: self._applied_version,
            self.refresh,
            serving,
            self.dataplane,
        )

    async def refresh(self) -> ListenerReport:
        """Bring the data plane in line with the store (after every change)."""
        assert self._store is not None
        async with self._refresh_lock:
            snapshot = await self._store.call(self._store.store.snapshot)
            await self.dataplane.apply(snapshot)
            self._applied_version = snapshot.version
        return ListenerReport(self.dataplane.listeners.by_address())

    async def _watch_store(self) -> None:
        """Pick up changes committed by other processes sharing the state database."""
        assert self._store is not None
        while True:
            await asyncio.sleep(STORE_POLL_INTERVAL if self.options.workers == 1 else 0.1)
            try:
                version = await self._store.call(self._store.store.version)
                if version != self._applied_version:
                    await self.refresh()
            except EdgeError as exc:
                LOG.warning("cannot read the store", extra={"error": exc.message})

    async def _find_org(self, token_hash: str) -> str | None:
        assert self._store is not None
        org = await self._store.call(self._store.store.org_by_token_hash, token_hash)
        return None if org is None else org.slug

    def _bind_api(self) -> socket.socket:
        host, port = split_host_port(self.options.api_listen)
        try:
            address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4][0]
            self._api_socket = bind_socket(str(address), port, reuse_port=self.options.reuse_port)
        except OSError as exc:
            raise StartupError(describe_bind_error("api", self.options.api_listen, exc)) from None
        return self._api_socket

    async def _start_api(
        self,
        store: StoreRunner,
        admin_hash: str,
        api_socket: socket.socket,
        private: socket.socket | None = None,
    ) -> None:
        context = ApiContext(
            metrics=self.metrics,
            config=self.config,
            catalogue=self.catalogue,
            store=store,
            changed=self.refresh,
            status=self.status,
            live_machine=self.dataplane.machine_view,
            dataplane=lambda: self.dataplane,
            token_path=self.options.state_dir / TOKEN_FILE,
            cluster=None if self.cluster is None else self.cluster.view,
            merged_metrics=None if self.cluster is None else self._merged_metrics,
        )
        metrics_hash = None
        if self.config.metrics.require_token:
            metrics_hash = ensure_metrics_token(self.options.state_dir)
        api = build_api(context, TokenCheck(admin_hash, self._find_org, metrics_hash=metrics_hash))
        # aiohttp's keep-alive timer runs from the connection's start and from each answer
        # until the next request head is complete: it is the API's header timeout.
        # Lingering (reading what is left of an unread body before closing) is bounded
        # too, or a 408 would leave the connection open for aiohttp's default 10 s.
        timeout = self.config.api.headers_read_timeout
        self._runner = web.AppRunner(
            api, access_log=None, keepalive_timeout=timeout, lingering_time=min(1.0, timeout)
        )
        await self._runner.setup()
        self._site = web.SockSite(
            self._runner, api_socket, shutdown_timeout=self.options.drain_timeout
        )
        await self._site.start()
        if private is not None:
            await web.SockSite(self._runner, private, shutdown_timeout=1.0).start()

    async def _merged_metrics(self) -> bytes | None:
        """With workers: the metrics of every worker of this node, merged (None: only
        this process, as without workers)."""
        if self.cluster is None or self.options.worker is None:
            return None
        return await merged_scrape(self.cluster, self.metrics.registry)

    def request_stop(self, signame: str) -> None:
        if not self.stopping.is_set():
            LOG.info("stopping", extra={"signal": signame})
            self.stopping.set()

    async def stop(self) -> None:
        """Stop accepting, let in-flight work finish within the drain timeout, close."""
        started = time.monotonic()
        for task in (self._watcher, self._autostop):
            if task is not None:
                task.cancel()
        if self.cluster is not None:
            self.cluster.stop()
        cleanups = [self.dataplane.close()]
        if self._runner is not None:
            cleanups.append(self._runner.cleanup())
        await asyncio.gather(*cleanups)
        if self._store is not None:
            await self._store.close()
        LOG.info("edge stopped", extra={"drain_seconds": round(time.monotonic() - started, 3)})

    async def run(self) -> None:
        asyncio.get_running_loop().set_exception_handler(log_loop_exception)
        try:
            await self.start()
        except BaseException:
            if self._api_socket is not None and self._site is None:
                self._api_socket.close()
            await self.dataplane.close()
            if self._store is not None:
                await self._store.close()
            raise
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        try:
            await self.stopping.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await self.stop()
