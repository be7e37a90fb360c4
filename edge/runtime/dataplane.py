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
from edge.core.region_aliases import RegionAliases
from edge.core.regions import RegionCatalogue
from edge.dataplane.http_proxy import make_http_protocol_factory
from edge.dataplane.http_tracker import HttpConnectionTracker
from edge.dataplane.tcp_proxy import TcpRelay, make_tcp_protocol_factory
from edge.dataplane.tls import CertificateStore, CertPair, server_ssl_context
from edge.dataplane.tracker import ConnectionTracker
from edge.dataplane.upstream_pool import UpstreamPool
from edge.runtime.autoscale import AutoStarter, AutoStopper
from edge.runtime.conn_gate import ConnectionGate
from edge.runtime.demo import DemoIdentity, DemoMachines
from edge.runtime.faults import FaultRegistry
from edge.runtime.health_checks import NO_CHECKS, CheckStatus, HealthMonitor, ServiceHealth
from edge.runtime.listeners import ListenerSet, ListenerSpec, Tracker, desired_listeners
from edge.runtime.machine_logs import MachineLogs
from edge.runtime.metrics import Metrics, check_labels
from edge.runtime.process_machines import ProcessMachines
from edge.runtime.recorder import NullRecorder, Recorder
from edge.runtime.router import AppRouter, SharedRouter
from edge.runtime.routing_state import RoutingState, service_kind
from edge.runtime.supervisor import Supervisor
from edge.store import StoreSnapshot

LOG = logging.getLogger("edge.dataplane")
DEFAULT_START_TIMEOUT = 5.0  # how long autostart waits for a demo or address machine


class MachineHooks:
    """The daemon's reactions to process machines (it owns the store): keep an event,
    record that a process is gone for good. Until the daemon sets them, nothing."""

    def event(self, key: str, kind: str, detail: str, code: int | None) -> None:
        return None

    def settled(self, key: str, reason: str) -> None:
        return None


