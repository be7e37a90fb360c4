"""The routing snapshot of a running daemon, swapped whole on every change.

``RoutingState.view`` is an immutable ``RoutingView``: the ``RoutingSnapshot`` rebuilt
from the store's apps and machines (plus where demo machines listen) and what the routers
would otherwise work out per request (each service port's ``PortPolicy``), replaced by one
assignment; protocols read whichever view they captured, without locks. Live counters
(``EndpointStats``) outlive snapshots: they are kept here by (app, machine, port).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from edge.config.model import EdgeConfig, HttpSpec, ServiceSpec
from edge.config.types import split_host_port
from edge.core import apps as records
from edge.core.anycast import ClientMap, ingress_pop
from edge.core.clock import Clock
from edge.core.error_codes import ErrorCode
from edge.core.faults import Fault
from edge.core.latency import LatencyModel
from edge.core.region_aliases import NO_ALIASES, RegionAliases
from edge.core.routing import (
    AppDeployment,
    EndpointStats,
    Machine,
    RoutingSnapshot,
    ServiceRoutes,
    build_snapshot,
)
from edge.dataplane.contract import PortPolicy
from edge.runtime.answers import AnswerLog
from edge.runtime.capacity import WaitQueue
from edge.runtime.demo import DemoKind
from edge.runtime.replay_routing import ReplayLog, port_policy
from edge.runtime.traffic import TrafficLog
from edge.store import StoreSnapshot


class AutoStartHook(Protocol):
    """Autostart as routers see it (``edge.runtime.autoscale.AutoStarter``)."""

    def admit(
        self, service: ServiceRoutes, pop: str
    ) -> tuple[WaitQueue | None, str, ErrorCode | None]:
        """A queue to wait in while a stopped machine starts (with the code to answer if
        the wait runs out), or None, why not and the code of a start that failed."""
        ...

    def over_soft(self, service: ServiceRoutes, pop: str) -> None:
        """Every started machine is at its soft limit: start another, nobody waits."""
        ...


StatsKey = tuple[str, str, int]  # (app, machine_id, internal_port)
DemoPorts = Mapping[tuple[str, str], Mapping[int, int]]  # (app, machine) -> internal -> port
ProcessHosts = Mapping[tuple[str, str], tuple[str, bool]]  # (app, machine) -> (ip, ready)
DEMO_HOST = "127.0.0.1"


def routing_machine(
    machine: records.Machine, demo_ports: DemoPorts, processes: ProcessHosts | None = None
) -> Machine:
    """A stored machine as routing sees it: where it listens, whether it may be chosen."""
    if machine.process is not None:
        # Its own address, each service at its internal port; routable once it accepts.
        host, ready = (processes or {}).get((machine.app, machine.id), ("127.0.0.1", False))
        return Machine(
            id=machine.id,
            app=machine.app,
            region=machine.region,
            host=host,
            ports=dict(machine.ports),
            weight=machine.weight,
            started=machine.state == "started" and ready,
        )
    if machine.demo:
        ports = demo_ports.get((machine.app, machine.id), {})
        return Machine(
            id=machine.id,
            app=machine.app,
            region=machine.region,
            host=DEMO_HOST,
            ports=dict(ports),
            weight=machine.weight,
            started=machine.state == "started" and bool(ports),
            demo=True,
        )
    host, explicit = _host_and_port(machine.address or "")
    return Machine(
        id=machine.id,
        app=machine.app,
        region=machine.region,
        host=host,
        ports=dict(machine.ports),
        explicit_port=explicit,
        weight=machine.weight,
        started=machine.state == "started",
    )


def _host_and_port(address: str) -> tuple[str, int | None]:
    try:
        return split_host_port(address)
    except ValueError:
        return address.strip("[]"), None


def deployments(
    snapshot: StoreSnapshot, demo_ports: DemoPorts, processes: ProcessHosts | None = None
) -> list[AppDeployment]:
    machines: dict[str, list[Machine]] = {}
    for machine in snapshot.machines:
        routed = routing_machine(machine, demo_ports, processes)
        machines.setdefault(machine.app, []).append(routed)
    return [
        AppDeployment(
            name=app.name,
            org=app.org,
            primary_region=app.primary_region,
            services=app.services,
            machines=tuple(machines.get(app.name, ())),
        )
        for app in snapshot.apps
    ]


@dataclass(frozen=True, slots=True)
class RoutingView:
    """One routing snapshot and what is derived from it once, for every request."""

    snapshot: RoutingSnapshot
    # (app, public port) -> the service behind it: one lookup per request
    services: Mapping[tuple[str, int], ServiceRoutes]
    # (app, public port) -> that service port's http_options as the relay applies them
    policies: Mapping[tuple[str, int], PortPolicy]
    no_policy: PortPolicy  # a service reached on a port it does not list (a replay)


def routing_view(snapshot: RoutingSnapshot, http: HttpSpec) -> RoutingView:
    services = {
        (app.name, port): routes
        for app in snapshot.apps.values()
        for port, routes in app.services.items()
    }
    policies = {
        (app, port): port_policy(snapshot.apps[app].ports[port], http) for app, port in services
    }
    return RoutingView(snapshot, services, policies, PortPolicy(replay_buffer=http.replay_buffer))


class RoutingState:
    """The daemon's routing view: snapshot, live counters, PoPs and client geography."""

    def __init__(
        self,
        config: EdgeConfig,
        model: LatencyModel,
        rng: random.Random,
        aliases: RegionAliases = NO_ALIASES,
        clock: Clock = time.monotonic,
    ) -> None:
        self.config = config
        # Routing's clock (monotonic seconds): slow start, ejections, queue deadlines;
        # the routers and the wait queues default to it.
        self.clock = clock
        self.model = model
        self.rng = rng
        self.aliases = aliases  # us, eu, any...: from the catalogue's geo_region
        self.replays = ReplayLog()  # the last fly-replays, for explanations
        self.client_map = ClientMap.build(config.edge.clients, config.edge.local_region)
        self.valid_regions = frozenset(model.codes())
        self._stats: dict[StatsKey, EndpointStats] = {}
        self.pops_up: tuple[str, ...] = config.edge.pops
        self._ingress: dict[str, str | None] = {}
        self.shared_apps: frozenset[str] = frozenset()  # apps holding the shared IPv4
        self.traffic = TrafficLog()
        self.answers = AnswerLog()  # the edge's own error answers: their log lines
        # Jitter on simulated paths draws from its own generator: seeded, it repeats.
        self.jitter_rng = random.Random(config.latency.jitter.seed)
        self.faults: tuple[Fault, ...] = ()  # toxics and ``down`` (edge.runtime.faults)
        # Wait queues of saturated services, by (app, internal port); created on demand.
        self.queues: dict[tuple[str, int], WaitQueue] = {}
        self.autostart: AutoStartHook | None = None  # set by the data plane
        self.view = routing_view(
            build_snapshot((), model, config.edge.app_domain, self.stats_for, self.pops_up),
            config.http,
        )

    @property
    def snapshot(self) -> RoutingSnapshot:
        return self.view.snapshot

    def stats_for(self, app: str, machine_id: str, internal_port: int) -> EndpointStats:
        key = (app, machine_id, internal_port)
        stats = self._stats.get(key)
        if stats is None:
            stats = self._stats[key] = EndpointStats()
        return stats

    def rebuild(
        self,
        store_snapshot: StoreSnapshot,
        demo_ports: DemoPorts,
        processes: ProcessHosts | None = None,
    ) -> RoutingSnapshot:
        """Build the next snapshot (and its view) and swap it in with one assignment."""
        apps = deployments(store_snapshot, demo_ports, processes)
        snapshot = build_snapshot(
            apps, self.model, self.config.edge.app_domain, self.stats_for, self.pops_up
        )
        self._forget_stats_not_in(snapshot)
        self.shared_apps = frozenset(ip.app for ip in store_snapshot.ips if ip.type == "shared_v4")
        self.view = routing_view(snapshot, self.config.http)
        return snapshot

    def _forget_stats_not_in(self, snapshot: RoutingSnapshot) -> None:
        live = {
            (ep.app, ep.machine_id, service.spec.internal_port)
            for app in snapshot.apps.values()
            for service in app.services.values()
            for ep in service.endpoints
        }
        for key in [k for k in self._stats if k not in live]:
            del self._stats[key]

    def queue_for(self, app: str, spec: ServiceSpec) -> WaitQueue:
        key = (app, spec.internal_port)
        queue = self.queues.get(key)
        if queue is None:
            queue = self.queues[key] = WaitQueue(spec.queue_timeout, self.clock)
        queue.timeout = spec.queue_timeout
        return queue

    def set_pops_up(self, pops: Iterable[str]) -> None:
        self.pops_up = tuple(pops)
        self._ingress.clear()

    def ingress(self, client_region: str) -> str | None:
        """The PoP a client of ``client_region`` lands on (cached until PoPs change)."""
        try:
            return self._ingress[client_region]
        except KeyError:
            pop = ingress_pop(client_region, self.pops_up, self.model)
            self._ingress[client_region] = pop
            return pop

    def endpoint_stats(self) -> Mapping[StatsKey, EndpointStats]:
        return self._stats


def service_kind(service: ServiceSpec) -> DemoKind:
    """What a demo machine serves on this service's internal port: http or echo."""
    return "http" if any(p.is_http for p in service.ports) else "echo"
