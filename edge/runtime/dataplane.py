"""The data plane of a running daemon: routing state, demo machines and listeners.

``DataPlane.apply(store_snapshot)`` brings everything in line with the store after any
change: demo machines started or stopped, the routing snapshot rebuilt and swapped,
listeners reconciled against the allocated IPs.
"""

from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path
from typing import Any

from edge.config.model import EdgeConfig
from edge.core import apps as records
from edge.core.latency import LatencyModel
from edge.core.regions import RegionCatalogue
from edge.dataplane.http_proxy import make_http_protocol_factory
from edge.dataplane.http_tracker import HttpConnectionTracker
from edge.dataplane.tcp_proxy import ConnectionTracker, make_tcp_protocol_factory
from edge.dataplane.tls import CertificateStore, CertPair, server_ssl_context
from edge.dataplane.upstream_pool import UpstreamPool
from edge.runtime.demo import DemoIdentity, DemoMachines
from edge.runtime.health_checks import HealthMonitor
from edge.runtime.listeners import ListenerSet, ListenerSpec, Tracker, desired_listeners
from edge.runtime.metrics import Metrics, NullRecorder, Recorder
from edge.runtime.router import AppRouter, SharedRouter
from edge.runtime.routing_state import RoutingState, service_kind
from edge.store import StoreSnapshot

LOG = logging.getLogger("edge.dataplane")


def certificate_store(config: EdgeConfig, state_dir: Path) -> CertificateStore:
    configured = {
        name: CertPair(Path(cert.cert_file), Path(cert.key_file))
        for cert in config.tls.certificates
        for name in cert.names
    }
    return CertificateStore(state_dir, configured)


class DataPlane:
    def __init__(
        self,
        config: EdgeConfig,
        catalogue: RegionCatalogue,
        state_dir: Path,
        drain_timeout: float,
        metrics: Metrics,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.recorder = Recorder(metrics) if config.metrics.enabled else NullRecorder()
        model = LatencyModel.build(config.latency, catalogue)
        self.state = RoutingState(config, model, rng or random.Random())
        checks = metrics.health_checks
        self.health = HealthMonitor(
            self.state.rng,
            on_check=lambda app, region, result: checks.labels(app, region, result).inc(),
        )
        self.demo = DemoMachines()
        self.certs = certificate_store(config, state_dir)
        self.listeners = ListenerSet(self._make_server, drain_timeout, metrics.listener_errors)
        self._pool: UpstreamPool | None = None
        self._demo_keys: set[str] = set()
        self.last_snapshot: StoreSnapshot | None = None

    @property
    def pool(self) -> UpstreamPool:
        if self._pool is None:
            loop = asyncio.get_running_loop()
            self._pool = UpstreamPool(loop, self.config.http.upstream_idle_timeout)
        return self._pool

    async def apply(self, snapshot: StoreSnapshot) -> None:
        demo_ports = await self._sync_demo_machines(snapshot)
        self.state.rebuild(snapshot, demo_ports)
        self.health.sync(self.state.snapshot)  # before any await: verdicts precede traffic
        await self.listeners.reconcile(desired_listeners(snapshot))
        self.last_snapshot = snapshot

    async def _sync_demo_machines(
        self, snapshot: StoreSnapshot
    ) -> dict[tuple[str, str], dict[int, int]]:
        services = {app.name: app.services for app in snapshot.apps}
        ports: dict[tuple[str, str], dict[int, int]] = {}
        wanted: set[str] = set()
        for machine in (m for m in snapshot.machines if m.demo):
            identity = DemoIdentity(machine.app, machine.id, machine.region)
            for service in services.get(machine.app, ()):
                key = f"{machine.app}/{machine.id}/{service.internal_port}"
                wanted.add(key)
                if machine.state == "started":
                    _, port = await self.demo.start(key, identity, service_kind(service))
                    ports.setdefault((machine.app, machine.id), {})[service.internal_port] = port
                else:
                    await self.demo.stop(key)
        for key in self._demo_keys - wanted:
            await self.demo.stop(key)
        self._demo_keys = wanted
        return ports

    def machine_view(self, machine: records.Machine) -> dict[str, Any]:
        """What the running edge knows of a machine: where it listens, load and health."""
        services = []
        for (app, machine_id, internal_port), stats in self.state.endpoint_stats().items():
            if app == machine.app and machine_id == machine.id:
                services.append(
                    {
                        "internal_port": internal_port,
                        "load": stats.active,
                        "healthy": stats.healthy,
                        "consecutive_failures": stats.consecutive_failures,
                        "ejections": stats.ejections,
                    }
                )
        listening = []
        if machine.demo:
            prefix = f"{machine.app}/{machine.id}/"
            for key in sorted(k for k in self._demo_keys if k.startswith(prefix)):
                address = self.demo.address(key)
                if address is not None and self.demo.is_running(key):
                    listening.append(f"{address[0]}:{address[1]}")
        elif machine.address:
            listening.append(machine.address)
        return {
            "listening": listening,
            "services": sorted(services, key=lambda s: s["internal_port"]),
        }

    def _router(self, spec: ListenerSpec) -> AppRouter | SharedRouter:
        if spec.app is None:
            return SharedRouter(self.state, spec.port, self.recorder)
        return AppRouter(self.state, spec.app, spec.port, self.recorder)

    def _make_server(self, spec: ListenerSpec) -> tuple[Any, Any, Tracker]:
        """The protocol factory, TLS context and connection tracker of one listener."""
        loop = asyncio.get_running_loop()
        router = self._router(spec)
        ssl_context = None
        if spec.port.is_tls:
            names = [spec.address]
            if spec.app is not None:
                names.insert(0, f"{spec.app}.{self.config.edge.app_domain}")
            accept = router.accepts_name if isinstance(router, SharedRouter) else None
            ssl_context = server_ssl_context(self.certs, names, accept)
        accept_proxy = spec.port.accept_proxy_proto
        if spec.port.is_http:
            http_tracker = HttpConnectionTracker(loop)
            factory = make_http_protocol_factory(
                router,
                self.config.http,
                self.pool,
                loop,
                tracker=http_tracker,
                accept_proxy_proto=accept_proxy,
            )
            return factory, ssl_context, http_tracker
        tcp_tracker = ConnectionTracker()
        factory = make_tcp_protocol_factory(router, loop, tcp_tracker, accept_proxy)
        return factory, ssl_context, tcp_tracker

    async def close(self) -> None:
        await self.health.close()
        await self.listeners.close()
        await self.demo.close_all()