def certificate_store(config: EdgeConfig, state_dir: Path) -> CertificateStore:
    configured = {
        name: CertPair(Path(cert.cert_file), Path(cert.key_file))
        for cert in config.tls.certificates
        for name in cert.names
    }
    return CertificateStore(state_dir, configured, max_generated=config.tls.max_self_signed)


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
        aliases = RegionAliases.build(catalogue, model.by_rtt)
        self.state = RoutingState(config, model, rng or random.Random(), aliases)
        checks = metrics.health_checks
        self.gate = ConnectionGate(config.edge.max_connections, metrics.registry)
        self.health = HealthMonitor(
            self.state.rng,
            on_check=lambda app, region, outcome: checks.labels(
                app, region, *check_labels(outcome)
            ).inc(),
            clock=self.state.clock,  # one routing clock: ready_since, ejections, slow start
            on_exhausted=self.gate.exhaustion,
        )
        self.demo = DemoMachines()
        self.faults = FaultRegistry(self.state)
        self.certs = certificate_store(config, state_dir)
        self.listeners = ListenerSet(self._make_server, drain_timeout, metrics.listener_errors)
        self.gate.on_change(self.listeners.set_accepting)
        self._pool: UpstreamPool | None = None
        self._demo_keys: set[str] = set()
        self._demo_ports: dict[tuple[str, str], dict[int, int]] = {}
        self.last_snapshot: StoreSnapshot | None = None
        self._stored: dict[tuple[str, str], records.Machine] = {}
        self.hooks = MachineHooks()  # the daemon's store-side reactions, set at start
        # Why each machine was last stopped or started by edge itself (autostop ...).
        self.state_reasons: dict[tuple[str, str], str] = {}
        self.logs = MachineLogs(state_dir / "machines")
        supervisor = Supervisor(
            self.logs,
            on_event=self._machine_event,
            on_settled=self._machine_settled,
            on_ready=self.reroute,
        )
        self.processes = ProcessMachines(supervisor, config.edge.machine_network)
        self.autostart = AutoStarter(
            lambda: self.state.snapshot,
            metrics,
            self.processes.runtime_state,
            self._stored_state,
            self._start_timeout,
        )
        self.autostart.error_of = self.processes.error
        self.state.autostart = self.autostart
        self.autostop = AutoStopper(
            lambda: self.state.snapshot, config.edge.autostop_interval, metrics
        )

    @property
    def pool(self) -> UpstreamPool:
        if self._pool is None:
            loop = asyncio.get_running_loop()
            self._pool = UpstreamPool(loop, self.config.http.upstream_idle_timeout)
        return self._pool

    async def apply(self, snapshot: StoreSnapshot) -> None:
        self._demo_ports = await self._sync_demo_machines(snapshot)
        await self.processes.sync(snapshot)
        self._stored = {(m.app, m.id): m for m in snapshot.machines}
        self.last_snapshot = snapshot
        self.state.rebuild(snapshot, self._demo_ports, self.processes.hosts())
        self.health.sync(self.state.snapshot)  # before any await: verdicts precede traffic
        self.autostart.changed.set()
        await self.listeners.reconcile(desired_listeners(snapshot))
        self.recorder.forget(
            frozenset(a.name for a in snapshot.apps),
            frozenset((m.app, m.id) for m in snapshot.machines),
        )

    async def restart_demo(self, machine: records.Machine) -> None:
        """Stop a demo machine's servers; the next apply starts them again."""
        prefix = f"{machine.app}/{machine.id}/"
        for key in [k for k in self._demo_keys if k.startswith(prefix)]:
            await self.demo.stop(key)

    def reroute(self) -> None:
        """A process machine came up or went down: rebuild routing from the last snapshot."""
        if self.last_snapshot is None:
            return
        self.state.rebuild(self.last_snapshot, self._demo_ports, self.processes.hosts())
        self.health.sync(self.state.snapshot)
        self.autostart.changed.set()

    # The hooks are set after the store opens, so the supervisor calls through these.
    def _machine_event(self, key: str, kind: str, detail: str, code: int | None) -> None:
        self.hooks.event(key, kind, detail, code)

    def _machine_settled(self, key: str, reason: str) -> None:
        self.hooks.settled(key, reason)

    def region_of(self, app: str, machine_id: str) -> str:
        machine = self._stored.get((app, machine_id))
        return "" if machine is None else machine.region

    def _stored_state(self, app: str, machine_id: str) -> str:
        machine = self._stored.get((app, machine_id))
        return "stopped" if machine is None else machine.state

    def _start_timeout(self, app: str, machine_id: str) -> float:
        machine = self._stored.get((app, machine_id))
        process = None if machine is None else machine.process
        return DEFAULT_START_TIMEOUT if process is None else process.start_timeout

    async def _sync_demo_machines(
        self, snapshot: StoreSnapshot
    ) -> dict[tuple[str, str], dict[int, int]]:
        services = {app.name: app.services for app in snapshot.apps}
        primaries = {app.name: app.primary_region for app in snapshot.apps}
        ports: dict[tuple[str, str], dict[int, int]] = {}
        wanted: set[str] = set()
        for machine in (m for m in snapshot.machines if m.demo):
            primary = primaries.get(machine.app, "")
            identity = DemoIdentity(machine.app, machine.id, machine.region, primary)
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
        """What the running edge knows of a machine: where it listens, health and load."""
        now = self.state.clock()
        checks = {h.internal_port: h for h in self.health.states(machine.app, machine.id)}
        routes = self.state.snapshot.apps.get(machine.app)
        services: list[dict[str, Any]] = []
        for service in routes.services.values() if routes else ():
            port = service.spec.internal_port
            endpoint = service.by_machine.get(machine.id)
            if endpoint is None or any(s["internal_port"] == port for s in services):
                continue
            stats, health = endpoint.stats, checks.get(port)
            concurrency = service.spec.concurrency
            services.append(
                {
                    "internal_port": port,
                    "check_state": _check_state(health),
                    "load": stats.active,
                    "soft_limit": concurrency.soft_limit,
                    "hard_limit": concurrency.hard_limit,
                    "consecutive_failures": stats.consecutive_failures,
                    "ejections": stats.ejections,
                    "ejected_for": round(max(0.0, stats.ejected_until - now), 1),
                    "checks": [_check_json(c) for c in health.checks] if health else [],
                    "checked_by": health.checked_by if health else None,
                }
            )
        process = self.processes.view(machine)
        word = machine_health(machine.state, [s["check_state"] for s in services])
        if machine.state == "suspended":
            word = "suspended"
        if process is not None and process["state"] in ("starting", "stopping", "failed"):
            word = process["state"]  # coming up, going down, or could not start
        elif self.autostart.is_starting(machine.app, machine.id):
            word = "starting"
        return {
            "listening": self._listening(machine),
            "health": word,
            "process": process,
            "state_reason": self.state_reasons.get((machine.app, machine.id)),
            "load": sum(s["load"] for s in services),
            "ejected": any(s["ejected_for"] > 0 for s in services),
            "services": services,
        }

    def _listening(self, machine: records.Machine) -> list[str]:
        if machine.process is not None:
            return self.processes.listening(machine)
        if not machine.demo:
            return [machine.address] if machine.address else []
        prefix, listening = f"{machine.app}/{machine.id}/", []
        for key in sorted(k for k in self._demo_keys if k.startswith(prefix)):
            address = self.demo.address(key)
            if address is not None and self.demo.is_running(key):
                listening.append(f"{address[0]}:{address[1]}")
        return listening

    def _router(self, spec: ListenerSpec) -> AppRouter | SharedRouter:
        if spec.app is None:
            return SharedRouter(self.state, spec.port, self.recorder, self.gate)
        return AppRouter(self.state, spec.app, spec.port, self.recorder, self.gate)

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
        tcp_tracker: ConnectionTracker[TcpRelay] = ConnectionTracker()
        factory = make_tcp_protocol_factory(router, loop, tcp_tracker, accept_proxy)
        return factory, ssl_context, tcp_tracker

    async def close(self) -> None:
        await self.health.close()
        await self.listeners.close()
        await self.demo.close_all()
        await self.processes.supervisor.close_all()


# Worst first: a machine is as healthy as its least healthy service. "no checks" is
# last: it says nothing was checked, so a passing service says more.
_HEALTH_ORDER = ("critical", "maint", "drain", "unknown", "passing", NO_CHECKS)


def _check_state(health: ServiceHealth | None) -> str:
    """The service's check state; ``no checks`` when nothing checks it (not "passing")."""
    if health is None or (not health.checks and health.state.value == "passing"):
        return NO_CHECKS
    return health.state.value


def machine_health(state: str, service_states: list[str]) -> str:
    """One word for a machine: stopped, or the worst check state of its services."""
    if state != "started":
        return "stopped"
    for health in _HEALTH_ORDER:
        if health in service_states:
            return health
    return NO_CHECKS


def _check_json(check: CheckStatus) -> dict[str, Any]:
    last = check.last
    return {
        "name": check.name,
        "type": check.type,
        "target": check.target,
        "state": check.state.value,
        "output": last.output if last else None,
    }
